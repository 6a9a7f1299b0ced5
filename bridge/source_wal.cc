#include <pthread.h>

#include "source_wal.h"

#include <fmt/format.h>
#include <poll.h>

#include <algorithm>
#include <charconv>
#include <unordered_set>

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

constexpr int64_t kStatusIntervalMs = 1000;    // confirm what was published
constexpr int64_t kLivenessIntervalMs = 5000;  // ask the server to answer
constexpr int64_t kSlotCheckIntervalMs = 5000;
constexpr int64_t kReadyWindowMs = 15000;
constexpr int64_t kStandbyPollMs = 1000;  // a standby looks at the slot this often
constexpr int64_t kTablesReloadMs = 1000;  // at most this often for an unknown table
constexpr int64_t kVisibilityIntervalUs = 1000;  // at most one visibility query per this
// A transaction that changes more keys than this makes its tables stale as a whole (one
// "resync" invalidation per table) instead of holding every key in memory.
constexpr size_t kMaxKeysPerTransaction = 100000;
// The prefix of logical decoding messages that carry a by-hand invalidation.
constexpr std::string_view kMessagePrefix = "cache_invalidation";

std::string quoted_identifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + '"';
}

std::string quoted_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + '\'';
}

Invalidation resync_of(const std::string& table) {
  Invalidation inv;
  inv.cache_key = table;
  inv.table = table;
  inv.action = "resync";
  return inv;
}

}  // namespace

WalSource::WalSource(const Config& config, CoalescingQueue& queue, ChangeClock& clock,
                     StampWriter& stamps, Metrics& metrics, Leadership& leadership)
    : config_(config), queue_(queue), clock_(clock), stamps_(stamps), metrics_(metrics),
      leadership_(leadership), setup_lock_key_(lock_key_of("slot:" + config.slot_name)),
      stamper_(config.channel_template, clock, stamps) {}

WalSource::~WalSource() { stop(); }

void WalSource::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "wal-source");
    run();
  });
}

void WalSource::finish_receiving(milliseconds timeout) {
  finish_requested_ = true;
  std::unique_lock lock(finish_mutex_);
  if (!finish_reached_.wait_for(lock, timeout, [&] { return finish_answered_; })) {
    log::info("shutting down: changes received are not all queued yet; the slot re-sends them");
  }
}

void WalSource::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void WalSource::save_final_cursor(bool all_published) {
  if (!stream_ || !streaming_) return;
  // Given-up events count as done in the queue: confirm nothing new unless all went out.
  if (all_published) {
    if (auto s = send_status(false); !s) {
      log::warn("shutting down: cannot confirm the replication position: {}", s.message());
      return;
    }
  }
  // End the stream, so the server has taken the position in before the connection goes.
  PQputCopyEnd(stream_.get(), nullptr);
  PQflush(stream_.get());
  auto until = steady_ms() + 2000;
  bool ended = false;
  while (!ended && steady_ms() < until) {
    pollfd fd{PQsocket(stream_.get()), POLLIN, 0};
    if (fd.fd < 0 || ::poll(&fd, 1, 100) < 0 || !PQconsumeInput(stream_.get())) break;
    char* buffer = nullptr;
    int n;
    while ((n = PQgetCopyData(stream_.get(), &buffer, 1)) > 0) PQfreemem(buffer);
    ended = n < 0;
  }
  while (PGresult* result = PQgetResult(stream_.get())) PQclear(result);
  log::info("shutting down: replication slot {} confirmed up to {}", config_.slot_name,
            pgoutput::format_lsn(confirmed_));
}

bool WalSource::ready(std::string* reason) const {
  if (!leadership_.is_active()) {
    if (!session_up_) {
      *reason = fmt::format("PostgreSQL connection is down (standby for {})", leadership_.subject());
      return false;
    }
    if (steady_ms() - last_heard_ms_ > kReadyWindowMs) {
      *reason = fmt::format("PostgreSQL connection has not answered for 15 s (standby for {})", leadership_.subject());
      return false;
    }
    return true;
  }
  if (!streaming_) {
    *reason = "PostgreSQL replication stream is down";
    return false;
  }
  // While paused (publishing behind) the server's answers wait unread: silence says nothing.
  if (!paused_ && steady_ms() - last_heard_ms_ > kReadyWindowMs) {
    *reason = "PostgreSQL replication stream has not answered for 15 s";
    return false;
  }
  std::lock_guard lock(reason_mutex_);
  if (!slot_problem_.empty()) {
    *reason = slot_problem_;
    return false;
  }
  return true;
}

