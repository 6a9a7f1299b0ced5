#include "leadership.h"

#include <fmt/format.h>

#include <cstdlib>

#include "clock.h"
#include "log.h"

namespace bridge {

int64_t lock_key_of(std::string_view name) {
  constexpr uint64_t kOffset = 14695981039346656037ull;
  constexpr uint64_t kPrime = 1099511628211ull;
  uint64_t hash = kOffset;
  auto mix = [&](std::string_view text) {
    for (unsigned char c : text) {
      hash ^= c;
      hash *= kPrime;
    }
  };
  mix("cache_bridge:");
  mix(name);
  return static_cast<int64_t>(hash);  // two's complement: the bigint PostgreSQL takes
}

Status prepare_lease_session(PGconn* conn, LeaseSession kind) {
  // The server's detection of a vanished client, slower than the client's own (leadership.h).
  std::string sql = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
                    "SET tcp_keepalives_count = 3; SET tcp_user_timeout = 25000";
  if (kind == LeaseSession::kReplication) sql += "; SET wal_sender_timeout = '25s'";
  return pg_exec(conn, sql);
}

Status try_advisory_lock(PGconn* conn, int64_t key, bool* acquired) {
  PgResultPtr result;
  if (auto s = pg_exec_params(conn, "SELECT pg_try_advisory_lock($1::bigint)", {std::to_string(key)}, &result); !s) {
    return s;
  }
  *acquired = PQgetvalue(result.get(), 0, 0)[0] == 't';
  return Status::ok();
}

Status session_by_pid(PGconn* conn, int pid, SessionId* id) {
  PgResultPtr result;
  if (auto s = pg_exec_params(conn, "SELECT backend_start::text FROM pg_stat_activity WHERE pid = $1::int",
                              {std::to_string(pid)}, &result);
      !s) {
    return s;
  }
  if (PQntuples(result.get()) != 1) return Status::error(fmt::format("pg_stat_activity does not show backend {}", pid));
  *id = SessionId{pid, PQgetvalue(result.get(), 0, 0)};
  return Status::ok();
}

Status session_of(PGconn* conn, SessionId* id) { return session_by_pid(conn, PQbackendPID(conn), id); }

Status lock_holder(PGconn* conn, int64_t key, std::optional<SessionId>* holder) {
  PgResultPtr result;
  // A bigint key is classid (high 32 bits) and objid (low 32 bits), objsubid 1.
  if (auto s = pg_exec_params(conn,
                              "SELECT l.pid, coalesce(a.backend_start::text, '') FROM pg_locks l "
                              "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                              "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                              "AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint LIMIT 1",
                              {std::to_string(key)}, &result);
      !s) {
    return s;
  }
  holder->reset();
  if (PQntuples(result.get()) == 1) {
    *holder = SessionId{std::atoi(PQgetvalue(result.get(), 0, 0)), PQgetvalue(result.get(), 0, 1)};
  }
  return Status::ok();
}

std::optional<std::string> RoleLog::standby(int64_t now_ms) {
  last_seen_held_ms_ = now_ms;
  if (standby_) return std::nullopt;
  standby_ = true;
  standby_since_ms_ = now_ms;
  return fmt::format("standby: another bridge holds {}; waiting (webhooks and snapshots are still served here)",
                     subject_);
}

std::string RoleLog::active(int64_t now_ms) {
  std::string line;
  if (standby_) {
    line = fmt::format("active: took over {} after {} ms in standby (last seen held {} ms before)", subject_,
                       now_ms - standby_since_ms_, now_ms - last_seen_held_ms_);
  } else {
    line = fmt::format("active: holding {}", subject_);
  }
  standby_ = false;
  return line;
}

void RoleLog::lost() { standby_ = false; }

Leadership::Leadership(std::string subject, Metrics& metrics)
    : subject_(std::move(subject)), metrics_(metrics), log_(subject_) {}

void Leadership::standby() {
  std::lock_guard lock(mutex_);
  active_ = false;
  metrics_.role_active = 0;
  if (auto line = log_.standby(steady_ms())) log::info("{}", *line);
}

void Leadership::active() {
  std::lock_guard lock(mutex_);
  if (log_.in_standby()) ++metrics_.takeovers;
  std::string line = log_.active(steady_ms());
  active_ = true;
  metrics_.role_active = 1;
  log::info("{}", line);
}

void Leadership::lost() {
  std::lock_guard lock(mutex_);
  if (active_) log::info("standby: lost {} (its session ended); trying to take it again", subject_);
  active_ = false;
  metrics_.role_active = 0;
  log_.lost();
}

std::string Leadership::describe() const {
  return active_ ? "active" : fmt::format("standby (another bridge holds {})", subject_);
}

}  // namespace bridge
