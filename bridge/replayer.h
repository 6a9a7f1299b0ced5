// Replayer: sends the current "Cache Invalidated At" timestamps of a channel's keys to that
// channel, so subscribers that just arrived drop whatever they cached before.
//
// Requests come from Soketi's webhooks (channel_occupied, cache_miss) and, at startup, from
// Soketi's list of occupied channels (Soketi never retries a webhook the bridge missed).
// The timestamps are the bridge's own stamps (cache_bridge_stamp), the values the live events
// carried; the StampWriter is flushed first, so nothing published live is missing.
// One thread with its own PostgreSQL connection; request() never blocks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "coalescing_queue.h"
#include "config.h"
#include "metrics.h"
#include "pg_connection.h"
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

  // Queues a replay of `channel`. Thread-safe. Returns false when too many are queued.
  bool request(const std::string& channel);

 private:
  void run();
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
  std::deque<std::string> requests_;
  std::set<std::string> requested_;  // channels in requests_, so a burst replays once
  bool stopping_ = false;

  PgConnPtr conn_;  // owned by the replayer thread
};

}  // namespace bridge