void WalSource::run() {
  ReconnectBackoff backoff;
  bool first = true;
  while (!stopping_) {
    bool standby = false;
    Status status = connect(&standby);
    if (status && standby) {
      if (finish_requested_) {
        // Shutting down as a standby: nothing received, nothing to wait for.
        {
          std::lock_guard lock(finish_mutex_);
          finish_answered_ = true;
          finish_reached_.notify_all();
        }
        while (!stopping_) std::this_thread::sleep_for(milliseconds(50));
        break;
      }
      // Another bridge streams from the slot: look again in a second (quietly, same session).
      for (auto until = steady_ms() + kStandbyPollMs; !stopping_ && !finish_requested_ && steady_ms() < until;) {
        std::this_thread::sleep_for(milliseconds(50));
      }
      continue;
    }
    if (status) {
      if (!first) ++metrics_.pg_reconnects;
      first = false;
      backoff.reset();
      status = stream_until_broken();
    }
    if (stopping_ && status) break;  // keep the stream for save_final_cursor()
    if (leadership_.is_active()) {
      leadership_.lost();
      metrics_.wal_lag_bytes = 0;  // the next active one's lag now
      metrics_.wal_lag_seconds = 0;
      // Its walsender may live on (stopped, or the server not yet aware) and keep the slot.
      if (abandoned_.size() >= 8) abandoned_.erase(abandoned_.begin());
      abandoned_.push_back(walsender_);
    }
    streaming_ = false;
    session_up_ = false;
    metrics_.listen_connected = 0;
    stream_.reset();
    sql_.reset();
    // What was received but not queued comes again from the slot.
    open_.reset();
    committed_.clear();
    metrics_.wal_changes_waiting = 0;
    queued_of_front_ = 0;
    queued_.clear();
    relations_.clear();
    if (finish_requested_) {
      std::lock_guard lock(finish_mutex_);
      finish_answered_ = true;
      finish_reached_.notify_all();
    }
    if (stopping_) break;
    auto wait = backoff.next();
    log::warn("PostgreSQL replication: {}; reconnecting in {} ms", status.message(), wait.count());
    ReconnectBackoff::sleep(wait, stopping_);
  }
}

Status WalSource::connect(bool* standby) {
  *standby = false;
  if (!sql_) {
    if (auto s = pg_connect(config_.database_url, &sql_); !s) return s;
  }
  session_up_ = true;
  if (finish_requested_) {  // shutting down: take nothing over
    *standby = true;
    return Status::ok();
  }
  // The slot is the lock: in use, another bridge streams from it.
  PgResultPtr slot;
  if (auto s = pg_exec_params(sql_.get(),
                              "SELECT s.active, coalesce(s.active_pid, 0), coalesce(a.backend_start::text, '') "
                              "FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid "
                              "WHERE s.slot_name = $1",
                              {config_.slot_name}, &slot);
      !s) {
    return s;
  }
  last_heard_ms_ = steady_ms();
  bool in_use = PQntuples(slot.get()) == 1 && PQgetvalue(slot.get(), 0, 0)[0] == 't';
  if (in_use) {
    SessionId holder{std::atoi(PQgetvalue(slot.get(), 0, 1)), PQgetvalue(slot.get(), 0, 2)};
    if (abandoned(holder)) {
      // Not another bridge: this one's own stream, given up. The slot is free once it ends.
      if (terminated_pid_ != holder.pid) {
        terminated_pid_ = holder.pid;
        log::warn("PostgreSQL replication: slot {} is still held by this bridge's previous stream (walsender {}, "
                  "given up): asking the server to end it; streaming again once the slot is free",
                  config_.slot_name, holder.pid);
        if (auto s = pg_exec_params(sql_.get(), "SELECT pg_terminate_backend($1::int)", {std::to_string(holder.pid)});
            !s) {
          log::warn("cannot end walsender {}: {}", holder.pid, s.message());
        }
      }
      *standby = true;
      return Status::ok();
    }
  }
  // Creating (or re-creating) the slot and starting the stream, one bridge at a time.
  bool setting_up = false;
  if (!in_use) {
    if (auto s = try_advisory_lock(sql_.get(), setup_lock_key_, &setting_up); !s) return s;
  }
  if (in_use || !setting_up) {
    leadership_.standby();
    *standby = true;
    return Status::ok();
  }
  Status status = start_as_active(standby);
  if (auto s = pg_exec_params(sql_.get(), "SELECT pg_advisory_unlock($1::bigint)", {std::to_string(setup_lock_key_)});
      !s && status) {
    status = s;
  }
  if (!status || *standby) stream_.reset();
  if (*standby) leadership_.standby();
  return status;
}

