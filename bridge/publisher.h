// Publisher: worker threads that take ready invalidations from the CoalescingQueue,
// encode them as events, and send them to Soketi in batches within its limits.
// Stays under Soketi's backend event rate limit when one is configured.
// Retries timeouts, resets and 5xx with backoff, honours 429, never retries other 4xx.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

#include "coalescing_queue.h"
#include "config.h"
#include "metrics.h"
#include "rate_limiter.h"
#include "soketi_client.h"

namespace bridge {

class Publisher {
 public:
  Publisher(const Config& config, CoalescingQueue& queue, Metrics& metrics);
  ~Publisher();  // stops and joins
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  void start();
  // Publishes what the (closed) queue still holds, giving up on retries after `grace`.
  void drain_and_stop(std::chrono::milliseconds grace);

 private:
  void run();
  void publish_with_retries(SoketiClient& client, const std::vector<QueuedInvalidation>& items);

  const Config& config_;
  CoalescingQueue& queue_;
  Metrics& metrics_;
  RateLimiter rate_limiter_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> give_up_at_ms_{0};  // steady-clock ms; 0 = never give up
};

}  // namespace bridge
