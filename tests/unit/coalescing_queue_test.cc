#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "coalescing_queue.h"

using namespace bridge;
using namespace std::chrono_literals;

namespace {
Invalidation inv(const std::string& key, int64_t at, bool replay = false) {
  Invalidation i;
  i.cache_key = key;
  i.seq = at;  // the queue orders by seq
  i.invalidated_at_ms = at;
  i.replay = replay;
  return i;
}
auto soon() { return CoalescingQueue::Clock::now() + 2s; }
auto now() { return CoalescingQueue::Clock::now(); }
}  // namespace

TEST_CASE("the first change to a key is ready at once (leading edge)") {
  CoalescingQueue q(10s, 100);
  REQUIRE(q.push("c", inv("k", 1)));
  auto start = now();
  auto items = q.take(10, soon());
  CHECK(now() - start < 1s);
  REQUIRE(items.size() == 1);
  CHECK(items[0].channel == "c");
  CHECK(items[0].invalidation.cache_key == "k");
}

TEST_CASE("changes within the window merge; the newest is published when it ends") {
  CoalescingQueue q(300ms, 100);
  REQUIRE(q.push("c", inv("k", 1)));
  auto first = q.take(10, soon());
  REQUIRE(first.size() == 1);
  auto published_at = now();
  q.done(first);

  for (int64_t t = 2; t <= 50; ++t) REQUIRE(q.push("c", inv("k", t)));
  REQUIRE(q.push("c", inv("k", 10)));  // an older timestamp arriving late does not win
  CHECK(q.coalesced_count() == 49);
  CHECK(q.take(10, now() + 100ms).empty());  // still inside the window

  auto trailing = q.take(10, soon());
  REQUIRE(trailing.size() == 1);
  CHECK(trailing[0].invalidation.invalidated_at_ms == 50);
  CHECK(now() - published_at >= 290ms);
  q.done(trailing);
  CHECK(q.idle());
}

TEST_CASE("distinct keys and channels do not wait for each other") {
  CoalescingQueue q(10s, 100);
  REQUIRE(q.push("c", inv("a", 1)));
  REQUIRE(q.push("c", inv("b", 1)));
  REQUIRE(q.push("other", inv("a", 1)));
  auto items = q.take(2, soon());
  CHECK(items.size() == 2);  // at most max_items per take
  auto rest = q.take(10, soon());
  CHECK(rest.size() == 1);
}

TEST_CASE("a replay merged with a live change is no longer a replay") {
  CoalescingQueue q(0ms, 100);
  REQUIRE(q.push("c", inv("k", 5, true)));
  REQUIRE(q.push("c", inv("k", 3, false)));
  auto items = q.take(10, soon());
  REQUIRE(items.size() == 1);
  CHECK(items[0].invalidation.invalidated_at_ms == 5);
  CHECK_FALSE(items[0].invalidation.replay);
}

TEST_CASE("a replay of the pending change does not erase its details") {
  CoalescingQueue q(0ms, 100);
  Invalidation live = inv("k", 5);
  live.action = "update";
  live.data_json = "{}";
  REQUIRE(q.push("c", live));
  REQUIRE(q.push("c", inv("k", 5, true)));  // the store's row for the same change
  auto items = q.take(10, soon());
  REQUIRE(items.size() == 1);
  CHECK(items[0].invalidation.action == "update");
  CHECK(items[0].invalidation.data_json == "{}");
  CHECK_FALSE(items[0].invalidation.replay);
}

TEST_CASE("the low watermark passes a push only once it is published") {
  CoalescingQueue q(0ms, 100);
  uint64_t start = q.next_sequence();
  CHECK(q.low_watermark() == start);
  REQUIRE(q.push("c", inv("a", 1)));
  REQUIRE(q.push("c", inv("b", 1)));
  CHECK(q.low_watermark() == start);
  auto items = q.take(1, soon());
  REQUIRE(items.size() == 1);
  CHECK(q.low_watermark() == start);  // in flight is not published
  q.done(items);
  CHECK(q.low_watermark() == start + 1);
  q.done(q.take(10, soon()));
  CHECK(q.low_watermark() == start + 2);
  CHECK(q.low_watermark() == q.next_sequence());
}