Status WalSource::start_as_active(bool* standby) {
  if (auto s = load_tables(); !s) return s;
  PgResultPtr publication;
  if (auto s = pg_exec_params(sql_.get(), "SELECT 1 FROM pg_publication WHERE pubname = $1",
                              {config_.publication}, &publication);
      !s) {
    return s;
  }
  if (PQntuples(publication.get()) == 0) {
    return Status::error(fmt::format("publication {} does not exist (attach a table with "
                                     "cache_invalidation_attach(..., 'wal'))", config_.publication));
  }
  if (auto s = pg_connect(config_.database_url, &stream_, PgSession::kReplication, kClientLeaseOptions); !s) {
    return Status::error("replication connection: " + s.message());
  }
  if (auto s = prepare_lease_session(stream_.get(), LeaseSession::kReplication); !s) {
    return Status::error("replication connection: " + s.message());
  }
  if (auto s = ensure_slot(); !s) return s;
  bool in_use = false;
  if (auto s = start_streaming(&in_use); !s || in_use) {
    *standby = in_use;  // a bridge of a version without the setup lock got there first
    return s;
  }
  abandoned_.clear();  // whatever they were, none holds the slot now
  if (auto s = session_by_pid(sql_.get(), PQbackendPID(stream_.get()), &walsender_); !s) return s;
  leadership_.active();
  // Only now: the stamps (and their routing) are the active bridge's to keep.
  if (auto s = prepare_stamps(); !s) return s;
  if (resync_pending_) {
    Transaction resync;
    resync.visible = true;
    for (const auto& [relid, table] : tables_) {
      if (!table.table_name.empty()) resync.changes.push_back(resync_of(table.table_name));
    }
    metrics_.wal_changes_waiting += static_cast<int64_t>(resync.changes.size());
    committed_.push_back(std::move(resync));
    resync_pending_ = false;
  }
  streaming_ = true;
  metrics_.listen_connected = 1;
  last_heard_ms_ = steady_ms();
  next_status_ms_ = next_liveness_ms_ = next_slot_check_ms_ = steady_ms();
  log::info("PostgreSQL: streaming changes from replication slot {} (publication {}) at {}",
            config_.slot_name, config_.publication, pg_describe(sql_.get()));
  return Status::ok();
}

bool WalSource::abandoned(const SessionId& walsender) const {
  return !walsender.started.empty() &&
         std::find(abandoned_.begin(), abandoned_.end(), walsender) != abandoned_.end();
}

Status WalSource::prepare_stamps() {
  bool installed = false;
  if (auto s = store::check_stamps_installed(sql_.get(), &installed); !s) return s;
  if (!installed) {
    return Status::error("table cache_bridge_stamp not found (install sql/cache_invalidation.sql)");
  }
  int64_t last_seq = 0;
  if (auto s = store::max_stamp_seq(sql_.get(), config_.cursor_name, &last_seq); !s) return s;
  clock_.resume_after(last_seq);
  // The cursor row remembers which BRIDGE_CHANNEL routed the stamps (the slot is the cursor).
  store::Cursor cursor;
  if (auto s = store::load_cursor(sql_.get(), config_.cursor_name, &cursor); !s) return s;
  StampUpkeepResult upkeep;
  if (auto s = upkeep_stamps(sql_.get(), config_.cursor_name, config_.channel_template,
                             config_.replay_max_age, clock_, &upkeep);
      !s) {
    return s;
  }
  if (upkeep.rerouted > 0) log::info("stamps: {} key(s) routed by the new BRIDGE_CHANNEL", upkeep.rerouted);
  return Status::ok();
}

