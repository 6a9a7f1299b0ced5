#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "coalescing_queue.h"
#include "queue_clock.h"

using namespace bridge;
using namespace std::chrono_literals;

namespace {

// Real time, only ever as a failure bound: how long a test waits for something that should
// happen at once before it calls it a failure (and so never hangs).
constexpr auto kSafety = 10s;

// ManualClock: the queue's time under test, which moves only when the test makes it.
//   kJump:  a wait moves the clock straight to its end. For single-threaded tests: nobody
//           could end the wait earlier, so this is what real time would do, minus the sleep.
//           A "did not wait" check is `clock.now() == start`.
//   kBlock: a wait lasts until advance() passes its end (or the queue notifies it). For tests
//           with a second thread. A wait nobody ends within kSafety of real time fails the
//           test and ends at its own time, so a bug cannot hang the suite.
class ManualClock final : public QueueClock {
 public:
  enum class Waits { kJump, kBlock };
  static constexpr time_point kStart = time_point(1h);

  explicit ManualClock(Waits waits) : jump_(waits == Waits::kJump) {}

  time_point now() const override {
    std::lock_guard guard(mutex_);
    return now_;
  }

  // Moves the time on and ends the waits that are due.
  void advance(duration by) {
    std::vector<Waiter> due;
    {
      std::lock_guard guard(mutex_);
      now_ += by;
      for (const auto& [id, waiter] : waiters_) {
        if (waiter.until <= now_) due.push_back(waiter);
      }
    }
    // Under the waiter's mutex: one that registered but has not yet released it in
    // cv.wait would miss a bare notify. (The clock's own mutex is not held here: waiters
    // take it while holding theirs.)
    for (const auto& waiter : due) {
      std::lock_guard guard(*waiter.mutex);
      waiter.cv->notify_all();
    }
  }

  uint64_t waits_begun() const {
    std::lock_guard guard(mutex_);
    return waits_begun_;
  }

  // True once `n` waits have begun, i.e. a second thread is blocked in the queue; false
  // after kSafety.
  [[nodiscard]] bool await_waits(uint64_t n) {
    std::unique_lock guard(mutex_);
    return wait_begun_.wait_for(guard, kSafety, [&] { return waits_begun_ >= n; });
  }

  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  time_point until) override {
    std::unique_lock guard(mutex_);
    ++waits_begun_;
    wait_begun_.notify_all();
    if (until <= now_) return;
    if (jump_) {
      // A wait that never ends: without this, a queue that never gets ready spins forever.
      if (until - kStart > 24h) FAIL("waited a simulated day: nothing would ever wake it");
      now_ = until;
      return;
    }
    uint64_t id = next_id_++;
    waiters_.emplace(id, Waiter{&cv, lock.mutex(), until});
    guard.unlock();
    bool timed_out = cv.wait_for(lock, kSafety) == std::cv_status::timeout;
    guard.lock();
    waiters_.erase(id);
    if (timed_out && now_ < until) {
      FAIL_CHECK("a wait on the manual clock was never ended; forced to its end");
      now_ = until;
    }
  }

 private:
  struct Waiter {
    std::condition_variable* cv;
    std::mutex* mutex;
    time_point until;
  };

  const bool jump_;
  mutable std::mutex mutex_;
  std::condition_variable wait_begun_;
  // State below is protected by mutex_.
  time_point now_ = kStart;
  uint64_t waits_begun_ = 0;
  uint64_t next_id_ = 0;
  std::map<uint64_t, Waiter> waiters_;  // blocked waits (kBlock)
};

// Set once by one thread, awaited (bounded by kSafety) by another.
class Flag {
 public:
  void set() {
    std::lock_guard guard(mutex_);
    set_ = true;
    cv_.notify_all();
  }
  bool is_set() const {
    std::lock_guard guard(mutex_);
    return set_;
  }
  [[nodiscard]] bool await() {
    std::unique_lock guard(mutex_);
    return cv_.wait_for(guard, kSafety, [&] { return set_; });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool set_ = false;  // protected by mutex_
};

// A second thread for a test. Left unjoined (a failed REQUIRE), it is released by closing the
// queue, then joined, so a failure never hangs or terminates the suite.
class Worker {
 public:
  template <typename F>
  Worker(CoalescingQueue& queue, F work) : queue_(queue), thread_(std::move(work)) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() {
    if (!thread_.joinable()) return;
    queue_.close();
    thread_.join();
  }
  void join() { thread_.join(); }

