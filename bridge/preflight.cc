#include "preflight.h"

#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "clock.h"
#include "invalidation_store.h"
#include "log.h"
#include "pg_connection.h"
#include "sink_http.h"
#include "soketi_client.h"

namespace bridge {
namespace {

struct Report {
  bool failed = false;
  void ok(std::string_view what) { fmt::print("ok    {}\n", log::redacted(what)); }
  void warn(std::string_view what) { fmt::print("warn  {}\n", log::redacted(what)); }
  void fail(std::string_view what) {
    fmt::print("FAIL  {}\n", log::redacted(what));
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

// The database's clock minus the bridge's, in microseconds, from the quickest of a few round
// trips; *uncertainty_us is half that round trip.
Status clock_offset(PGconn* conn, int64_t* offset_us, int64_t* uncertainty_us) {
  int64_t best_rtt = -1;
  for (int i = 0; i < 5; ++i) {
    PgResultPtr result;
    int64_t before = epoch_us();
    if (auto s = pg_exec(conn, "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint", &result); !s) {
      return s;
    }
    int64_t after = epoch_us();
    int64_t db = std::strtoll(PQgetvalue(result.get(), 0, 0), nullptr, 10);
    if (best_rtt < 0 || after - before < best_rtt) {
      best_rtt = after - before;
      *offset_us = db - (before + after) / 2;
      *uncertainty_us = best_rtt / 2;
    }
  }
  return Status::ok();
}

// The contract holds while the bridge's clock is not behind the database's (and the readers')
// by more than BRIDGE_CLOCK_MARGIN_MS: say how far it is.
void report_clock(Report& report, PGconn* conn, const Config& config) {
  int64_t offset_us = 0, uncertainty_us = 0;
  if (auto s = clock_offset(conn, &offset_us, &uncertainty_us); !s) {
    report.fail("clock: " + s.message());
    return;
  }
  std::string line = fmt::format(
      "clock: the database's clock is {:.1f} ms {} the bridge's (+/- {:.1f} ms); the timestamp contract "
      "tolerates the bridge's clock behind by up to BRIDGE_CLOCK_MARGIN_MS ({} ms)",
      std::abs(offset_us) / 1000.0, offset_us >= 0 ? "ahead of" : "behind", uncertainty_us / 1000.0,
      config.clock_margin.count());
  if (offset_us - uncertainty_us > config.clock_margin.count() * 1000) {
    report.warn(line + ": raise the margin or synchronise the clocks (NTP)");
  } else {
    report.ok(line);
  }
}

// One value of a one-row query, or the error.
Status query_value(PGconn* conn, const std::string& sql, std::initializer_list<std::string> params,
                   std::string* value) {
  PgResultPtr result;
  if (auto s = pg_exec_params(conn, sql, params, &result); !s) return s;
  *value = PQntuples(result.get()) > 0 && !PQgetisnull(result.get(), 0, 0) ? PQgetvalue(result.get(), 0, 0) : "";
  return Status::ok();
}

// BRIDGE_SOURCE=wal: what reading a logical replication slot needs.
void report_wal(Report& report, PGconn* conn, const Config& config) {
  std::string value;
  if (auto s = query_value(conn, "SELECT current_setting('wal_level')", {}, &value); !s) {
    report.fail("wal: " + s.message());
    return;
  }
  if (value != "logical") {
    report.fail(fmt::format("wal: wal_level is {}: set wal_level = logical and restart PostgreSQL", value));
  } else {
    report.ok("wal: wal_level is logical");
  }
  if (auto s = query_value(conn, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
                           {}, &value);
      !s || value != "t") {
    report.fail("wal: this role lacks the REPLICATION attribute (ALTER ROLE ... REPLICATION)");
  } else {
    report.ok("wal: this role may read replication slots");
  }
  if (auto s = query_value(conn,
                           "SELECT (SELECT count(*) FROM pg_publication_tables t WHERE t.pubname = p.pubname) "
                           "FROM pg_publication p WHERE p.pubname = $1",
                           {config.publication}, &value);
      !s) {
    report.fail("wal: " + s.message());
  } else if (value.empty()) {
    report.fail(fmt::format("wal: publication {} does not exist (cache_invalidation_attach(..., 'wal') "
                            "creates it)", config.publication));
  } else if (value == "0") {
    report.warn(fmt::format("wal: publication {} has no tables: nothing will be published", config.publication));
  } else {
    report.ok(fmt::format("wal: publication {} has {} table(s)", config.publication, value));
  }
  PgResultPtr slot;
  if (auto s = pg_exec_params(conn,
                              "SELECT plugin = 'pgoutput' AND database = current_database(), active, "
                              "coalesce(wal_status, ''), coalesce((pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, 0), "
                              "current_setting('max_slot_wal_keep_size') FROM pg_replication_slots WHERE slot_name = $1",
                              {config.slot_name}, &slot);
      !s) {
    report.fail("wal: " + s.message());
  } else if (PQntuples(slot.get()) == 0) {
    if (auto s = query_value(conn,
                             "SELECT count(*) < current_setting('max_replication_slots')::int FROM pg_replication_slots",
                             {}, &value);
        !s || value != "t") {
      report.fail("wal: no free replication slot (raise max_replication_slots)");
    } else {
      report.ok(fmt::format("wal: replication slot {} does not exist yet: the first start creates it", config.slot_name));
    }
  } else if (std::string_view(PQgetvalue(slot.get(), 0, 0)) != "t") {
    report.fail(fmt::format("wal: replication slot {} is not a pgoutput slot of this database", config.slot_name));
  } else if (std::string_view status = PQgetvalue(slot.get(), 0, 2); status == "lost" || status == "unreserved") {
    report.fail(fmt::format("wal: replication slot {} is {} (its WAL is being or was removed; "
                            "see max_slot_wal_keep_size)", config.slot_name, status));
  } else {
    report.ok(fmt::format("wal: replication slot {} {}, {} bytes behind", config.slot_name,
                          std::string_view(PQgetvalue(slot.get(), 0, 1)) == "t" ? "in use (by a running bridge?)" : "idle",
                          PQgetvalue(slot.get(), 0, 3)));
  }
  if (auto s = query_value(conn, "SELECT current_setting('max_slot_wal_keep_size')", {}, &value); s && value == "-1") {
    report.warn("wal: max_slot_wal_keep_size is unlimited: a bridge that stays away keeps WAL until the disk fills");
  }
  PgConnPtr stream;
  if (auto s = pg_connect(config.database_url, &stream, PgSession::kReplication); !s) {
    report.fail("wal: cannot open a replication connection (replication=database): " + s.message());
  } else if (auto s = pg_exec(stream.get(), "IDENTIFY_SYSTEM"); !s) {
    report.fail("wal: the replication connection refuses replication commands: " + s.message());
  } else {
    report.ok("wal: replication connection works");
  }
}

// An empty, signed batch: the receiver's answer says whether the URL and the secret are right.
void check_http_sink(Report& report, const Config& config) {
  Metrics unused({});
  HttpSink sink(config, unused);
  PublishOutcome outcome = sink.connect()->send({});
  if (outcome.kind == PublishOutcome::Kind::kOk) {
    report.ok(fmt::format("http sink: {} accepts the bridge's signed requests (HTTP {})", sink.display_url(),
                          outcome.http_status));
  } else if (outcome.sender_rejected()) {
    report.fail(fmt::format("http sink: {} answered HTTP {}: {}: {}", sink.display_url(), outcome.http_status,
                            sink.rejected_hint(), outcome.detail));
  } else {
    report.fail(fmt::format("http sink: {} did not accept an empty batch ({}{}): {}", sink.display_url(),
                            outcome.http_status ? "HTTP " : "",
                            outcome.http_status ? std::to_string(outcome.http_status) : "no answer",
                            outcome.detail));
  }
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
    if (config.source == Config::Source::kWal) {
      report_wal(report, conn.get(), config);
    } else if (auto s = self_notify(conn.get()); !s) {
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
      bool stamps = false;
      PgResultPtr rights;
      if (auto s = store::check_stamps_installed(conn.get(), &stamps); !s || !stamps) {
        report.warn("store: cache_bridge_stamp is missing (rerun sql/cache_invalidation.sql): "
                    "no replays or snapshots of what the bridge publishes");
      } else if (auto s = pg_exec(conn.get(),
                                  "SELECT has_table_privilege('cache_bridge_stamp', 'SELECT, INSERT, UPDATE') "
                                  "AND has_table_privilege('cache_bridge_cursor', 'SELECT, INSERT, UPDATE') "
                                  "AND has_table_privilege('cache_invalidation_log', 'SELECT'), "
                                  "has_table_privilege('cache_invalidation_log', 'DELETE')",
                                  &rights);
                 !s || PQgetvalue(rights.get(), 0, 0)[0] != 't') {
        // Without them the stamps wait in memory and, once their bound is reached, hold back
        // publishing: say so before it runs.
        report.fail("store: this role needs SELECT, INSERT, UPDATE on cache_bridge_stamp and "
                    "cache_bridge_cursor, and SELECT, DELETE on cache_invalidation_log");
      } else if (config.source != Config::Source::kWal && PQgetvalue(rights.get(), 0, 1)[0] != 't') {
        // Catch-up works; the log only grows (until cache_invalidation_prune runs).
        report.warn("store: this role may not DELETE from cache_invalidation_log: the bridge cannot trim "
                    "it of what every cursor has passed (GRANT DELETE ON cache_invalidation_log)");
      } else {
        report.ok("store: cache_invalidation_log, cache_bridge_cursor and cache_bridge_stamp present and writable");
      }
    }
    report_clock(report, conn.get(), config);
  }

  // Every address, each on its own: the bridge fails over past one that is down, but an address
  // that refuses the credentials (or is not Soketi) would only be found out during a failover.
  size_t answered = 0;
  std::vector<std::string> down;
  for (size_t i = 0; i < config.soketi_addresses.size(); ++i) {
    Config one = config;
    one.soketi_addresses = {config.soketi_addresses[i]};
    SoketiClient client(one);
    std::vector<std::string> channels;
    if (auto s = client.occupied_channels(&channels); !s) {
      if (!client.answered()) {  // no answer, or a 5xx: this node is down or in trouble
        down.push_back(s.message());
      } else {
        report.fail("soketi: " + s.message());
        ++answered;
      }
    } else {
      ++answered;
      report.ok(fmt::format("soketi: {} accepts the app credentials ({} occupied channel(s))",
                            config.soketi_base_url(i), channels.size()));
    }
  }
  for (const auto& why : down) {
    // One node down of several: the bridge publishes through the others meanwhile.
    if (answered > 0) {
      report.warn("soketi: " + why + " (the bridge fails over to the other addresses meanwhile)");
    } else {
      report.fail("soketi: " + why);
    }
  }
  if (!config.http_sink_url.empty()) check_http_sink(report, config);
  return report.failed ? 1 : 0;
}

}  // namespace bridge
