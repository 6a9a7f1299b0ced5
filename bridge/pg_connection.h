// Owning handles for libpq objects, and connecting with the bridge's defaults.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <string>

#include "status.h"

namespace bridge {

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

// The session's deadlines, set on every connection: no statement runs longer, no lock is
// waited for longer.
inline constexpr const char* kSessionDeadlines = "SET statement_timeout = '30s'; SET lock_timeout = '5s'";

enum class PgSession {
  kQueries,
  kReplication,  // replication=database: logical replication commands (and simple queries)
};

// A libpq connection keyword and its value.
struct PgOption {
  const char* keyword;
  const char* value;
};

// Connects with application_name=cache-bridge, a 10 s connect timeout, TCP keepalives and a
// TCP user timeout, unless the connection string says otherwise, then sets kSessionDeadlines
// (a replication session: no statement_timeout). `overrides` win over the connection string
// (leadership.h: the lock session's dead-peer detection is the bridge's own). On failure
// *conn is null.
Status pg_connect(const std::string& database_url, PgConnPtr* conn,
                  PgSession session = PgSession::kQueries, std::initializer_list<PgOption> overrides = {});

// "host:port/dbname": where a connection goes, without user or password.
std::string pg_describe(PGconn* conn);

// libpq's last error as one line.
std::string pg_error(PGconn* conn);

// How long any statement may go without an answer before the connection is given up (the
// caller then reconnects). Client-side: it also catches a server that cannot enforce its own
// statement_timeout (a stopped backend, a dead peer whose packets are still acknowledged).
// Set once at startup, before other threads run; default 35 s.
void pg_set_answer_deadline(std::chrono::milliseconds deadline);

// Waits until the result of the query sent on `conn` can be read without blocking, or the
// answer deadline passes (an error: give the connection up).
Status pg_await_result(PGconn* conn);

// While one lives, every query this thread runs on `conn` hands the notifications that arrive
// meanwhile to `handler` as they are read, instead of leaving them all in libpq's list: a
// LISTENing backend sends every notification it has queued before it answers a query, so
// after a backlog (PostgreSQL's queue far ahead of the bridge) one query would otherwise hold
// all of them in memory at once. One per thread at a time; the handler must not run queries.
class PgNotificationsDuringQueries {
 public:
  using Handler = void (*)(void* context, PGnotify& notify);
  PgNotificationsDuringQueries(PGconn* conn, Handler handler, void* context);
  ~PgNotificationsDuringQueries();
  PgNotificationsDuringQueries(const PgNotificationsDuringQueries&) = delete;
  PgNotificationsDuringQueries& operator=(const PgNotificationsDuringQueries&) = delete;
};

// Runs a statement expecting PGRES_COMMAND_OK or PGRES_TUPLES_OK (of several, the last result).
Status pg_exec(PGconn* conn, const std::string& sql, PgResultPtr* result = nullptr);

// The same, with text parameters.
Status pg_exec_params(PGconn* conn, const std::string& sql, std::initializer_list<std::string> params,
                      PgResultPtr* result = nullptr);

}  // namespace bridge