TEST_CASE("a full queue blocks new keys until there is room, and drops nothing") {
  CoalescingQueue q(0ms, 2);
  REQUIRE(q.push("c", inv("a", 1)));
  REQUIRE(q.push("c", inv("b", 1)));
  REQUIRE(q.push("c", inv("a", 2)));  // an existing key merges without waiting
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    pushed = q.push("c", inv("c", 1));
  });
  std::this_thread::sleep_for(100ms);
  CHECK_FALSE(pushed.load());
  auto items = q.take(10, soon());
  CHECK(items.size() == 2);
  q.done(items);
  producer.join();
  CHECK(pushed.load());
  auto last = q.take(10, soon());
  REQUIRE(last.size() == 1);
  CHECK(last[0].invalidation.cache_key == "c");
}

TEST_CASE("close() releases what waits for its window") {
  CoalescingQueue q(60s, 100);
  REQUIRE(q.push("c", inv("k", 1)));
  q.done(q.take(10, soon()));
  REQUIRE(q.push("c", inv("k", 2)));
  q.close();
  auto items = q.take(10, soon());
  REQUIRE(items.size() == 1);
  CHECK(items[0].invalidation.invalidated_at_ms == 2);
  CHECK_FALSE(q.push("c", inv("k", 3)));
}

TEST_CASE("with a linger, a partial batch waits for more entries; a full one goes at once") {
  CoalescingQueue q(0ms, 100);
  REQUIRE(q.push("c", inv("a", 1)));
  std::thread late([&] {
    std::this_thread::sleep_for(50ms);
    (void)q.push("c", inv("b", 1));
  });
  auto items = q.take(10, soon(), 500ms);
  late.join();
  CHECK(items.size() == 2);  // b joined a's batch

  REQUIRE(q.push("c", inv("c", 1)));
  REQUIRE(q.push("c", inv("d", 1)));
  auto start = now();
  auto full = q.take(2, soon(), 10s);
  CHECK(full.size() == 2);
  CHECK(now() - start < 1s);
}

TEST_CASE("keys remembered for their window do not count against the cap") {
  CoalescingQueue q(10s, 2);
  REQUIRE(q.push("c", inv("a", 1)));
  REQUIRE(q.push("c", inv("b", 1)));
  q.done(q.take(10, soon()));  // a and b published, remembered until their window ends
  std::atomic<int> pushed{0};
  std::thread producer([&] {
    pushed += q.push("c", inv("c", 1));
    pushed += q.push("c", inv("d", 1));
  });
  auto deadline = now() + 2s;
  while (pushed < 2 && now() < deadline) std::this_thread::sleep_for(5ms);
  CHECK(pushed == 2);
  q.close();
  producer.join();
}

TEST_CASE("per key at most one publish in flight: the newer change waits for the older to be done") {
  CoalescingQueue q(0ms, 100);  // no window: only the in-flight rule holds it back
  REQUIRE(q.push("c", inv("k", 1)));
  auto first = q.take(10, soon());
  REQUIRE(first.size() == 1);
  REQUIRE(q.push("c", inv("k", 2)));
  REQUIRE(q.push("c", inv("other", 1)));
  auto meanwhile = q.take(10, now() + 50ms);
  REQUIRE(meanwhile.size() == 1);  // another key is not held back
  CHECK(meanwhile[0].invalidation.cache_key == "other");
  CHECK(q.take(10, now() + 50ms).empty());  // k's newer change waits while k:1 is in flight
  q.done(first);
  auto second = q.take(10, soon());
  REQUIRE(second.size() == 1);
  CHECK(second[0].invalidation.seq == 2);
  q.done(second);
  q.done(meanwhile);
  CHECK(q.idle());
}

TEST_CASE("a trailing entry whose window ends while its key is in flight goes out after done()") {
  CoalescingQueue q(50ms, 100);
  REQUIRE(q.push("c", inv("k", 1)));
  auto first = q.take(10, soon());
  REQUIRE(first.size() == 1);
  REQUIRE(q.push("c", inv("k", 2)));
  CHECK(q.take(10, now() + 150ms).empty());  // the window ended, but k:1 is still in flight
  q.done(first);
  auto second = q.take(10, soon());
  REQUIRE(second.size() == 1);
  CHECK(second[0].invalidation.seq == 2);
  q.done(second);
}
