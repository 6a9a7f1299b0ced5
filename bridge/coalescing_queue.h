// CoalescingQueue: invalidations waiting to be published, at most one pending per
// (channel, cache key), with a per-key window (timestamp-based coalescing).
//
// The first change to a key is ready at once (leading edge). Later changes within
// `window` of the last publication of that key merge into one pending entry holding the
// newest timestamp, published when the window ends (trailing edge): a burst costs one
// event per window and the final state is never skipped.
//
// Per key at most one publish is in flight: a change that becomes ready while an earlier one
// of its key is still being published (or retried) waits until that one is done().
//
// At most max_keys entries wait or are in flight, and their footprint() stays within about
// max_bytes (so a burst of large rows cannot take the memory that a burst of small ones
// may): push() of a new key blocks while either cap is reached (backpressure on the listener,
// never a drop). Besides those, a key published within the last window is remembered without
// its payload (a few dozen bytes).
//
// Every push gets a sequence number. low_watermark() is the smallest sequence not yet
// published (or next_sequence() when all are), so the listener knows what is safely out.
//
// Time comes from an injected QueueClock (by default the steady clock), so tests run the
// windows, lingers and deadlines by hand.
//
// Thread-safe: every member function may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "invalidation.h"
#include "queue_clock.h"

namespace bridge {

// What the queue tells keys apart by: channel + '\0' + cache key (one key may go to several
// channels). Whoever else keeps entries per key (the publisher's handoffs) uses the same.
std::string queue_key(const std::string& channel, const std::string& cache_key);

struct QueuedInvalidation {
  std::string channel;
  Invalidation invalidation;
  uint64_t sequence = 0;  // the oldest push merged into this entry
  bool key_released = false;  // release()d: the key's next entry no longer waits for this one
  size_t charged_bytes = 0;   // what it counts against max_bytes until done()
};

// About what one entry of `invalidation` under `queue_key` costs the queue, the publisher and the
// allocator: its strings plus a fixed share for the containers that track it.
size_t footprint(const std::string& queue_key, const Invalidation& invalidation);

class CoalescingQueue {
 public:
  // The type of the queue's time points; the time itself is read from the injected clock, so
  // take()'s deadline is that clock's now() plus a duration.
  using Clock = std::chrono::steady_clock;

  // `clock` is not owned and must outlive the queue.
  CoalescingQueue(std::chrono::milliseconds window, size_t max_keys, size_t max_bytes,
                  QueueClock& clock = QueueClock::steady());
  CoalescingQueue(std::chrono::milliseconds window, size_t max_keys,
                  QueueClock& clock = QueueClock::steady())
      : CoalescingQueue(window, max_keys, SIZE_MAX, clock) {}
  CoalescingQueue(const CoalescingQueue&) = delete;
  CoalescingQueue& operator=(const CoalescingQueue&) = delete;

  // Returns false when the queue is closed. Blocks while max_keys keys are tracked.
  bool push(const std::string& channel, Invalidation invalidation);
  // The same without waiting: false (and `invalidation` untouched) when the cap is reached
  // or the queue is closed.
  bool try_push(const std::string& channel, Invalidation& invalidation);
  size_t max_keys() const { return max_keys_; }
  size_t max_bytes() const { return max_bytes_; }
  size_t bytes() const;  // the footprint of what waits or is in flight

  // Waits until entries are ready (or `deadline` passes, or close()), then takes up to
  // max_items of them. With a `linger`, a partial batch waits up to that long after its first
  // entry became ready for more to join it (fewer, fuller requests under load). Each taken
  // entry must be handed back to done() once published (or given up on). Returns an empty
  // vector on timeout or after close() with nothing ready.
  std::vector<QueuedInvalidation> take(size_t max_items, Clock::time_point deadline,
                                       Clock::duration linger = Clock::duration::zero());
  void done(const std::vector<QueuedInvalidation>& items);
  // The first of several sinks has the items: a newer entry of the same key may be taken now,
  // while these go on to the later sinks (which do not care about order: an invalidation is
  // idempotent). They still count against max_keys and low_watermark() until done().
  void release(std::vector<QueuedInvalidation>& items);

  uint64_t next_sequence() const;
  uint64_t low_watermark() const;
  size_t pending_keys() const;        // keys waiting for publication
  uint64_t coalesced_count() const;   // pushes merged into an already pending entry
  bool idle() const;                  // nothing pending and nothing in flight
  bool closed() const;

  // Wakes every waiter and makes every pending entry ready regardless of its window;
  // push() fails afterwards, take() drains what is left.
  void close();

 private:
  // Kept small: a key stays in keys_ for its whole window, pending or not.
  struct KeyState {
    std::unique_ptr<Invalidation> pending;
    uint64_t pending_sequence = 0;
    size_t pending_bytes = 0;  // footprint() of pending
    Clock::time_point window_end{};  // no publication before this (leading edge: in the past)
    bool ready = false;              // in ready_
    int in_flight = 0;               // taken, not yet done()
  };

  bool has_room(const std::string& key) const;                 // REQUIRES: mutex_ held
  void insert(std::string key, Invalidation invalidation);   // REQUIRES: mutex_ held, room
  void fire_due_timers(Clock::time_point now);  // REQUIRES: mutex_ held
  void make_ready(const std::string& key, KeyState& state);  // REQUIRES: mutex_ held
  void forget_if_quiet(const std::string& key, Clock::time_point now);  // REQUIRES: mutex_ held
  void forget_expired(Clock::time_point now);  // REQUIRES: mutex_ held
  // The key's part of done(): its next entry may go.
  void release_key(const QueuedInvalidation& item, Clock::time_point now);  // REQUIRES: mutex_ held

  const std::chrono::milliseconds window_;
  const size_t max_keys_;
  const size_t max_bytes_;
  QueueClock& clock_;  // reads the time and does every wait

  mutable std::mutex mutex_;
  std::condition_variable ready_or_timer_;  // signalled when ready_ grows or on close
  std::condition_variable room_;            // signalled when entries are done or on close
  // State below is protected by mutex_.
  std::unordered_map<std::string, KeyState> keys_;  // by channel + '\0' + cache key
  std::deque<std::string> ready_;
  Clock::time_point ready_since_{};  // when ready_ last went from empty to non-empty
  using Timer = std::pair<Clock::time_point, std::string>;
  // Keys whose pending change waits for its window's end: the only reason take() wakes early.
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> trailing_;
  // Every window opened, in time order (the window is constant): forgotten lazily once over
  // if nothing new came, without waking anyone.
  std::deque<Timer> expiries_;
  std::multiset<uint64_t> unpublished_;  // sequences of pending and in-flight entries
  uint64_t next_sequence_ = 1;
  uint64_t coalesced_ = 0;
  size_t pending_ = 0;
  size_t in_flight_ = 0;
  size_t bytes_ = 0;       // footprint of the pending and in-flight entries
  bool closed_ = false;
};

}  // namespace bridge
