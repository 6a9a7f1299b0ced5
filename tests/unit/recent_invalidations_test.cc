#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "recent_invalidations.h"

using namespace bridge;

namespace {

QueuedInvalidation item(const std::string& key, int64_t seq, bool replay = false) {
  QueuedInvalidation q;
  q.channel = "invalidations";
  q.invalidation.cache_key = key;
  q.invalidation.seq = seq;
  q.invalidation.table = "posts";
  q.invalidation.action = "update";
  q.invalidation.replay = replay;
  return q;
}

std::vector<std::string> keys(const RecentInvalidations& recent) {
  std::vector<std::string> out;
  for (const auto& r : recent.newest_first()) out.push_back(r.cache_key);
  return out;
}

}  // namespace

TEST_CASE("recent invalidations: newest first, with the stamp's times and the latency to the publish") {
  RecentInvalidations recent(3);
  CHECK(recent.newest_first().empty());
  std::vector<QueuedInvalidation> batch{item("a", 1'000'000'000'000'000), item("b", 1'000'000'000'001'000, true)};
  recent.record(batch, 1'000'000'000'004'500);
  auto entries = recent.newest_first();
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].cache_key == "b");
  CHECK(entries[0].replay);
  CHECK(entries[1].cache_key == "a");
  CHECK(entries[1].channel == "invalidations");
  CHECK(entries[1].table == "posts");
  CHECK(entries[1].action == "update");
  CHECK(entries[1].seq == 1'000'000'000'000'000);
  CHECK(entries[1].invalidated_at_ms == 1'000'000'000'001);  // the first whole ms after seq
  CHECK(entries[1].published_at_ms == 1'000'000'000'004);
  CHECK(entries[1].latency_ms == doctest::Approx(4.5));
  CHECK(entries[0].latency_ms == doctest::Approx(3.5));
}

TEST_CASE("recent invalidations: only the last `capacity` stay, across batches and within one") {
  RecentInvalidations recent(3);
  for (int i = 0; i < 5; ++i) {
    std::vector<QueuedInvalidation> one{item("k" + std::to_string(i), 10 + i)};
    recent.record(one, 100);
  }
  CHECK(keys(recent) == std::vector<std::string>{"k4", "k3", "k2"});
  std::vector<QueuedInvalidation> big;
  for (int i = 0; i < 7; ++i) big.push_back(item("b" + std::to_string(i), 100 + i));
  recent.record(big, 200);
  CHECK(keys(recent) == std::vector<std::string>{"b6", "b5", "b4"});
}

TEST_CASE("recent invalidations: long keys are cut at a character boundary") {
  RecentInvalidations recent(2);
  std::string key(RecentInvalidations::kMaxKeyBytes - 1, 'x');
  key += "é tail";  // é straddles the limit: cut before it, not inside
  std::vector<QueuedInvalidation> one{item(key, 1)};
  recent.record(one, 2);
  std::string shown = recent.newest_first().front().cache_key;
  CHECK(shown == std::string(RecentInvalidations::kMaxKeyBytes - 1, 'x') + "…");
}

TEST_CASE("recent invalidations: recording from several threads while reading stays consistent") {
  RecentInvalidations recent(20);
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&recent, t] {
      for (int i = 0; i < 500; ++i) {
        std::vector<QueuedInvalidation> one{item("t" + std::to_string(t), i)};
        recent.record(one, i);
      }
    });
  }
  for (int i = 0; i < 200; ++i) CHECK(recent.newest_first().size() <= 20);
  for (auto& w : writers) w.join();
  CHECK(recent.newest_first().size() == 20);
}