 private:
  CoalescingQueue& queue_;
  std::thread thread_;
};

constexpr auto kJump = ManualClock::Waits::kJump;
constexpr auto kBlock = ManualClock::Waits::kBlock;

Invalidation inv(const std::string& key, int64_t at, bool replay = false) {
  Invalidation i;
  i.cache_key = key;
  i.seq = at;  // the queue orders by seq
  i.replay = replay;
  return i;
}
auto soon(const QueueClock& clock) { return clock.now() + 2s; }

}  // namespace

TEST_CASE("the first change to a key is ready at once (leading edge)") {
  ManualClock clock(kJump);
  CoalescingQueue q(10s, 100, clock);
  REQUIRE(q.push("c", inv("k", 1)));
  auto start = clock.now();
  auto items = q.take(10, soon(clock));
  CHECK(clock.now() == start);  // no wait at all
  REQUIRE(items.size() == 1);
  CHECK(items[0].channel == "c");
  CHECK(items[0].invalidation.cache_key == "k");
}

TEST_CASE("changes within the window merge; the newest is published when it ends") {
  ManualClock clock(kJump);
  CoalescingQueue q(300ms, 100, clock);
  REQUIRE(q.push("c", inv("k", 1)));
  auto first = q.take(10, soon(clock));
  REQUIRE(first.size() == 1);
  auto published_at = clock.now();
  q.done(first);

  for (int64_t t = 2; t <= 50; ++t) REQUIRE(q.push("c", inv("k", t)));
  REQUIRE(q.push("c", inv("k", 10)));  // an older timestamp arriving late does not win
  CHECK(q.coalesced_count() == 49);
  CHECK(q.take(10, clock.now() + 100ms).empty());  // still inside the window

  auto trailing = q.take(10, soon(clock));
  REQUIRE(trailing.size() == 1);
  CHECK(trailing[0].invalidation.seq == 50);
  CHECK(clock.now() - published_at == 300ms);  // when the window ends, not later
  q.done(trailing);
  CHECK(q.idle());
}

TEST_CASE("distinct keys and channels do not wait for each other") {
  ManualClock clock(kJump);
  CoalescingQueue q(10s, 100, clock);
  REQUIRE(q.push("c", inv("a", 1)));
  REQUIRE(q.push("c", inv("b", 1)));
  REQUIRE(q.push("other", inv("a", 1)));
  auto start = clock.now();
  auto items = q.take(2, soon(clock));
  CHECK(items.size() == 2);  // at most max_items per take
  auto rest = q.take(10, soon(clock));
  CHECK(rest.size() == 1);
  CHECK(clock.now() == start);
}

TEST_CASE("a replay merged with a live change is no longer a replay") {
  ManualClock clock(kJump);
  CoalescingQueue q(0ms, 100, clock);
  REQUIRE(q.push("c", inv("k", 5, true)));
  REQUIRE(q.push("c", inv("k", 3, false)));
  auto items = q.take(10, soon(clock));
  REQUIRE(items.size() == 1);
  CHECK(items[0].invalidation.seq == 5);
  CHECK_FALSE(items[0].invalidation.replay);
}

TEST_CASE("a replay of the pending change does not erase its details") {
  ManualClock clock(kJump);
  CoalescingQueue q(0ms, 100, clock);
  Invalidation live = inv("k", 5);
  live.action = "update";
  live.data_json = "{}";
  REQUIRE(q.push("c", live));
  REQUIRE(q.push("c", inv("k", 5, true)));  // the store's row for the same change
  auto items = q.take(10, soon(clock));
  REQUIRE(items.size() == 1);
  CHECK(items[0].invalidation.action == "update");
  CHECK(items[0].invalidation.data_json == "{}");
  CHECK_FALSE(items[0].invalidation.replay);
}

TEST_CASE("the low watermark passes a push only once it is published") {
  ManualClock clock(kJump);
  CoalescingQueue q(0ms, 100, clock);
  uint64_t start = q.next_sequence();
  CHECK(q.low_watermark() == start);
  REQUIRE(q.push("c", inv("a", 1)));
  REQUIRE(q.push("c", inv("b", 1)));
  CHECK(q.low_watermark() == start);
  auto items = q.take(1, soon(clock));
  REQUIRE(items.size() == 1);
  CHECK(q.low_watermark() == start);  // in flight is not published
  q.done(items);
  CHECK(q.low_watermark() == start + 1);
  q.done(q.take(10, soon(clock)));
  CHECK(q.low_watermark() == start + 2);
  CHECK(q.low_watermark() == q.next_sequence());
}

