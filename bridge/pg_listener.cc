#include <pthread.h>

#include "pg_listener.h"

#include <fmt/ranges.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>

#include "channel_name.h"
#include "clock.h"
#include "invalidation_store.h"
#include "log.h"
#include "notification_mapper.h"
#include "reconnect_backoff.h"
#include "stamp_upkeep.h"

namespace bridge {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr milliseconds kPollInterval{250};
constexpr milliseconds kCheckpointInterval{1000};
constexpr milliseconds kVerifyInterval{5000};
constexpr milliseconds kReadyWindow{15000};
constexpr int kReceiveBufferBytes = 256 * 1024;
// Past this, /readyz says so: the queue is 8 GB, so something has been stuck for a long time.
constexpr double kNotifyQueueAlert = 0.5;

}  // namespace

PgListener::PgListener(const Config& config, CoalescingQueue& queue, ChangeClock& clock,
                       StampWriter& stamps, Metrics& metrics, Leadership& leadership)
    : config_(config), queue_(queue), clock_(clock), stamps_(stamps), metrics_(metrics),
      leadership_(leadership), lock_key_(lock_key_of(config.cursor_name)),
      stamper_(config.channel_template, clock, stamps) {}

PgListener::~PgListener() { stop(); }

void PgListener::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "pg-listener");
    run();
  });
}

void PgListener::finish_receiving(std::chrono::milliseconds timeout) {
  finish_requested_ = true;
  std::unique_lock lock(finish_mutex_);
  if (!finish_reached_.wait_for(lock, timeout, [&] { return finish_answered_; })) {
    log::info("shutting down: no final checkpoint (the listener is behind or disconnected); "
              "the next start catches up");
  }
}

void PgListener::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void PgListener::save_final_cursor(bool all_published) {
  bool seen;
  {
    std::lock_guard lock(finish_mutex_);
    seen = final_marker_seen_;
  }
  if (!conn_ || !seen || !checkpoint_ || !checkpoint_->sequence_after || !all_published ||
      queue_.low_watermark() < *checkpoint_->sequence_after) {
    return;
  }
  if (auto s = store::save_cursor(conn_.get(), config_.cursor_name, cursor_of(*checkpoint_)); !s) {
    log::warn("shutting down: cannot save the cursor: {}", s.message());
    return;
  }
  log::info("shutting down: cursor saved at transaction {}", checkpoint_->xmin);
}

bool PgListener::ready(std::string* reason) const {
  if (!leadership_.is_active()) {
    if (!session_up_) {
      *reason = fmt::format("PostgreSQL connection is down (standby for {})", leadership_.subject());
      return false;
    }
    if (steady_ms() - last_verified_ms_ > kReadyWindow.count()) {
      *reason = fmt::format("PostgreSQL connection has not answered for 15 s (standby for {})", leadership_.subject());
      return false;
    }
    return true;
  }
  if (!connected_) {
    *reason = "PostgreSQL LISTEN connection is down";
    return false;
  }
  if (steady_ms() - last_verified_ms_ > kReadyWindow.count()) {
    *reason = "PostgreSQL LISTEN connection has not answered for 15 s";
    return false;
  }
  if (double usage = metrics_.notify_queue_usage; usage > kNotifyQueueAlert) {
    *reason = fmt::format("PostgreSQL's notification queue is {:.0f}% full (writers' COMMITs fail at 100%)",
                          usage * 100);
    return false;
  }
  return true;
}