Status WalSource::load_tables() {
  PgResultPtr rows;
  auto s = pg_exec(sql_.get(),
                   "SELECT relid::oid, table_name, key_column, row_data FROM cache_invalidation_table "
                   "WHERE source = 'wal'",
                   &rows);
  if (!s) {
    return Status::error("cannot read cache_invalidation_table (install sql/cache_invalidation.sql "
                         "of this version): " + s.message());
  }
  // Relations found not attached before stay so (see table_of) until found attached.
  std::erase_if(tables_, [](const auto& entry) { return !entry.second.table_name.empty(); });
  for (int i = 0; i < PQntuples(rows.get()); ++i) {
    uint32_t relid = 0;
    std::string_view text = PQgetvalue(rows.get(), i, 0);
    std::from_chars(text.data(), text.data() + text.size(), relid);
    tables_[relid] = WalTable{PQgetvalue(rows.get(), i, 1), PQgetvalue(rows.get(), i, 2),
                              std::string_view(PQgetvalue(rows.get(), i, 3)) == "t"};
  }
  tables_loaded_ms_ = steady_ms();
  return Status::ok();
}

Status WalSource::ensure_slot() {
  PgResultPtr slot;
  if (auto s = pg_exec_params(sql_.get(),
                              "SELECT plugin, database = current_database(), coalesce(wal_status, '') "
                              "FROM pg_replication_slots WHERE slot_name = $1",
                              {config_.slot_name}, &slot);
      !s) {
    return s;
  }
  if (PQntuples(slot.get()) == 1) {
    std::string_view plugin = PQgetvalue(slot.get(), 0, 0);
    if (plugin != "pgoutput" || std::string_view(PQgetvalue(slot.get(), 0, 1)) != "t") {
      return Status::error(fmt::format("replication slot {} exists but is not a pgoutput slot of this "
                                       "database (choose another BRIDGE_SLOT)", config_.slot_name));
    }
    if (std::string_view(PQgetvalue(slot.get(), 0, 2)) != "lost") return Status::ok();
    // The server removed WAL the slot still needed (max_slot_wal_keep_size): changes are
    // gone. A new slot, and every attached table made stale as a whole, so nothing stays
    // cached that a lost change made stale.
    log::error("replication slot {} was invalidated by the server (its WAL was removed, see "
               "max_slot_wal_keep_size): changes were lost; creating it anew and invalidating every "
               "attached table as a whole", config_.slot_name);
    if (auto s = pg_exec_params(sql_.get(), "SELECT pg_drop_replication_slot($1)", {config_.slot_name}); !s) {
      return s;
    }
    resync_pending_ = true;
    ++metrics_.wal_slots_lost;
  }
  std::string create = fmt::format("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'nothing')",
                                   quoted_identifier(config_.slot_name));
  if (auto s = pg_exec(stream_.get(), create); !s) {
    return Status::error(fmt::format("cannot create replication slot {}: {}", config_.slot_name, s.message()));
  }
  log::info("created replication slot {}: changes committed from now on are published, also those "
            "committed while the bridge is away", config_.slot_name);
  return Status::ok();
}

Status WalSource::start_streaming(bool* in_use) {
  std::string sql = fmt::format(
      "START_REPLICATION SLOT {} LOGICAL 0/0 (proto_version '1', publication_names {}, messages 'true')",
      quoted_identifier(config_.slot_name), quoted_literal(quoted_identifier(config_.publication)));
  if (PQsendQuery(stream_.get(), sql.c_str()) != 1) return Status::error(pg_error(stream_.get()));
  if (auto s = pg_await_result(stream_.get()); !s) return s;
  PgResultPtr result(PQgetResult(stream_.get()));
  if (PQresultStatus(result.get()) != PGRES_COPY_BOTH) {
    // "replication slot ... is active for PID ...": another bridge streams from it.
    if (const char* state = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE); state && std::string_view(state) == "55006") {
      *in_use = true;
      return Status::ok();
    }
    std::string message = result ? PQresultErrorMessage(result.get()) : pg_error(stream_.get());
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    return Status::error(fmt::format("cannot stream from replication slot {}: {}", config_.slot_name, message));
  }
  return Status::ok();
}

