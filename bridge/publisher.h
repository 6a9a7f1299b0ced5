// Publisher: worker threads that take ready invalidations from the CoalescingQueue,
// encode them as events, and send them to Soketi in batches within its limits.
// Stays under Soketi's backend event rate limit when one is configured.
// Retries timeouts, resets and 5xx with backoff, honours 429 (Retry-After capped at 30 s).
// A rejection of the app (401, 403, 404: credentials, app id) holds publishing and retries
// until Soketi accepts; a rejection of one event (400, 413) is isolated by splitting the batch,
// and only that event is dropped. Shutdown is bounded whatever Soketi does: once the drain deadline
// passes, every wait ends at once and no new attempt starts, so the workers exit within the
// grace period plus one HTTP timeout.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <span>
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
  ~Publisher();  // gives up at once (unless a drain deadline is set), stops and joins
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  void start();
  // From now on, retries and waits end at most `grace` later. Call at SIGTERM, before the
  // other modules stop, so their shutdown counts against the same grace period.
  void set_drain_deadline(std::chrono::milliseconds grace);
  // Publishes what the (closed) queue still holds until the drain deadline (set it first),
  // then joins the workers.
  void drain_and_stop();
  // Whether every event taken was published or deliberately dropped (none given up on).
  bool gave_up_nothing() const { return gave_up_ == 0; }

 private:
  void run();
  void publish_with_retries(SoketiClient& client, const std::vector<QueuedInvalidation>& items);
  // Until Soketi accepts `events` (items[i] encoded as events[i]), the drain deadline passes,
  // or Soketi rejects an event of them (isolate_rejected).
  void publish_events(SoketiClient& client, std::span<const QueuedInvalidation> items,
                      std::span<PusherEvent> events);
  void published(std::span<const QueuedInvalidation> items, int attempts);
  // Splits a rejected batch to publish the rest; the one event rejected alone is sent without
  // its row data if that was the problem (413), else dropped, logged with its key and counted.
  void isolate_rejected(SoketiClient& client, std::span<const QueuedInvalidation> items,
                        std::span<PusherEvent> events, const PublishOutcome& outcome);
  bool giving_up() const;  // the drain deadline has passed
  // Sleeps `duration`, cut short by the drain deadline. False when it passed.
  bool pause(std::chrono::steady_clock::duration duration);

  const Config& config_;
  CoalescingQueue& queue_;
  Metrics& metrics_;
  RateLimiter rate_limiter_;
  std::vector<std::thread> workers_;
  std::atomic<int64_t> give_up_at_ms_{0};  // steady-clock ms; 0 = never give up
  std::atomic<bool> app_rejected_{false};   // Soketi refuses the credentials (logged once)
  std::atomic<uint64_t> gave_up_{0};        // events given up on at the drain deadline
  std::mutex pause_mutex_;
  std::condition_variable deadline_set_;  // wakes pause() when the deadline is set
};

}  // namespace bridge