void PgListener::run() {
  ReconnectBackoff backoff;
  bool first = true;
  while (!stopping_) {
    Status status = connect_and_catch_up();
    if (status && !leadership_.is_active()) {
      // Shutting down as a standby (take_lock answered finish_receiving): wait for stop().
      while (!stopping_) std::this_thread::sleep_for(milliseconds(50));
      break;
    }
    if (status) {
      if (!first) ++metrics_.pg_reconnects;
      first = false;
      backoff.reset();
      status = receive_until_broken();
    }
    connected_ = false;
    metrics_.listen_connected = 0;
    if (stopping_ && status) break;  // keep the connection and checkpoint for save_final_cursor()
    if (leadership_.is_active()) {
      leadership_.lost();
      metrics_.cursor_pending_since_us = 0;  // the next active one's lag now
      // Its backend may live on (stopped, or the server not yet aware) and keep the lock.
      if (abandoned_.size() >= 8) abandoned_.erase(abandoned_.begin());
      abandoned_.push_back(session_);
    }
    borrowing_ = false;
    conn_.reset();
    session_up_ = false;
    checkpoint_.reset();
    if (stopping_) break;
    auto wait = backoff.next();
    log::warn("PostgreSQL: {}; reconnecting in {} ms", status.message(), wait.count());
    ReconnectBackoff::sleep(wait, stopping_);
  }
}