Status WalSource::stream_until_broken() {
  // At SIGTERM: the WAL position every transaction committed before it lies within (the
  // insert position: under synchronous_commit = off a commit may not be written yet). The
  // stream is read up to there, so what was committed before the stop goes out before the
  // exit (as the notify source's final barrier does), bounded by finish_receiving's timeout.
  std::optional<Lsn> finish_at;
  int64_t next_finish_ask_ms = 0;
  while (!stopping_) {
    if (finish_requested_ && !finish_at) {
      PgResultPtr position;
      Lsn lsn = 0;
      if (!pg_exec(sql_.get(), "SELECT pg_current_wal_insert_lsn()::text", &position) ||
          !pgoutput::parse_lsn(PQgetvalue(position.get(), 0, 0), &lsn)) {
        lsn = 0;  // unknown: finish with what was received
      }
      finish_at = lsn;
    }
    bool read_to_finish = finish_at && received_ >= *finish_at;
    // Stop reading while enough waits: the server keeps the WAL, memory stays flat. But not
    // inside a transaction: its changes are queued only once it committed, so a transaction
    // of more keys than the queue takes would wait for itself (bounded by kMaxKeysPerTransaction).
    bool reading = !read_to_finish &&
                   (metrics_.wal_changes_waiting < static_cast<int64_t>(config_.queue_max_keys) || open_);
    paused_ = !reading && !finish_at;
    if (reading) {
      if (auto s = read_available(); !s) return s;
    }
    if (finish_at && received_ < *finish_at && steady_ms() >= next_finish_ask_ms) {
      // An idle server says how far it has read only when asked.
      if (auto s = send_status(true); !s) return s;
      next_finish_ask_ms = steady_ms() + 50;
    }
    if (auto s = check_visibility(); !s) return s;
    queue_visible();
    if (finish_at && received_ >= *finish_at && (committed_.empty() || queue_.closed())) {
      std::lock_guard lock(finish_mutex_);
      finish_answered_ = true;
      finish_reached_.notify_all();
    }
    int64_t now = steady_ms();
    if (now >= next_liveness_ms_) {
      if (auto s = send_status(true); !s) return s;
      next_liveness_ms_ = now + kLivenessIntervalMs;
      next_status_ms_ = now + kStatusIntervalMs;
    } else if (now >= next_status_ms_) {
      if (auto s = send_status(false); !s) return s;
      next_status_ms_ = now + kStatusIntervalMs;
    }
    if (now >= next_slot_check_ms_) {
      if (auto s = watch_slot(); !s) return s;
      // An attach run again with other options (row_data, key column) sends nothing through
      // the stream: the registry is read again every few seconds.
      if (auto s = load_tables(); !s) log::warn("{}", s.message());
      next_slot_check_ms_ = now + kSlotCheckIntervalMs;
    }
    // A server that is alive but stuck (a stopped walsender) keeps the TCP connection up and
    // says nothing: the server answers every reply request at once, so silence longer than
    // the liveness interval plus BRIDGE_PG_TIMEOUT_MS means a request went unanswered that
    // long. (Only while reading: a paused stream's answers wait unread in the socket.)
    if (reading && now - last_heard_ms_ > kLivenessIntervalMs + config_.pg_answer_timeout.count()) {
      return Status::error(fmt::format("PostgreSQL did not answer within {} s: giving the replication connection up",
                                       config_.pg_answer_timeout.count() / 1000.0));
    }
    // Waiting for a commit to become visible takes microseconds, for queue room milliseconds.
    bool waiting_visibility = !committed_.empty() && !committed_.front().visible;
    int timeout = waiting_visibility ? 1 : !committed_.empty() ? 10 : 250;
    if (reading) {
      pollfd fd{PQsocket(stream_.get()), POLLIN, 0};
      if (fd.fd < 0) return Status::error("replication connection has no socket");
      if (::poll(&fd, 1, timeout) < 0 && errno != EINTR) return Status::error("poll failed");
    } else {
      std::this_thread::sleep_for(milliseconds(timeout));
    }
  }
  return Status::ok();
}

