// Publisher: delivers ready invalidations from the CoalescingQueue to every sink, in batches
// within each sink's limits. The sinks form a pipeline of stages, each with its own workers:
// the first (Soketi) takes from the queue; each later one (the HTTP sink) takes what the one
// before is done with (accepted, or deliberately dropped), from a handoff of its own, filling
// its requests with whatever accumulated meanwhile. An entry is done() (and the cursor may pass it) only once the last sink has
// accepted it or deliberately dropped it. So a slow or absent later sink does not hold back the
// ones before it; its entries stay in flight, and once the queue's bound is reached that holds
// the source back. Nothing is lost.
//
// The rules every sink shares: timeouts, resets, 5xx and redirects are retried with backoff;
// 429 is honoured (Retry-After capped at 30 s); a rejection of the sender (401, 403, 404:
// credentials, app id, URL) holds that sink and retries until it accepts; a rejection of one
// item (400, 413) is isolated by splitting the batch, and only that item is dropped (a 413
// first retries it without its row data). A sink's rate limiter paces its requests.
// Shutdown is bounded whatever the sinks do: once the drain deadline passes, every wait ends
// at once and no new attempt starts, so the workers exit within the grace period plus one
// request's time (one HTTP timeout per Soketi address it tries).
#pragma once

#include <atomic>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "coalescing_queue.h"
#include "metrics.h"
#include "sink.h"

namespace bridge {

class Publisher {
 public:
  // `sinks` (at least one; the first is the one whose latency the status reports) and `queue`
  // must outlive the publisher.
  Publisher(std::vector<Sink*> sinks, CoalescingQueue& queue, int concurrency,
            std::chrono::microseconds linger);
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
  // Whether every item taken was delivered or deliberately dropped (none given up on).
  bool gave_up_nothing() const { return gave_up_ == 0; }

 private:
  struct Route {  // one sink as one worker sees it
    Sink* sink;
    std::unique_ptr<SinkClient> client;
  };
  // A sink's own state, shared by its stage's workers.
  struct SinkState {
    std::atomic<bool> sender_rejected{false};  // logged once per episode
  };
  // One sink's stage. The first takes from the queue, the others from `handoff`.
  struct Stage {
    Sink* sink = nullptr;
    SinkState state;
    std::vector<std::thread> workers;
    std::mutex mutex;
    std::condition_variable arrived;  // signalled when handoff grows or closes
    // State below is protected by mutex (only used by stages after the first).
    std::list<QueuedInvalidation> handoff;  // from the stage before, oldest first, not yet taken
    // Each key waits in the handoff at most once: a newer change merges into the waiting entry,
    // as the queue merges pending ones, so a slow or absent sink holds one entry per key, not
    // one per coalescing window. By queue_key().
    std::unordered_map<std::string, std::list<QueuedInvalidation>::iterator> waiting;
    bool closed = false;  // the stage before has stopped: nothing more comes
  };

  void run_stage(size_t index);
  // Takes what stage `index` (>= 1) delivers next; empty once its handoff is closed and drained.
  std::vector<QueuedInvalidation> take_handoff(Stage& stage);
  // After stage `index` has the items: on to the next stage, or done() after the last (and
  // at once for items no later stage wants, such as replays for the HTTP sink).
  void pass_on(size_t index, std::vector<QueuedInvalidation> items);
  bool wanted_after(size_t index, const QueuedInvalidation& item) const;
  // Delivers the items `route` wants, in requests of its max_batch().
  void deliver(Route& route, SinkState& state, std::span<const QueuedInvalidation> items);
  // Until the sink accepts `items`, the drain deadline passes, or it rejects one of them
  // (isolate_rejected).
  void deliver_batch(Route& route, SinkState& state, std::span<const QueuedInvalidation> items);
  void delivered(Route& route, SinkState& state, std::span<const QueuedInvalidation> items, int attempts);
  // Splits a rejected batch to deliver the rest; the item rejected alone is sent without its
  // row data if that was the problem (413), else dropped, logged with its key and counted.
  void isolate_rejected(Route& route, SinkState& state, std::span<const QueuedInvalidation> items,
                        const PublishOutcome& outcome);
  bool giving_up() const;  // the drain deadline has passed
  // Sleeps `duration`, cut short by the drain deadline. False when it passed.
  bool pause(std::chrono::steady_clock::duration duration);

  std::vector<std::unique_ptr<Stage>> stages_;  // one per sink, in order; constant after construction
  CoalescingQueue& queue_;
  const int concurrency_;  // workers per stage
  const std::chrono::microseconds linger_;
  std::atomic<int64_t> give_up_at_ms_{0};  // steady-clock ms; 0 = never give up
  std::atomic<uint64_t> gave_up_{0};        // items given up on at the drain deadline
  std::mutex pause_mutex_;
  std::condition_variable deadline_set_;  // wakes pause() when the deadline is set
};

}  // namespace bridge
