// WalSource (BRIDGE_SOURCE=wal): reads the changes of the attached tables from the
// write-ahead log, through a logical replication slot (BRIDGE_SLOT) decoded by PostgreSQL's
// built-in pgoutput plugin for the publication BRIDGE_PUBLICATION. The writers run no
// trigger and write no store row: the bridge alone does the work, after their COMMIT.
//
// The slot is the cursor. The server sends each transaction once it committed, in commit
// order; the bridge confirms a transaction's end LSN only once everything it queued for that
// transaction has been published and its stamps stored, so after a crash the server sends
// again exactly what may not have gone out (at least once, no timing guess). A clean stop
// confirms what was published and ends the stream, so a restart re-sends nothing.
//
// The timestamp contract: a commit record reaches the WAL (and the walsender) a moment before
// the transaction becomes visible to other sessions. So before stamping a committed
// transaction, the source checks on its query connection that the transaction is no longer
// in a fresh snapshot's in-progress list; it is stamped (ChangeClock) only then, so its
// invalidatedAt is later than the moment the change became visible, as with NOTIFY. One such
// query serves every commit received in the last millisecond (at most 1,000 a second).
//
// Bounded memory: while the queue is full (Soketi away or slow) the source stops reading
// the stream; the server keeps the WAL for the slot (bounded by max_slot_wal_keep_size) and
// the writers are not slowed. Status updates keep the connection alive meanwhile.
//
// Active/standby (leadership.h): the slot is the lock. While another bridge streams from it,
// the source looks at pg_replication_slots every second on its query connection and reads,
// creates, drops and confirms nothing; it stamps nothing either (the stamps' upkeep waits
// until the stream has started). A slot still held by this bridge's own abandoned stream (its
// walsender stopped, or not yet aware the client is gone) is waited for the same way, after
// asking the server to end that walsender.
//
// Which tables, keys and row data: cache_invalidation_table (written by
// cache_invalidation_attach(..., 'wal')), re-read when the stream names a table it does not
// know. Logical decoding messages with prefix "cache_invalidation"
// (cache_invalidate(), pg_logical_emit_message) carry a by-hand invalidation, text or JSON
// as for NOTIFY.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "change_clock.h"
#include "change_source.h"
#include "change_stamper.h"
#include "coalescing_queue.h"
#include "config.h"
#include "leadership.h"
#include "metrics.h"
#include "pg_connection.h"
#include "pgoutput.h"
#include "stamp_writer.h"
#include "wal_mapper.h"

namespace bridge {

// What WalSource holds between reading and publishing (namespace scope: std::optional of a
// nested struct with default member initialisers trips clang).
namespace wal_source {

// A committed transaction's invalidations, waiting to be stamped and queued.
struct Transaction {
  uint32_t xid = 0;  // 0: a non-transactional message (nothing to wait for)
  pgoutput::Lsn end_lsn = 0;
  int64_t commit_unix_us = 0;
  std::vector<Invalidation> changes;
  std::unordered_map<std::string, size_t> keys;  // index in changes, while open
  bool visible = false;  // checked: no longer in progress for other sessions
};
// A transaction queued in full: its end LSN may be confirmed once the queue's low
// watermark reaches sequence_after.
struct Queued {
  pgoutput::Lsn end_lsn = 0;
  uint64_t sequence_after = 0;
  int64_t commit_unix_us = 0;
};

}  // namespace wal_source

class WalSource : public ChangeSource {
 public:
  WalSource(const Config& config, CoalescingQueue& queue, ChangeClock& clock, StampWriter& stamps,
            Metrics& metrics, Leadership& leadership);
  ~WalSource() override;  // stops and joins
  WalSource(const WalSource&) = delete;
  WalSource& operator=(const WalSource&) = delete;

  void start() override;
  void finish_receiving(std::chrono::milliseconds timeout) override;
  void stop() override;  // joins the thread; the stream stays open for save_final_cursor()
  void save_final_cursor(bool all_published) override;
  bool ready(std::string* reason) const override;

 private:
  using Lsn = pgoutput::Lsn;

  using Transaction = wal_source::Transaction;
  using Queued = wal_source::Queued;

  void run();
  // Streaming as the active bridge, or (*standby) another bridge streams from the slot.
  Status connect(bool* standby);
  Status start_as_active(bool* standby);  // REQUIRES: the slot's setup lock held on sql_
  Status prepare_stamps();
  Status ensure_slot();
  Status load_tables();
  Status start_streaming(bool* in_use);  // *in_use: another session streams from the slot
  bool abandoned(const SessionId& walsender) const;
  Status stream_until_broken();
  Status read_available();
  Status handle_frame(std::string_view bytes);
  Status handle_message(std::string_view payload);
  void add_change(Invalidation invalidation);
  Status check_visibility();
  void queue_visible();
  bool push(Invalidation& invalidation);  // false: the queue is full (the stamp is kept)
  Lsn confirmable();
  Status send_status(bool reply_requested);
  Status watch_slot();
  const WalTable* table_of(uint32_t relation_id);

  const Config& config_;
  CoalescingQueue& queue_;
  ChangeClock& clock_;
  StampWriter& stamps_;
  Metrics& metrics_;
  Leadership& leadership_;
  const int64_t setup_lock_key_;  // lock_key_of("slot:" + slot): creating the slot, starting the stream
  ChangeStamper stamper_;  // used by the source's thread
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finish_requested_{false};
  std::mutex finish_mutex_;
  std::condition_variable finish_reached_;
  bool finish_answered_ = false;  // protected by finish_mutex_
  std::atomic<bool> streaming_{false};
  std::atomic<bool> session_up_{false};  // the query connection is up (active or standby)
  std::atomic<int64_t> last_heard_ms_{0};  // steady clock: the server's last message
  std::atomic<bool> paused_{false};  // not reading: enough changes wait for publishing
  mutable std::mutex reason_mutex_;
  std::string slot_problem_;  // protected by reason_mutex_: why the slot is in danger, if it is

  // Owned by the source's thread (and by save_final_cursor() once it is joined).
  PgConnPtr sql_;     // queries: tables, visibility, slot state
  PgConnPtr stream_;  // replication=database, streaming
  SessionId walsender_;                // stream_'s backend
  std::vector<SessionId> abandoned_;    // streams given up whose walsender may live on (newest last)
  int terminated_pid_ = 0;              // the last of them asked to end
  std::unordered_map<uint32_t, pgoutput::Relation> relations_;
  std::unordered_map<uint32_t, WalTable> tables_;  // attached tables by relation id
  int64_t tables_loaded_ms_ = 0;
  std::optional<Transaction> open_;  // between Begin and Commit
  std::deque<Transaction> committed_;
  size_t queued_of_front_ = 0;  // changes of committed_.front() already queued
  std::deque<Queued> queued_;
  Lsn received_ = 0;   // the stream's position
  Lsn confirmed_ = 0;  // what the server was told it may forget
  Lsn idle_end_ = 0;   // a keepalive's WAL end while no transaction was open
  int64_t next_status_ms_ = 0;
  int64_t next_liveness_ms_ = 0;
  int64_t next_slot_check_ms_ = 0;
  int64_t last_visibility_check_us_ = 0;
  bool resync_pending_ = false;  // the slot was lost: every table is to be invalidated whole
};

}  // namespace bridge