TEST_CASE("a full queue blocks new keys until there is room, and drops nothing") {
  ManualClock clock(kBlock);  // never advanced: only done() can release the push
  CoalescingQueue q(0ms, 2, clock);
  REQUIRE(q.push("c", inv("a", 1)));
  REQUIRE(q.push("c", inv("b", 1)));
  REQUIRE(q.push("c", inv("a", 2)));  // an existing key merges without waiting
  REQUIRE(clock.waits_begun() == 0);
  std::atomic<bool> pushed{false};
  Flag returned;
  Worker producer(q, [&] {
    pushed = q.push("c", inv("c", 1));
    returned.set();
  });
  REQUIRE(clock.await_waits(1));  // the producer waits in push()
  CHECK_FALSE(returned.is_set());
  CHECK_FALSE(pushed.load());
  auto items = q.take(10, soon(clock));
  CHECK(items.size() == 2);
  q.done(items);
  REQUIRE(returned.await());
  producer.join();
  CHECK(pushed.load());
  auto last = q.take(10, soon(clock));
  REQUIRE(last.size() == 1);
  CHECK(last[0].invalidation.cache_key == "c");
}

TEST_CASE("close() releases what waits for its window") {
  ManualClock clock(kJump);
  CoalescingQueue q(60s, 100, clock);
  REQUIRE(q.push("c", inv("k", 1)));
  q.done(q.take(10, soon(clock)));
  REQUIRE(q.push("c", inv("k", 2)));
  auto start = clock.now();
  q.close();
  auto items = q.take(10, soon(clock));
  REQUIRE(items.size() == 1);
  CHECK(items[0].invalidation.seq == 2);
  CHECK(clock.now() == start);  // not at the window's end
  CHECK_FALSE(q.push("c", inv("k", 3)));
}

TEST_CASE("with a linger, a partial batch waits for more entries; a full one goes at once") {
  ManualClock clock(kBlock);
  CoalescingQueue q(0ms, 100, clock);
  REQUIRE(q.push("c", inv("a", 1)));
  auto start = clock.now();
  std::vector<QueuedInvalidation> items;
  Flag taken;
  Worker consumer(q, [&] {
    items = q.take(10, start + 2s, 500ms);
    taken.set();
  });
  REQUIRE(clock.await_waits(1));  // a alone: lingering
  clock.advance(50ms);
  REQUIRE(q.push("c", inv("b", 1)));
  REQUIRE(clock.await_waits(2));  // woken by b, lingering on: the batch is not full
  CHECK_FALSE(taken.is_set());
  clock.advance(450ms);  // the linger ends
  REQUIRE(taken.await());
  consumer.join();
  CHECK(items.size() == 2);  // b joined a's batch

  REQUIRE(q.push("c", inv("c", 1)));
  REQUIRE(q.push("c", inv("d", 1)));
  auto waits = clock.waits_begun();
  auto full = q.take(2, soon(clock), 10s);
  CHECK(full.size() == 2);
  CHECK(clock.waits_begun() == waits);  // no wait at all
}

TEST_CASE("keys remembered for their window do not count against the cap") {
  ManualClock clock(kJump);  // a push that waited would move the clock
  CoalescingQueue q(10s, 2, clock);
  REQUIRE(q.push("c", inv("a", 1)));
  REQUIRE(q.push("c", inv("b", 1)));
  q.done(q.take(10, soon(clock)));  // a and b published, remembered until their window ends
  auto start = clock.now();
  CHECK(q.push("c", inv("c", 1)));
  CHECK(q.push("c", inv("d", 1)));
  CHECK(clock.now() == start);
  q.close();
}

TEST_CASE("a take() waiting for its deadline wakes when a window ends") {
  ManualClock clock(kBlock);
  CoalescingQueue q(300ms, 100, clock);
  REQUIRE(q.push("c", inv("k", 1)));
  q.done(q.take(10, soon(clock)));
  REQUIRE(q.push("c", inv("k", 2)));  // waits for the window
  std::vector<QueuedInvalidation> items;
  Flag taken;
  Worker consumer(q, [&] {
    items = q.take(10, clock.now() + 10s);
    taken.set();
  });
  REQUIRE(clock.await_waits(1));
  clock.advance(299ms);
  CHECK_FALSE(taken.is_set());
  clock.advance(1ms);
  REQUIRE(taken.await());
  consumer.join();
  REQUIRE(items.size() == 1);
  CHECK(items[0].invalidation.seq == 2);
}

