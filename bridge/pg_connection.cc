#include "pg_connection.h"

#include <fmt/format.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace bridge {
namespace {
std::chrono::milliseconds g_answer_deadline{35000};  // set once at startup
}  // namespace

Status pg_connect(const std::string& database_url, PgConnPtr* conn, PgSession session,
                  std::initializer_list<PgOption> overrides) {
  // Later entries override earlier ones, so the URL's own settings win over these defaults
  // (but a replication session is one whatever the URL says, and `overrides` win too).
  // A dead peer is noticed within ~25 s: keepalives (10 s idle, 3 probes 5 s apart) while
  // idle, tcp_user_timeout while data waits unacknowledged.
  const bool replication = session == PgSession::kReplication;
  std::vector<const char*> keywords = {"application_name", "connect_timeout",  "keepalives_idle",
                                       "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                                       "dbname"};
  std::vector<const char*> values = {"cache-bridge", "10", "10", "5", "3", "25000", database_url.c_str()};
  if (replication) {
    keywords.push_back("replication");
    values.push_back("database");
  }
  for (const PgOption& option : overrides) {
    keywords.push_back(option.keyword);
    values.push_back(option.value);
  }
  keywords.push_back(nullptr);
  values.push_back(nullptr);
  conn->reset(PQconnectdbParams(keywords.data(), values.data(), /*expand_dbname=*/1));
  if (!*conn) return Status::error("out of memory creating a PostgreSQL connection");
  if (PQstatus(conn->get()) != CONNECTION_OK) {
    std::string message = pg_error(conn->get());
    conn->reset();
    return Status::error(message);
  }
  // A server that is alive but stuck (a lock wait, a stopped backend) must not hang a thread:
  // every statement of the bridge is short, and one that is not says so (catch-up lifts it).
  // A replication stream is one long command: the server's keepalives watch over it instead.
  if (auto s = pg_exec(conn->get(), replication ? "SET statement_timeout = 0; SET lock_timeout = '5s'"
                                                : kSessionDeadlines);
      !s) {
    conn->reset();
    return s;
  }
  return Status::ok();
}

std::string pg_describe(PGconn* conn) {
  const char* host = PQhost(conn);
  return fmt::format("{}:{}/{}", host ? host : "?", PQport(conn) ? PQport(conn) : "?",
                     PQdb(conn) ? PQdb(conn) : "?");
}

// libpq's messages span lines, continued after "\n\t": one line. (log::hide_secrets also
// hides a secret whose line breaks or tabs became spaces here.)
static std::string one_line(std::string_view message) {
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    char c = message[i];
    if (c == '\n' && i + 1 < message.size() && message[i + 1] == '\t') ++i;
    out += c == '\n' || c == '\r' || c == '\t' ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string pg_error(PGconn* conn) { return one_line(conn ? PQerrorMessage(conn) : "no connection"); }

static Status check_result(PGconn* conn, PGresult* raw, PgResultPtr* result) {
  PgResultPtr owned(raw);
  auto status = PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    std::string message = raw ? one_line(PQresultErrorMessage(raw)) : pg_error(conn);
    return Status::error(message.empty() ? pg_error(conn) : message);
  }
  if (result) *result = std::move(owned);
  return Status::ok();
}

void pg_set_answer_deadline(std::chrono::milliseconds deadline) { g_answer_deadline = deadline; }

namespace {
struct NotificationRoute {
  PGconn* conn = nullptr;
  PgNotificationsDuringQueries::Handler handler = nullptr;
  void* context = nullptr;
};
thread_local NotificationRoute t_route;

void hand_over_notifications(PGconn* conn) {
  if (conn != t_route.conn) return;
  while (PGnotify* notify = PQnotifies(conn)) {
    t_route.handler(t_route.context, *notify);
    PQfreemem(notify);
  }
}
}  // namespace

PgNotificationsDuringQueries::PgNotificationsDuringQueries(PGconn* conn, Handler handler, void* context) {
  t_route = {conn, handler, context};
}

PgNotificationsDuringQueries::~PgNotificationsDuringQueries() { t_route = {}; }

Status pg_await_result(PGconn* conn) {
  auto deadline = std::chrono::steady_clock::now() + g_answer_deadline;
  while (PQisBusy(conn)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Status::error(fmt::format("PostgreSQL did not answer within {} s: giving the connection up",
                                       g_answer_deadline.count() / 1000.0));
    }
    pollfd fd{PQsocket(conn), POLLIN, 0};
    if (fd.fd < 0) return Status::error("connection has no socket");
    int ready = ::poll(&fd, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) return Status::error("poll failed");
    if (ready > 0 && !PQconsumeInput(conn)) return Status::error(pg_error(conn));
    hand_over_notifications(conn);
  }
  hand_over_notifications(conn);
  return Status::ok();
}

// Collects every result of the query just sent; the last one is checked and kept.
static Status collect_results(PGconn* conn, bool sent, PgResultPtr* result) {
  if (!sent) return Status::error(pg_error(conn));
  PgResultPtr last;
  Status status;  // the first failure: later results of a failed multi-statement query say less
  while (true) {
    if (auto s = pg_await_result(conn); !s) return s;
    PGresult* raw = PQgetResult(conn);
    if (!raw) break;
    if (status) {
      status = check_result(conn, raw, &last);
    } else {
      PQclear(raw);
    }
  }
  if (!status) return status;
  if (!last) return Status::error(pg_error(conn));
  if (result) *result = std::move(last);
  return Status::ok();
}

Status pg_exec(PGconn* conn, const std::string& sql, PgResultPtr* result) {
  return collect_results(conn, PQsendQuery(conn, sql.c_str()) == 1, result);
}

Status pg_exec_params(PGconn* conn, const std::string& sql, std::initializer_list<std::string> params,
                      PgResultPtr* result) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  return collect_results(conn,
                         PQsendQueryParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                           values.data(), nullptr, nullptr, 0) == 1,
                         result);
}

}  // namespace bridge