Status WalSource::read_available() {
  if (!PQconsumeInput(stream_.get())) return Status::error("connection lost: " + pg_error(stream_.get()));
  while (metrics_.wal_changes_waiting < static_cast<int64_t>(config_.queue_max_keys) || open_) {
    char* buffer = nullptr;
    int n = PQgetCopyData(stream_.get(), &buffer, /*async=*/1);
    if (n == 0) return Status::ok();
    if (n == -1) {
      PgResultPtr result(PQgetResult(stream_.get()));
      std::string why = result ? PQresultErrorMessage(result.get()) : "";
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
      return Status::error("the server ended the replication stream" + (why.empty() ? "" : ": " + why));
    }
    if (n < 0) return Status::error("replication stream: " + pg_error(stream_.get()));
    Status s = handle_frame(std::string_view(buffer, static_cast<size_t>(n)));
    PQfreemem(buffer);
    if (!s) return s;
  }
  return Status::ok();
}

Status WalSource::handle_frame(std::string_view bytes) {
  pgoutput::Frame frame;
  if (auto s = pgoutput::decode_frame(bytes, &frame); !s) return s;
  last_heard_ms_ = steady_ms();
  if (auto* keepalive = std::get_if<pgoutput::Keepalive>(&frame)) {
    if (!open_) idle_end_ = std::max(idle_end_, keepalive->end);
    received_ = std::max(received_, keepalive->end);
    return keepalive->reply_requested ? send_status(false) : Status::ok();
  }
  auto& data = std::get<pgoutput::XLogData>(frame);
  received_ = std::max(received_, data.start);
  return handle_message(data.payload);
}

Status WalSource::handle_message(std::string_view payload) {
  pgoutput::Message message;
  if (auto s = pgoutput::decode_message(payload, &message); !s) return s;
  if (auto* begin = std::get_if<pgoutput::Begin>(&message)) {
    open_.emplace();
    open_->xid = begin->xid;
    return Status::ok();
  }
  if (auto* commit = std::get_if<pgoutput::Commit>(&message)) {
    if (!open_) return Status::error("replication stream: Commit without Begin");
    open_->end_lsn = commit->end_lsn;
    open_->commit_unix_us = pgoutput::unix_us_of_pg_time(commit->commit_time);
    open_->visible = open_->changes.empty();
    open_->keys.clear();
    received_ = std::max(received_, commit->end_lsn);
    committed_.push_back(std::move(*open_));
    open_.reset();
    return Status::ok();
  }
  if (auto* relation = std::get_if<pgoutput::Relation>(&message)) {
    uint32_t id = relation->id;
    // Sent again after the table changed, or joined the publication again (detached and
    // attached anew, maybe with another key column or row_data): the registry is read anew.
    if (relations_.contains(id) || tables_.contains(id)) {
      if (auto s = load_tables(); !s) log::warn("{}", s.message());
    }
    relations_[id] = std::move(*relation);
    return Status::ok();
  }
  if (auto* change = std::get_if<pgoutput::RowChange>(&message)) {
    ++metrics_.wal_changes_received;
    auto relation = relations_.find(change->relation_id);
    if (relation == relations_.end()) {
      return Status::error(fmt::format("replication stream: change of relation {} before its description",
                                       change->relation_id));
    }
    const WalTable* table = table_of(change->relation_id);
    if (!table) return Status::ok();
    WalMapping mapped = map_row_change(relation->second, *table, *change);
    if (!mapped.error.empty()) {
      ++metrics_.wal_changes_skipped;
      log::warn("skipped a change of {}: {}", table->table_name, mapped.error);
    }
    for (auto& inv : mapped.invalidations) add_change(std::move(inv));
    return Status::ok();
  }
  if (auto* truncate = std::get_if<pgoutput::Truncate>(&message)) {
    for (uint32_t id : truncate->relation_ids) {
      if (const WalTable* table = table_of(id)) add_change(map_truncate(*table));
    }
    return Status::ok();
  }
  if (auto* logical = std::get_if<pgoutput::LogicalMessage>(&message)) {
    if (logical->prefix != kMessagePrefix) return Status::ok();
    ++metrics_.wal_changes_received;
    MappingResult mapped = map_notification(logical->content);
    if (mapped.invalidations.empty()) {
      ++metrics_.notifications_invalid;
      log::warn("skipped a cache_invalidation message: {}: \"{}\"", mapped.error, log::excerpt(logical->content));
      return Status::ok();
    }
    if (logical->transactional && open_) {
      for (auto& inv : mapped.invalidations) add_change(std::move(inv));
    } else {
      // Not part of a transaction: visible the moment it was written.
      Transaction alone;
      alone.visible = true;
      metrics_.wal_changes_waiting += static_cast<int64_t>(mapped.invalidations.size());
      alone.changes = std::move(mapped.invalidations);
      committed_.push_back(std::move(alone));
    }
    return Status::ok();
  }
  return Status::ok();  // Type, Origin, and what a newer server adds
}

