// Replayer: sends the current "Cache Invalidated At" timestamps of a channel's keys to that
// channel, so subscribers that just arrived drop whatever they cached before.
//
// Requests come from Soketi's webhooks (channel_occupied, cache_miss) and, at startup, from
// Soketi's list of occupied channels (Soketi never retries a webhook the bridge missed).
// The timestamps are the bridge's own stamps (cache_bridge_stamp), the values the live events
// carried; the StampWriter is flushed first, so nothing published live is missing.
//
// The work is bounded whatever arrives: a burst of requests for one channel replays it once; a
// channel replayed less than kCooldown ago is replayed again when the cooldown ends (delayed
// and merged, never dropped: a channel re-occupied meanwhile still gets its state); at most
// BRIDGE_REPLAY_MAX_PER_SEC channels are replayed a second; a channel name that the
// BRIDGE_CHANNEL rule cannot produce is skipped before it costs a query.
// One thread with its own PostgreSQL connection; request() never blocks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "coalescing_queue.h"
#include "config.h"
#include "metrics.h"
#include "pg_connection.h"
#include "rate_limiter.h"
#include "stamp_writer.h"

namespace bridge {

class Replayer {
 public:
  Replayer(const Config& config, CoalescingQueue& queue, StampWriter& stamps, Metrics& metrics);
  ~Replayer();  // stops and joins
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  void start();  // also asks Soketi which channels are occupied, and replays those
  void stop();

  // Queues a replay of `channel` (or skips it, counted, when BRIDGE_CHANNEL cannot produce
  // it). Thread-safe. Returns false when too many are queued.
  bool request(const std::string& channel);

  static constexpr std::chrono::seconds kCooldown{1};

 private:
  using Clock = std::chrono::steady_clock;

  void run();
  // The next channel due for a replay, waiting until `wake_by` at most; nullopt on stop or timeout.
  std::optional<std::string> next_due(Clock::time_point wake_by);
  bool wait_for_stop(Clock::duration duration);  // true when stopping
  bool replay_occupied_channels(int attempt);  // false: Soketi did not answer
  Status replay(const std::string& channel);

  const Config& config_;
  CoalescingQueue& queue_;
  StampWriter& stamps_;
  Metrics& metrics_;
  std::thread thread_;

  std::mutex mutex_;
  std::condition_variable wake_;
  // State below is protected by mutex_.
  std::deque<std::string> requests_;                        // due, in arrival order
  std::multimap<Clock::time_point, std::string> cooling_;   // waiting for their cooldown to end
  std::set<std::string> requested_;  // channels in requests_ or cooling_: a burst replays once
  bool stopping_ = false;

  // Owned by the replayer thread.
  PgConnPtr conn_;
  RateLimiter rate_;
  std::unordered_map<std::string, Clock::time_point> replayed_at_;  // within the last kCooldown
};

}  // namespace bridge
