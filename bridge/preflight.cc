#include "preflight.h"

#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>

#include "invalidation_store.h"
#include "pg_connection.h"
#include "soketi_client.h"

namespace bridge {
namespace {

struct Report {
  bool failed = false;
  void ok(std::string_view what) { fmt::print("ok    {}\n", what); }
  void warn(std::string_view what) { fmt::print("warn  {}\n", what); }
  void fail(std::string_view what) {
    fmt::print("FAIL  {}\n", what);
    failed = true;
  }
};

// LISTEN then NOTIFY on a private channel and wait for it: catches a pooler in transaction
// mode, which accepts LISTEN but never delivers.
Status self_notify(PGconn* conn) {
  std::string channel = fmt::format("cache_bridge_check_{}", ::getpid());
  if (auto s = pg_exec(conn, "LISTEN " + channel); !s) return s;
  if (auto s = pg_exec(conn, "NOTIFY " + channel + ", 'check'"); !s) return s;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!PQconsumeInput(conn)) return Status::error(pg_error(conn));
    while (PGnotify* notify = PQnotifies(conn)) {
      bool ours = channel == notify->relname;
      PQfreemem(notify);
      if (ours) {
        (void)pg_exec(conn, "UNLISTEN " + channel);
        return Status::ok();
      }
    }
    pollfd fd{PQsocket(conn), POLLIN, 0};
    ::poll(&fd, 1, 100);
  }
  return Status::error("a NOTIFY sent on this connection never arrived (is a pooler in "
                       "transaction mode in between? LISTEN needs a session)");
}

}  // namespace

int run_preflight(const Config& config) {
  Report report;
  report.ok("config: valid");

  PgConnPtr conn;
  if (auto s = pg_connect(config.database_url, &conn); !s) {
    report.fail("postgres: cannot connect (DATABASE_URL): " + s.message());
  } else {
    report.ok(fmt::format("postgres: connected to {} (server {})", pg_describe(conn.get()),
                          PQserverVersion(conn.get())));
    if (auto s = self_notify(conn.get()); !s) {
      report.fail("listen: " + s.message());
    } else {
      report.ok("listen: LISTEN/NOTIFY works end to end");
    }
    bool installed = false;
    if (auto s = store::check_installed(conn.get(), &installed); !s) {
      report.fail("store: " + s.message());
    } else if (!installed) {
      report.warn("store: sql/cache_invalidation.sql is not installed: no catch-up and no replay");
    } else {
      report.ok("store: cache_invalidated_at and cache_bridge_cursor present");
    }
  }

  SoketiClient client(config);
  std::vector<std::string> channels;
  if (auto s = client.occupied_channels(&channels); !s) {
    report.fail("soketi: " + s.message());
  } else {
    report.ok(fmt::format("soketi: {} accepts the app credentials ({} occupied channel(s))",
                          config.soketi_base_url(), channels.size()));
  }
  return report.failed ? 1 : 0;
}

}  // namespace bridge
