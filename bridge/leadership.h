// Leadership: which of the bridges that share a cursor (BRIDGE_CURSOR_NAME; under the WAL source
// the slot BRIDGE_SLOT) publishes changes. Exactly one is active; the others are standbys whose
// change source waits, while their webhook server, replayer and publisher run as usual (replays
// read the shared store and are idempotent for clients, who order by seq), so a webhook that
// reaches a standby is still acted on. A standby writes nothing the active owns: it saves no
// cursor, trims no log, writes no stamp (it stamps nothing) and touches no slot.
//
// The lock is PostgreSQL's, on the session the changes come through, so a bridge can take a
// change only while it holds the lock:
//   notify  a session advisory lock, key lock_key_of(cursor name) (below), taken with
//           pg_try_advisory_lock on the LISTEN session itself, before it LISTENs. A standby
//           polls it every second on that session and does not LISTEN (a session that
//           listens and never reads holds PostgreSQL's notification queue from being
//           truncated). Why the LISTEN session and not a dedicated one: notifications reach
//           only that backend, and the catch-up log is read through it, so the server ends the
//           lock and the changes' path together; no moment exists in which a bridge receives
//           changes without holding the lock (a dedicated lock session could die while the
//           LISTEN session lives on, and the bridge would have to notice and stop in time).
//   wal     the slot: START_REPLICATION on a slot in use fails ("replication slot ... is active
//           for PID ..."). A standby looks at pg_replication_slots.active every second on its
//           query connection and starts streaming once the slot is free. Creating (or, once
//           lost, re-creating) the slot and starting the stream happen under a short-lived
//           advisory lock (lock_key_of("slot:" + slot)), so two bridges never race on them.
//
// What may overlap: the active that lost its session still publishes what it had queued (taken
// while it held the lock, not yet passed by the cursor or confirmed), and the new active
// publishes the same changes again from the cursor: duplicates, for as long as the old queue
// takes to drain (milliseconds with Soketi up). It can take nothing new.
//
// The lock session's lease. The server releases the lock once it ends the backend; the active
// must have given the session up before then, so it watches the session more tightly than the
// server does (kClientLeaseOptions win over the connection string):
//   client  TCP keepalives after 3 s idle, 1 s apart, tcp_user_timeout 6 s: a session that stops
//           answering is dropped within ~6 s of the last packet heard, or of the first
//           statement left unanswered (the notify source sends one at least every 5 s, the WAL
//           source a status update every second): within ~11 s of a partition.
//   server  (set in the session by prepare_lease_session) TCP keepalives after 10 s idle, 5 s
//           apart, 3 of them, and tcp_user_timeout 25 s: the server ends a backend whose
//           client vanished no sooner than 25 s after it last heard from it, whatever the
//           server's defaults (often 2 hours); wal: also wal_sender_timeout 25 s.
// So after a network partition the active has dropped its session (~11 s) before the server
// can release the lock (25 s), and a vanished active is replaced within about 26 s; one killed
// (the process gone: its kernel closes the socket) or cut off by the server
// (pg_terminate_backend, a restart) within the standby's 1 s poll. Not covered: an active that
// hangs with its connection up keeps the lock (nothing on the server can tell it from a busy one).
//
// The bridge's own abandoned session. A bridge that gives its lock session up (it stopped
// answering within BRIDGE_PG_TIMEOUT_MS: a stopped or stuck backend, a half-open connection)
// may find, on its next session, the lock still held by that old backend, which the server
// ends only once it runs again or notices the client gone. No other bridge can hold the lock
// meanwhile, so the notify source stays active on its new session ("borrowing": it knows the
// old session by pid and backend_start), asks the server to end the old one
// (pg_terminate_backend), and tries the lock every 200 ms; once the old session is gone it
// holds the lock itself, or, should a standby have been quicker, steps down at its next check
// (200 ms, plus up to one 250 ms wait for notifications: about half a second; the only case
// in which two bridges receive changes at once). The WAL source cannot stream without the
// slot: it ends its old walsender and waits for the slot as a standby.
//
// Thread-safe: the change source reports, every thread may read.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "metrics.h"
#include "pg_connection.h"
#include "status.h"

namespace bridge {

// The advisory lock key of `name`: FNV-1a 64 of "cache_bridge:" + name, as a signed bigint
// (stable across versions and platforms, unlike hashtext). In pg_locks it is the advisory lock
// with objsubid 1, classid its high and objid its low 32 bits. Pure.
int64_t lock_key_of(std::string_view name);

// For pg_connect: the lock session's client-side dead-peer detection (see above).
inline constexpr std::initializer_list<PgOption> kClientLeaseOptions = {
    {"keepalives", "1"}, {"keepalives_idle", "3"}, {"keepalives_interval", "1"},
    {"keepalives_count", "3"}, {"tcp_user_timeout", "6000"}};

enum class LeaseSession { kNotify, kReplication };
// Sets the server's side of the lease on a lock session (see above; on a Unix socket the TCP
// settings do nothing, and need not).
[[nodiscard]] Status prepare_lease_session(PGconn* conn, LeaseSession kind);

// pg_try_advisory_lock(key) on `conn`: *acquired tells whether this session holds it now.
[[nodiscard]] Status try_advisory_lock(PGconn* conn, int64_t key, bool* acquired);

// A backend, told apart from a later one with the same pid by its start.
struct SessionId {
  int pid = 0;
  std::string started;  // pg_stat_activity.backend_start as text
  bool operator==(const SessionId&) const = default;
};
// The session of `conn`; session_by_pid: the backend `pid`, looked up on `conn`.
[[nodiscard]] Status session_of(PGconn* conn, SessionId* id);
[[nodiscard]] Status session_by_pid(PGconn* conn, int pid, SessionId* id);
// The session that holds advisory lock `key` (nullopt: none; started is empty for a session
// of another role, whose backend_start is hidden).
[[nodiscard]] Status lock_holder(PGconn* conn, int64_t key, std::optional<SessionId>* holder);

// The log lines of the role changes, once per change. Pure: the caller passes the time (not
// thread-safe: Leadership holds it under its mutex).
class RoleLog {
 public:
  explicit RoleLog(std::string subject) : subject_(std::move(subject)) {}  // "cursor default"

  // Another bridge holds the lock (seen at `now_ms`): the line to log on becoming standby,
  // nothing while it stays so.
  std::optional<std::string> standby(int64_t now_ms);
  // The lock was taken at `now_ms`: the line to log.
  std::string active(int64_t now_ms);
  // The lock session ended: the next standby() logs again.
  void lost();
  bool in_standby() const { return standby_; }

 private:
  std::string subject_;
  bool standby_ = false;
  int64_t standby_since_ms_ = 0;
  int64_t last_seen_held_ms_ = 0;
};

class Leadership {
 public:
  // `subject` names what is held in the log lines ("cursor default", "replication slot cache_bridge").
  Leadership(std::string subject, Metrics& metrics);
  Leadership(const Leadership&) = delete;
  Leadership& operator=(const Leadership&) = delete;

  // Reported by the change source: another bridge holds the lock; this one holds it; the
  // session that held it is gone.
  void standby();
  void active();
  void lost();

  bool is_active() const { return active_; }
  const std::string& subject() const { return subject_; }
  // For /readyz and the status page: "active", or "standby (another bridge holds cursor X)".
  std::string describe() const;

 private:
  const std::string subject_;
  Metrics& metrics_;
  std::atomic<bool> active_{false};
  std::mutex mutex_;
  RoleLog log_;  // protected by mutex_
};

}  // namespace bridge