void WalSource::add_change(Invalidation invalidation) {
  if (!open_) return;  // protocol version 1 sends changes only inside a transaction
  Transaction& t = *open_;
  auto resynced = [&t](const std::string& table) {  // the table is invalidated whole already
    auto it = t.keys.find(table);
    return !table.empty() && it != t.keys.end() && t.changes[it->second].action == "resync";
  };
  if (invalidation.action != "resync" && resynced(invalidation.table)) return;  // covered
  if (auto it = t.keys.find(invalidation.cache_key); it != t.keys.end()) {
    if (t.changes[it->second].action == "resync") return;  // nothing says more
    t.changes[it->second] = std::move(invalidation);  // the transaction's last word on the key
    return;
  }
  if (t.changes.size() >= kMaxKeysPerTransaction && invalidation.action != "resync" &&
      !invalidation.table.empty()) {
    log::warn("a transaction changes more than {} keys: table {} is invalidated as a whole",
              kMaxKeysPerTransaction, invalidation.table);
    // The table's keys so far are covered too: neither held nor published.
    size_t before = t.changes.size();
    std::erase_if(t.changes, [&](const Invalidation& c) { return c.table == invalidation.table; });
    t.keys.clear();
    for (size_t i = 0; i < t.changes.size(); ++i) t.keys.emplace(t.changes[i].cache_key, i);
    metrics_.wal_changes_waiting -= static_cast<int64_t>(before - t.changes.size());
    add_change(resync_of(invalidation.table));
    return;
  }
  t.keys.emplace(invalidation.cache_key, t.changes.size());
  t.changes.push_back(std::move(invalidation));
  ++metrics_.wal_changes_waiting;
}

Status WalSource::check_visibility() {
  bool unchecked = std::any_of(committed_.begin(), committed_.end(), [](const Transaction& t) { return !t.visible; });
  if (!unchecked) return Status::ok();
  // One query for every commit received meanwhile: at thousands of commits a second, a query
  // each cost the writers 10-15% of their rate (its backend shares their CPU).
  int64_t now = epoch_us();
  if (now - last_visibility_check_us_ < kVisibilityIntervalUs) return Status::ok();
  last_visibility_check_us_ = now;
  PgResultPtr running;
  if (auto s = pg_exec(sql_.get(), "SELECT x::text FROM pg_snapshot_xip(pg_current_snapshot()) AS x", &running); !s) {
    return s;
  }
  // 32-bit xids of the stream against full ones: two running transactions never share them.
  std::unordered_set<uint32_t> in_progress;
  for (int i = 0; i < PQntuples(running.get()); ++i) {
    std::string_view text = PQgetvalue(running.get(), i, 0);
    uint64_t xid = 0;
    std::from_chars(text.data(), text.data() + text.size(), xid);
    in_progress.insert(static_cast<uint32_t>(xid));
  }
  for (auto& t : committed_) {
    if (!t.visible) t.visible = !in_progress.contains(t.xid);
  }
  return Status::ok();
}

void WalSource::queue_visible() {
  while (!committed_.empty() && committed_.front().visible) {
    Transaction& t = committed_.front();
    while (queued_of_front_ < t.changes.size()) {
      if (!push(t.changes[queued_of_front_])) return;  // the queue is full: later
      ++queued_of_front_;
      --metrics_.wal_changes_waiting;
    }
    queued_.push_back(Queued{t.end_lsn, queue_.next_sequence(), t.commit_unix_us});
    committed_.pop_front();
    queued_of_front_ = 0;
  }
}