Status PgListener::connect_and_catch_up() {
  if (auto s = pg_connect(config_.database_url, &conn_, PgSession::kQueries, kClientLeaseOptions); !s) return s;
  if (auto s = prepare_lease_session(conn_.get(), LeaseSession::kNotify); !s) return s;
  if (auto s = session_of(conn_.get(), &session_); !s) return s;
  session_up_ = true;
  last_verified_ms_ = steady_ms();
  bool taken = false;
  if (auto s = take_lock(&taken); !s || !taken) return s;
  // libpq reads everything the kernel has buffered and keeps every notification in it in
  // memory; a small receive buffer leaves a backlog in PostgreSQL's queue instead.
  int receive_buffer = kReceiveBufferBytes;
  ::setsockopt(PQsocket(conn_.get()), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  for (const auto& channel : config_.pg_channels) {
    char* quoted = PQescapeIdentifier(conn_.get(), channel.c_str(), channel.size());
    if (!quoted) return Status::error(pg_error(conn_.get()));
    std::string sql = std::string("LISTEN ") + quoted;
    PQfreemem(quoted);
    if (auto s = pg_exec(conn_.get(), sql); !s) return s;
  }
  // The barrier's markers come back on a channel only this session listens to.
  marker_channel_ = fmt::format("cache_bridge_barrier_{}", PQbackendPID(conn_.get()));
  if (auto s = pg_exec(conn_.get(), "LISTEN " + marker_channel_); !s) return s;
  if (auto s = store::check_installed(conn_.get(), &store_installed_); !s) return s;
  log::info("PostgreSQL: listening on {} at {}", fmt::join(config_.pg_channels, ","),
            pg_describe(conn_.get()));

  if (!store_installed_) {
    log::warn("PostgreSQL: table cache_invalidation_log not found (install or rerun sql/cache_invalidation.sql); "
              "changes committed while the bridge is away will not be caught up, nor replayed");
  } else {
    store::Cursor cursor;
    if (auto s = store::load_cursor(conn_.get(), config_.cursor_name, &cursor); !s) return s;
    if (auto s = prepare_stamps(&cursor); !s) return s;
    // Stamps after the cursor's resume_seq may not have been published (held back, or a
    // by-hand NOTIFY): publish them from the stamps.
    backlog_ = Backlog{cursor.resume_seq + 1, clock_.last(), {}};
    size_t count = 0;
    std::string snapshot_xmin;
    auto s = store::read_since(
        conn_.get(), cursor.resume_xid,
        [&](Invalidation inv) {
          ++count;
          push(std::move(inv));
        },
        &snapshot_xmin);
    if (!s) return s;
    metrics_.catchup_invalidations += count;
    if (count > 0) log::info("caught up {} invalidation(s) committed since the last checkpoint", count);
    // Everything before this snapshot is now queued: the checkpoint needs no delivery delay.
    checkpoint_ = Checkpoint{snapshot_xmin, 0, queue_.next_sequence(), clock_.last()};
    next_trim_ = steady_clock::now() + config_.log_trim_interval;
  }
  connected_ = true;
  metrics_.listen_connected = 1;
  last_verified_ms_ = steady_ms();
  return Status::ok();
}

Status PgListener::take_lock(bool* taken) {
  constexpr milliseconds kLockPoll{1000};
  while (!stopping_ && !finish_requested_) {
    if (auto s = try_advisory_lock(conn_.get(), lock_key_, taken); !s) return s;
    last_verified_ms_ = steady_ms();
    if (*taken) {
      abandoned_.clear();  // whatever they were, none holds the lock
      leadership_.active();
      return Status::ok();
    }
    std::optional<SessionId> holder;
    if (auto s = lock_holder(conn_.get(), lock_key_, &holder); !s) return s;
    if (abandoned(holder)) {
      log::warn("PostgreSQL: the lock of {} is still held by this bridge's previous session (backend {}, "
                "given up): active on the new session meanwhile; asking the server to end the old one",
                leadership_.subject(), holder->pid);
      if (auto s = pg_exec_params(conn_.get(), "SELECT pg_terminate_backend($1::int)", {std::to_string(holder->pid)});
          !s) {
        log::warn("cannot end backend {}: {}", holder->pid, s.message());
      }
      borrowing_ = true;
      next_borrow_check_ = steady_clock::now();
      leadership_.active();
      *taken = true;
      return Status::ok();
    }
    leadership_.standby();
    for (auto until = steady_clock::now() + kLockPoll;
         !stopping_ && !finish_requested_ && steady_clock::now() < until;) {
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
  // Shutting down as a standby: nothing received, nothing to wait for.
  std::lock_guard lock(finish_mutex_);
  finish_answered_ = true;
  finish_reached_.notify_all();
  return Status::ok();
}

bool PgListener::abandoned(const std::optional<SessionId>& holder) const {
  return holder && !holder->started.empty() &&
         std::find(abandoned_.begin(), abandoned_.end(), *holder) != abandoned_.end();
}

Status PgListener::check_borrowed_lock() {
  constexpr milliseconds kBorrowCheck{200};
  next_borrow_check_ = steady_clock::now() + kBorrowCheck;
  bool taken = false;
  if (auto s = try_advisory_lock(conn_.get(), lock_key_, &taken); !s) return s;
  if (taken) {
    borrowing_ = false;
    abandoned_.clear();
    log::info("active: holding {} again (the previous session is gone)", leadership_.subject());
    return Status::ok();
  }
  std::optional<SessionId> holder;
  if (auto s = lock_holder(conn_.get(), lock_key_, &holder); !s) return s;
  // Nobody: the old session just ended, the next try takes it.
  if (!holder || abandoned(holder)) return Status::ok();
  return Status::error(fmt::format("another bridge took {} over from this bridge's previous session",
                                   leadership_.subject()));
}

Status PgListener::prepare_stamps(store::Cursor* cursor) {
  if (auto s = store::check_stamps_installed(conn_.get(), &stamps_installed_); !s || !stamps_installed_) {
    return s;
  }
  // Stamps continue after the last one stored (an earlier run, or another bridge of this name).
  int64_t last_seq = 0;
  if (auto s = store::max_stamp_seq(conn_.get(), config_.cursor_name, &last_seq); !s) return s;
  clock_.resume_after(last_seq);
  StampUpkeepResult upkeep;
  if (auto s = upkeep_stamps(conn_.get(), config_.cursor_name, config_.channel_template,
                             config_.replay_max_age, clock_, &upkeep);
      !s) {
    return s;
  }
  if (upkeep.rerouted > 0) log::info("stamps: {} key(s) routed by the new BRIDGE_CHANNEL", upkeep.rerouted);
  if (upkeep.seeded > 0) {
    // Stamped for replays, not news: the resume point moves past them.
    cursor->resume_seq = clock_.last();
    if (auto s = store::save_cursor(conn_.get(), config_.cursor_name, *cursor); !s) return s;
    log::info("stamps: {} key(s) from the store stamped for replays", upkeep.seeded);
  }
  return Status::ok();
}

Status PgListener::receive_until_broken() {
  auto next_checkpoint = steady_clock::now() + kCheckpointInterval;
  auto next_verify = steady_clock::now() + kVerifyInterval;
  // The listener's own queries (checkpoints, the backlog's pages) wait behind every
  // notification PostgreSQL has queued for this session: they are handled as they come.
  PgNotificationsDuringQueries during_queries(
      conn_.get(), [](void* self, PGnotify& notify) { static_cast<PgListener*>(self)->handle_during_query(notify); },
      this);
  deferred_markers_.clear();
  while (!stopping_) {
    pollfd fd{PQsocket(conn_.get()), POLLIN, 0};
    if (fd.fd < 0) return Status::error("connection has no socket");
    // With changes held back, look again soon: the queue empties as Soketi takes them.
    int ready = ::poll(&fd, 1, static_cast<int>(backlog_.empty() ? kPollInterval.count() : 10));
    if (ready < 0 && errno != EINTR) return Status::error("poll failed");
    if (ready > 0) {
      if (!PQconsumeInput(conn_.get())) return Status::error("connection lost: " + pg_error(conn_.get()));
      last_verified_ms_ = steady_ms();
    }
    while (PGnotify* raw = PQnotifies(conn_.get())) {
      handle_notification(*raw);
      PQfreemem(raw);
    }
    handle_deferred_markers();
    if (auto s = drain_backlog(); !s) return s;
    auto now = steady_clock::now();
    if (borrowing_ && now >= next_borrow_check_) {
      if (auto s = check_borrowed_lock(); !s) return s;
    }
    if (finish_requested_ && !final_barrier_sent_) {
      if (auto s = send_final_barrier(); !s) return s;
    }
    if (now >= next_checkpoint && store_installed_ && !final_barrier_sent_) {
      if (auto s = advance_checkpoint(); !s) return s;
      handle_deferred_markers();
      last_verified_ms_ = steady_ms();
      next_checkpoint = now + kCheckpointInterval;
    }
    if (now >= next_verify) {
      // Detects a half-open connection that poll() alone would not notice, and reads how full
      // PostgreSQL's notification queue is: once full, every NOTIFYing COMMIT fails.
      PgResultPtr usage;
      if (auto s = pg_exec(conn_.get(), "SELECT pg_notification_queue_usage()", &usage); !s) return s;
      metrics_.notify_queue_usage = std::strtod(PQgetvalue(usage.get(), 0, 0), nullptr);
      last_verified_ms_ = steady_ms();
      next_verify = now + kVerifyInterval;
    }
  }
  handle_deferred_markers();
  return Status::ok();
}

void PgListener::handle_during_query(const PGnotify& notify) {
  // A marker waits until the query is over: the query may be the one that sends it, before
  // the checkpoint knows its number. Those after it then count as before it (the cursor waits
  // a little longer; nothing is passed early).
  if (marker_channel_ == notify.relname) {
    deferred_markers_.emplace_back(notify.extra ? notify.extra : "");
    return;
  }
  handle_notification(notify);
}

void PgListener::handle_deferred_markers() {
  for (const auto& payload : deferred_markers_) handle_marker(marker_channel_, payload);
  deferred_markers_.clear();
}

void PgListener::handle_notification(const PGnotify& notify) {
  std::string_view channel = notify.relname;
  std::string_view payload = notify.extra ? notify.extra : "";
  if (handle_marker(channel, payload)) return;
  if (auto it = metrics_.notifications_received.find(channel);
      it != metrics_.notifications_received.end()) {
    ++it->second;
  }
  MappingResult mapped = map_notification(payload);
  if (!mapped.error.empty()) {
    // Refused, or (a many-keys payload) some of its ids skipped: counted once either way.
    ++metrics_.notifications_invalid;
    log::warn("skipped {}notification on {}: {}: \"{}\"", mapped.invalidations.empty() ? "" : "part of a ",
              channel, mapped.error, log::excerpt(payload));
    if (mapped.invalidations.empty()) return;
  }
  // The payload's claim is never used; one from the future is a forged or misconfigured
  // sender, so say so.
  if (mapped.claimed_at_ms && *mapped.claimed_at_ms > epoch_ms() + config_.clock_margin.count()) {
    ++metrics_.payload_timestamps_clamped;
    log::warn("notification on {} for \"{}\" claims invalidated_at {}, later than its receipt: "
              "stamped at receipt instead", channel, log::excerpt(mapped.invalidations.front().cache_key),
              *mapped.claimed_at_ms);
  }
  for (Invalidation& invalidation : mapped.invalidations) push(std::move(invalidation));
}

void PgListener::push(Invalidation invalidation) {
  std::string channel;
  if (!stamper_.stamp(invalidation, &channel)) return;  // shutting down: the cursor still has it
  // For the cursor's lag (the status page, /metrics): the oldest change not passed yet.
  // Without the store there is no cursor to lag.
  if (store_installed_ && metrics_.cursor_pending_since_us == 0) {
    metrics_.cursor_pending_since_us = invalidation.seq;
  }
  if (checkpoint_ && checkpoint_->sequence_after && checkpoint_->first_seq_after == 0) {
    checkpoint_->first_seq_after = invalidation.seq;
  }
  // Without the stamps table nothing can be held back: wait for room, as before it existed.
  if (!stamps_installed_) {
    queue_.push(channel, std::move(invalidation));
    return;
  }
  int64_t seq = invalidation.seq;
  if (queue_.try_push(channel, invalidation) || queue_.closed()) return backlog_.queued_live(seq);
  // The queue is full: hold the change back rather than stop reading (its stamp is stored).
  if (backlog_.empty()) {
    log::warn("publishing is behind ({} keys waiting): holding changes back in the store from seq {} "
              "and reading on, so PostgreSQL's notification queue never fills",
              queue_.max_keys(), seq);
    backlog_.from = seq;
  }
  backlog_.to = seq;
  ++metrics_.notifications_held_back;
}

Status PgListener::send_final_barrier() {
  // Replaces whatever checkpoint was under way.
  final_barrier_sent_ = true;
  checkpoint_.reset();
  if (store_installed_) return advance_checkpoint();
  std::lock_guard lock(finish_mutex_);  // nothing to checkpoint: answer at once
  finish_answered_ = true;
  finish_reached_.notify_all();
  return Status::ok();
}

Status PgListener::drain_backlog() {
  constexpr int kPage = 1000;
  constexpr int kMaxPagesPerCall = 20;  // then back to reading notifications
  // What is read must be in the store: up to `written`, whatever is held back meanwhile.
  if (backlog_.empty() || !stamps_.flush(std::chrono::milliseconds(200))) return Status::ok();
  const int64_t written = backlog_.to;
  std::vector<store::StampRow> rows;
  // Live changes first: fill the queue only up to half.
  for (int page = 0; page < kMaxPagesPerCall && backlog_.from <= written && queue_half_empty(); ++page) {
    if (auto s = store::read_stamps_between(conn_.get(), config_.cursor_name, backlog_.from, written,
                                            kPage, &rows);
        !s) {
      return s;
    }
    for (auto& row : rows) {
      if (!backlog_.went_live(row.seq)) {
        Invalidation inv;
        inv.cache_key = std::move(row.cache_key);
        inv.table = std::move(row.table);
        inv.seq = row.seq;
        if (!queue_.try_push(row.channel, inv)) return Status::ok();  // full again: later
      }
      backlog_.from = row.seq + 1;
    }
    if (rows.size() < static_cast<size_t>(kPage)) {
      backlog_.from = written + 1;
      if (backlog_.empty()) {
        backlog_.live.clear();
        log::info("publishing caught up with the changes held back");
      }
    }
  }
  return Status::ok();
}

bool PgListener::queue_half_empty() const {
  return queue_.pending_keys() < queue_.max_keys() / 2 && queue_.bytes() < queue_.max_bytes() / 2;
}

bool PgListener::Backlog::went_live(int64_t seq) {
  while (!live.empty() && live.front() < seq) live.pop_front();  // the read-back only moves forward
  if (live.empty() || live.front() != seq) return false;
  live.pop_front();
  return true;
}

store::Cursor PgListener::cursor_of(const Checkpoint& checkpoint) const {
  // Stamps above resume_seq are published again after a restart: none held back may be below.
  int64_t seq = checkpoint.seq_at_marker;
  if (!backlog_.empty()) seq = std::min(seq, backlog_.from - 1);
  return {checkpoint.xmin, seq};
}

Status PgListener::advance_checkpoint() {
  if (!checkpoint_) {
    std::string xmin;
    if (auto s = store::current_xmin(conn_.get(), &xmin); !s) return s;
    uint64_t marker = ++markers_sent_;
    if (auto s = pg_exec_params(conn_.get(), "SELECT pg_notify($1, $2)",
                                {marker_channel_, std::to_string(marker)});
        !s) {
      return s;
    }
    checkpoint_ = Checkpoint{xmin, marker, std::nullopt};
    return Status::ok();
  }
  if (!checkpoint_->sequence_after) return Status::ok();  // its marker is still on its way
  if (queue_.low_watermark() >= *checkpoint_->sequence_after) {
    // The cursor passes a change only once its stamp is stored (the writer may still hold
    // it): held-back changes are published from their stamps after a restart, and replays
    // and snapshots read every change from there.
    if (!stamps_.flush(std::chrono::milliseconds(200))) return Status::ok();
    if (auto s = store::save_cursor(conn_.get(), config_.cursor_name, cursor_of(*checkpoint_)); !s) return s;
    int64_t pending = checkpoint_->first_seq_after;  // 0: nothing came after the marker
    if (!backlog_.empty() && (pending == 0 || backlog_.from < pending)) pending = backlog_.from;
    metrics_.cursor_pending_since_us = pending;
    log::debug("checkpoint: resume from transaction {}", checkpoint_->xmin);
    checkpoint_.reset();
    if (auto s = trim_log(); !s) return s;
  }
  return Status::ok();
}

Status PgListener::trim_log() {
  if (trim_denied_ || config_.log_trim_interval.count() == 0 || steady_clock::now() < next_trim_) {
    return Status::ok();
  }
  next_trim_ = steady_clock::now() + config_.log_trim_interval;
  // In bounded statements (well within the session's statement_timeout, however big the log,
  // as after an upgrade): a full batch brings the next one to the next saved cursor.
  constexpr int kTrimBatchRows = 10000;
  int64_t deleted = 0;
  if (auto s = store::trim_log(conn_.get(), kTrimBatchRows, &deleted); !s) {
    if (PQstatus(conn_.get()) != CONNECTION_OK) return s;
    // The log only grows meanwhile: catch-up and everything else work without the trim.
    if (s.message().find("permission denied") != std::string::npos) {
      trim_denied_ = true;
      log::warn("cannot trim cache_invalidation_log ({}): it keeps every row until "
                "cache_invalidation_prune runs; GRANT DELETE ON cache_invalidation_log to this role",
                s.message());
    } else {
      log::warn("cannot trim cache_invalidation_log: {}", s.message());
    }
    return Status::ok();
  }
  if (deleted == kTrimBatchRows) next_trim_ = steady_clock::now();
  metrics_.log_rows_trimmed += static_cast<uint64_t>(deleted);
  log::debug("trimmed {} row(s) every cursor has passed from cache_invalidation_log", deleted);
  return Status::ok();
}

bool PgListener::handle_marker(std::string_view channel, std::string_view payload) {
  if (channel != marker_channel_) return false;
  // Every transaction before the checkpoint's snapshot has been received (and queued).
  if (checkpoint_ && !checkpoint_->sequence_after && payload == std::to_string(checkpoint_->marker)) {
    checkpoint_->sequence_after = queue_.next_sequence();
    checkpoint_->seq_at_marker = clock_.last();
    if (final_barrier_sent_) {
      std::lock_guard lock(finish_mutex_);
      final_marker_seen_ = finish_answered_ = true;
      finish_reached_.notify_all();
    }
  }
  return true;
}

}  // namespace bridge