TEST_CASE("per key at most one publish in flight: the newer change waits for the older to be done") {
  ManualClock clock(kJump);
  CoalescingQueue q(0ms, 100, clock);  // no window: only the in-flight rule holds it back
  REQUIRE(q.push("c", inv("k", 1)));
  auto first = q.take(10, soon(clock));
  REQUIRE(first.size() == 1);
  REQUIRE(q.push("c", inv("k", 2)));
  REQUIRE(q.push("c", inv("other", 1)));
  auto meanwhile = q.take(10, clock.now() + 50ms);
  REQUIRE(meanwhile.size() == 1);  // another key is not held back
  CHECK(meanwhile[0].invalidation.cache_key == "other");
  CHECK(q.take(10, clock.now() + 50ms).empty());  // k's newer change waits while k:1 is in flight
  q.done(first);
  auto second = q.take(10, soon(clock));
  REQUIRE(second.size() == 1);
  CHECK(second[0].invalidation.seq == 2);
  q.done(second);
  q.done(meanwhile);
  CHECK(q.idle());
}

TEST_CASE("a trailing entry whose window ends while its key is in flight goes out after done()") {
  ManualClock clock(kJump);
  CoalescingQueue q(50ms, 100, clock);
  REQUIRE(q.push("c", inv("k", 1)));
  auto first = q.take(10, soon(clock));
  REQUIRE(first.size() == 1);
  REQUIRE(q.push("c", inv("k", 2)));
  CHECK(q.take(10, clock.now() + 150ms).empty());  // the window ended, but k:1 is still in flight
  q.done(first);
  auto second = q.take(10, soon(clock));
  REQUIRE(second.size() == 1);
  CHECK(second[0].invalidation.seq == 2);
  q.done(second);
}

TEST_CASE("try_push never waits: false at the cap, merges still go in") {
  CoalescingQueue q(0ms, 2);
  Invalidation a = inv("a", 1), b = inv("b", 1), c = inv("c", 1), a2 = inv("a", 2);
  CHECK(q.try_push("ch", a));
  CHECK(q.try_push("ch", b));
  CHECK_FALSE(q.try_push("ch", c));
  CHECK(c.cache_key == "c");  // left to the caller
  CHECK(q.try_push("ch", a2));  // a is pending: it merges
  q.close();
  CHECK_FALSE(q.try_push("ch", c));
}

TEST_CASE("release(): the key's next change may go, while the released one still holds the watermark and its room") {
  ManualClock clock(kJump);
  CoalescingQueue q(0ms, 2, clock);
  uint64_t start = q.next_sequence();
  REQUIRE(q.push("c", inv("k", 1)));
  auto first = q.take(10, soon(clock));
  REQUIRE(first.size() == 1);
  REQUIRE(q.push("c", inv("k", 2)));
  CHECK(q.take(10, clock.now() + 50ms).empty());  // k:1 in flight holds k:2
  q.release(first);  // the first sink has k:1; the later ones are on it
  CHECK(first[0].key_released);
  auto second = q.take(10, soon(clock));
  REQUIRE(second.size() == 1);
  CHECK(second[0].invalidation.seq == 2);
  CHECK(q.low_watermark() == start);  // k:1 is not done
  Invalidation other = inv("other", 1);
  CHECK_FALSE(q.try_push("c", other));  // both still count against max_keys
  q.release(first);                     // a second release changes nothing
  q.done(first);
  CHECK(q.low_watermark() == start + 1);
  q.done(second);
  CHECK(q.low_watermark() == q.next_sequence());
  CHECK(q.idle());
}

TEST_CASE("the byte bound: large rows fill the queue sooner than small ones; it empties as they are done") {
  ManualClock clock(kJump);
  Invalidation big = inv("big:1", 1);
  big.data_json = std::string(3000, 'x');
  size_t one_big = footprint(queue_key("c", big.cache_key), big);
  CoalescingQueue q(0ms, 1000, 2 * one_big, clock);  // room for two such rows, by bytes
  for (int i = 1; i <= 2; ++i) {
    Invalidation row = big;
    row.cache_key = "big:" + std::to_string(i);
    REQUIRE(q.try_push("c", row));
  }
  CHECK(q.bytes() == 2 * one_big);  // "big:2" is as long as "big:1"
  Invalidation third = big;
  third.cache_key = "big:3";
  CHECK_FALSE(q.try_push("c", third));  // far below max_keys, but the bytes are used up
  Invalidation merge = big;             // a newer change of a waiting key still merges
  merge.cache_key = "big:1";
  merge.seq = 2;
  CHECK(q.try_push("c", merge));

  auto taken = q.take(10, soon(clock));
  REQUIRE(taken.size() == 2);
  CHECK_FALSE(q.try_push("c", third));  // in flight still counts
  q.done(taken);
  CHECK(q.bytes() == 0);
  CHECK(q.try_push("c", third));

  // An entry larger than the whole bound still goes through an empty queue.
  CoalescingQueue tiny(0ms, 1000, 100, clock);
  CHECK(tiny.try_push("c", big));
  CHECK(tiny.take(10, soon(clock)).size() == 1);
}