bool WalSource::push(Invalidation& invalidation) {
  // Stamped once: a retry after a full queue keeps its stamp (and routes it again).
  std::string channel;
  if (invalidation.seq == 0) {
    if (!stamper_.stamp(invalidation, &channel)) return false;  // shutting down: the slot re-sends it
  } else {
    channel = expand_channel(config_.channel_template, invalidation.table, invalidation.cache_key);
  }
  return queue_.try_push(channel, invalidation);
}

WalSource::Lsn WalSource::confirmable() {
  Lsn lsn = confirmed_;
  uint64_t low = queue_.low_watermark();
  while (!queued_.empty() && low >= queued_.front().sequence_after) {
    lsn = std::max(lsn, queued_.front().end_lsn);
    queued_.pop_front();
  }
  // Nothing under way: what the server has sent so far is all published.
  if (queued_.empty() && committed_.empty() && !open_) lsn = std::max(lsn, idle_end_);
  return lsn;
}

Status WalSource::send_status(bool reply_requested) {
  // A position is confirmed only once the stamps of what it covers are stored (the writer may
  // still hold them): replays and snapshots read every change from there.
  Lsn flushed = stamps_.flush(std::chrono::milliseconds(200)) ? confirmable() : confirmed_;
  std::string update = pgoutput::encode_status_update(std::max(received_, flushed), flushed, epoch_us(),
                                                      reply_requested);
  if (PQputCopyData(stream_.get(), update.data(), static_cast<int>(update.size())) != 1 ||
      PQflush(stream_.get()) < 0) {
    return Status::error("cannot send the replication status: " + pg_error(stream_.get()));
  }
  if (flushed != confirmed_) log::debug("replication: confirmed up to {}", pgoutput::format_lsn(flushed));
  confirmed_ = flushed;
  return Status::ok();
}

Status WalSource::watch_slot() {
  PgResultPtr slot;
  if (auto s = pg_exec_params(sql_.get(),
                              "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, "
                              "coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1",
                              {config_.slot_name}, &slot);
      !s) {
    return s;
  }
  std::string problem;
  if (PQntuples(slot.get()) == 0) {
    problem = fmt::format("replication slot {} was dropped", config_.slot_name);
  } else {
    metrics_.wal_lag_bytes = std::strtoll(PQgetvalue(slot.get(), 0, 0), nullptr, 10);
    std::string_view status = PQgetvalue(slot.get(), 0, 1);
    if (status == "unreserved" || status == "lost") {
      problem = fmt::format("replication slot {} is {}: the server is removing WAL it still needs "
                            "(max_slot_wal_keep_size)", config_.slot_name, status);
    }
  }
  int64_t oldest = 0;
  if (!committed_.empty()) oldest = committed_.front().commit_unix_us;
  else if (!queued_.empty()) oldest = queued_.front().commit_unix_us;
  metrics_.wal_lag_seconds = oldest > 0 ? std::max<double>(0, (epoch_us() - oldest) / 1e6) : 0.0;
  std::lock_guard lock(reason_mutex_);
  slot_problem_ = std::move(problem);
  return Status::ok();
}

// tables_ also holds relations found not attached at a load, with an empty table_name: their
// changes are skipped, and they are looked up again at most every kTablesReloadMs. A relation
// never looked up (a table attached while the bridge runs) is looked up at its first change.
const WalTable* WalSource::table_of(uint32_t relation_id) {
  auto it = tables_.find(relation_id);
  if (it != tables_.end() && !it->second.table_name.empty()) return &it->second;
  if (it == tables_.end() || steady_ms() - tables_loaded_ms_ >= kTablesReloadMs) {
    if (auto s = load_tables(); !s) log::warn("{}", s.message());
    it = tables_.find(relation_id);
    if (it == tables_.end() || it->second.table_name.empty()) {
      auto relation = relations_.find(relation_id);
      log::warn("changes of {} come through publication {} but it is not attached: skipped "
                "(attach it with cache_invalidation_attach(..., 'wal'))",
                relation == relations_.end() ? std::to_string(relation_id)
                                             : relation->second.schema + "." + relation->second.name,
                config_.publication);
      it = tables_.emplace(relation_id, WalTable{}).first;
    }
  }
  return it->second.table_name.empty() ? nullptr : &it->second;
}

}  // namespace bridge
