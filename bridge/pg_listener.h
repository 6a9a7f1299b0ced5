// PgListener: the thread that LISTENs on PostgreSQL, turns notifications into
// invalidations on the CoalescingQueue, and keeps the catch-up cursor.
//
// Every change is stamped at receipt (ChangeClock: after its commit, in commit order), and
// the stamp goes to the StampWriter before the queue, so a replay or snapshot that flushes
// the writer first sees what went out live. A payload's own timestamp is never used.
//
// On every (re)connect it LISTENs first, then reads from the store what changed since the
// cursor, so no change committed while it was away is lost. While connected it moves the
// cursor forward once what it received has been published. It reconnects with backoff,
// forever, and never blocks publishing.
//
// The cursor rests on a barrier, not on timing: it takes a snapshot's xmin X, then NOTIFYs a
// marker on a channel of its own session. Notifications arrive in commit order, so when the
// marker arrives every transaction before X has been received; once everything received up
// to the marker is published, X becomes the cursor. At a clean stop it does this once more,
// so a restart re-sends next to nothing. About once a minute (BRIDGE_LOG_TRIM_S), after saving the
// cursor, it deletes the log rows that every cursor has passed (store::trim_log), so the log stays small.
//
// Active/standby (leadership.h): before it LISTENs, the session takes the advisory lock of the
// cursor name; while another bridge holds it, the session only polls it (every second) and
// LISTENs on nothing, and the cursor, the log and the stamps are left alone. A lock still held
// by this bridge's own abandoned session is borrowed (leadership.h).
//
// It never stops reading: PostgreSQL's notification queue is shared by every session, and once
// full, every NOTIFYing COMMIT of the user's writers fails. When the coalescing queue is full
// (Soketi away or slow), a change is held back instead of waited for: its stamp is stored
// anyway, and once the queue has room the held-back changes are published from the stamps, in
// seq order (as invalidations without row data). The cursor's resume_seq stays below them, so
// a restart publishes them too.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "change_clock.h"
#include "change_source.h"
#include "change_stamper.h"
#include "coalescing_queue.h"
#include "config.h"
#include "invalidation_store.h"
#include "leadership.h"
#include "metrics.h"
#include "pg_connection.h"
#include "stamp_writer.h"

namespace bridge {

class PgListener : public ChangeSource {
 public:
  PgListener(const Config& config, CoalescingQueue& queue, ChangeClock& clock, StampWriter& stamps,
             Metrics& metrics, Leadership& leadership);
  ~PgListener() override;  // stops and joins
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  void start() override;
  // Asks for a last barrier and waits (at most `timeout`) for its marker: call at SIGTERM
  // while the queue is still open. Everything received before it is then covered by
  // save_final_cursor().
  void finish_receiving(std::chrono::milliseconds timeout) override;
  void stop() override;  // joins the thread; its connection stays open for save_final_cursor()
  // After stop() and the publisher's drain: saves the last barrier's xmin as the cursor if
  // everything received up to its marker was published (`all_published`: nothing given up).
  void save_final_cursor(bool all_published) override;

  // Active: connected, LISTENing, and the connection answered within the last 15 s. Standby:
  // its session answered within the last 15 s.
  bool ready(std::string* reason) const override;  // thread-safe

 private:
  // A snapshot's xmin that becomes the cursor once everything received before
  // `sequence_after` (the queue's sequence when `marker` arrived) has been published;
  // seq_at_marker is the newest stamp then.
  struct Checkpoint {
    std::string xmin;
    uint64_t marker = 0;  // 0: none needed (the catch-up's own snapshot)
    std::optional<uint64_t> sequence_after;
    int64_t seq_at_marker = 0;
    int64_t first_seq_after = 0;  // the first change stamped after the marker: the cursor's lag once saved
  };
  // Seqs of held-back changes: every stamp from..to not yet published (empty when from > to),
  // but those queued live meanwhile (whenever the queue had room): read back with the others,
  // they would be published twice (at saturation, up to a third of what reached Soketi).
  struct Backlog {
    static constexpr size_t kMaxLive = 65536;  // then the rest of them may go out twice
    int64_t from = 1;
    int64_t to = 0;
    std::deque<int64_t> live;  // ascending; at most kMaxLive
    bool empty() const { return from > to; }
    void queued_live(int64_t seq) {
      if (!empty() && live.size() < kMaxLive) live.push_back(seq);
    }
    // Whether `seq` (read back in ascending order) went out live; forgets those before it.
    bool went_live(int64_t seq);
  };

  void run();
  Status connect_and_catch_up();
  // Standby until the cursor's lock is taken on conn_ (*taken), or finish_receiving() or
  // stop() was called (not taken).
  Status take_lock(bool* taken);
  // While borrowing: the lock once the old session is gone, or an error once another bridge
  // holds it.
  Status check_borrowed_lock();
  bool abandoned(const std::optional<SessionId>& holder) const;
  Status prepare_stamps(store::Cursor* cursor);  // REQUIRES: connected, the cursor loaded
  Status receive_until_broken();
  void handle_notification(const PGnotify& notify);
  // A notification read while one of the listener's queries waits for its answer.
  void handle_during_query(const PGnotify& notify);
  void handle_deferred_markers();
  void push(Invalidation invalidation);
  Status advance_checkpoint();
  // At most once per BRIDGE_LOG_TRIM_S (after a saved cursor): deletes the log rows every
  // cursor passed.
  Status trim_log();
  store::Cursor cursor_of(const Checkpoint& checkpoint) const;
  Status drain_backlog();
  bool queue_half_empty() const;  // room for the backlog: live changes keep the other half
  Status send_final_barrier();  // for a clean stop (finish_receiving)
  bool handle_marker(std::string_view channel, std::string_view payload);  // true: it was one

  const Config& config_;
  CoalescingQueue& queue_;
  ChangeClock& clock_;
  StampWriter& stamps_;
  Metrics& metrics_;
  Leadership& leadership_;
  const int64_t lock_key_;  // lock_key_of(cursor name)
  ChangeStamper stamper_;  // used by the listener thread
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finish_requested_{false};
  std::mutex finish_mutex_;
  std::condition_variable finish_reached_;
  bool final_marker_seen_ = false;  // protected by finish_mutex_
  bool finish_answered_ = false;    // protected by finish_mutex_: seen, or no barrier possible
  std::atomic<bool> connected_{false};  // LISTENing (active)
  std::atomic<bool> session_up_{false};  // the lock session is connected (active or standby)
  std::atomic<int64_t> last_verified_ms_{0};  // steady clock

  // Owned by the listener thread (and by save_final_cursor() once it is joined).
  PgConnPtr conn_;
  SessionId session_;                // conn_'s backend
  std::vector<SessionId> abandoned_;  // lock sessions given up that may live on (newest last)
  bool borrowing_ = false;            // active while an abandoned session holds the lock
  std::chrono::steady_clock::time_point next_borrow_check_{};
  std::string marker_channel_;  // cache_bridge_barrier_<backend pid>
  uint64_t markers_sent_ = 0;
  bool final_barrier_sent_ = false;
  Backlog backlog_;
  std::vector<std::string> deferred_markers_;  // payloads of markers read during a query
  bool store_installed_ = false;
  bool stamps_installed_ = false;
  bool trim_denied_ = false;  // no DELETE on the log: warned once, not tried again
  std::chrono::steady_clock::time_point next_trim_{};
  std::optional<Checkpoint> checkpoint_;
};

}  // namespace bridge
