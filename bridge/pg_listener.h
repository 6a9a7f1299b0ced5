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
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "change_clock.h"
#include "coalescing_queue.h"
#include "config.h"
#include "metrics.h"
#include "pg_connection.h"
#include "stamp_writer.h"

namespace bridge {

class PgListener {
 public:
  PgListener(const Config& config, CoalescingQueue& queue, ChangeClock& clock, StampWriter& stamps,
             Metrics& metrics);
  ~PgListener();  // stops and joins
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  void start();
  void stop();

  // Connected, LISTENing, and the connection answered within the last 15 s.
  bool ready(std::string* reason) const;

 private:
  // A snapshot's xmin that becomes the cursor once everything received before
  // `sequence_after` has been published.
  struct Checkpoint {
    std::string xmin;
    std::chrono::steady_clock::time_point taken_at;
    std::optional<uint64_t> sequence_after;
  };

  void run();
  Status connect_and_catch_up();
  Status prepare_stamps();  // REQUIRES: connected, the cursor loaded
  Status receive_until_broken();
  void handle_notification(const PGnotify& notify);
  void push(Invalidation invalidation);
  Status advance_checkpoint();

  const Config& config_;
  CoalescingQueue& queue_;
  ChangeClock& clock_;
  StampWriter& stamps_;
  Metrics& metrics_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  std::atomic<int64_t> last_verified_ms_{0};  // steady clock

  // Owned by the listener thread.
  PgConnPtr conn_;
  bool store_installed_ = false;
  std::optional<Checkpoint> checkpoint_;
};

}  // namespace bridge
