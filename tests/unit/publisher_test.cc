// The Publisher's pipeline of sinks, with in-process sinks whose answers the test scripts:
// what each sink receives, and what the queue (the cursor's view) sees as done.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "coalescing_queue.h"
#include "metrics.h"
#include "publisher.h"
#include "sink.h"

using namespace bridge;
using namespace std::chrono_literals;

namespace {

// Accepts (or, while `away`, answers nothing to) every request; records what it accepted.
class FakeSink : public Sink {
 public:
  FakeSink(const char* name, size_t max_batch, std::function<bool(const QueuedInvalidation&)> wants)
      : name_(name), max_batch_(max_batch), wants_(std::move(wants)) {}

  std::string_view name() const override { return name_; }
  size_t max_batch() const override { return max_batch_; }
  bool wants(const QueuedInvalidation& item) const override { return wants_(item); }
  bool carries_row_data() const override { return false; }
  std::string_view credentials_name() const override { return "the test's credentials"; }
  std::string_view rejected_hint() const override { return "none"; }
  SinkCounters& counters() override { return counters_; }
  std::unique_ptr<SinkClient> connect() const override { return std::make_unique<Client>(*const_cast<FakeSink*>(this)); }

  std::atomic<bool> away{false};

  std::vector<Invalidation> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  // The seqs received for `key`, in order.
  std::vector<int64_t> seqs_of(const std::string& key) {
    std::vector<int64_t> out;
    for (const auto& inv : received()) {
      if (inv.cache_key == key) out.push_back(inv.seq);
    }
    return out;
  }

 private:
  struct Client : SinkClient {
    explicit Client(FakeSink& sink) : sink_(sink) {}
    PublishOutcome send(std::span<const QueuedInvalidation> items) override {
      PublishOutcome outcome;
      if (sink_.away) {
        outcome.kind = PublishOutcome::Kind::kTimeout;
        outcome.detail = "away";
        return outcome;
      }
      std::lock_guard lock(sink_.mutex_);
      for (const auto& item : items) sink_.received_.push_back(item.invalidation);
      return outcome;
    }
    FakeSink& sink_;
  };

  const char* name_;
  size_t max_batch_;
  std::function<bool(const QueuedInvalidation&)> wants_;
  SinkCounters counters_;
  std::mutex mutex_;
  std::vector<Invalidation> received_;
};

Invalidation change(const std::string& key, int64_t seq, bool replay = false) {
  Invalidation inv;
  inv.cache_key = key;
  inv.seq = seq;
  inv.replay = replay;
  return inv;
}

// Polls `condition` for up to 10 s of real time: the publisher's workers are real threads.
bool eventually(const std::function<bool()>& condition) {
  auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return condition();
}

const auto everything = [](const QueuedInvalidation&) { return true; };
const auto no_replays = [](const QueuedInvalidation& item) { return !item.invalidation.replay; };

// The bridge's shape: Soketi first, the app second (away until a test brings it back), on a
// queue without coalescing windows; stopped at once at the end of the test. Tests name its
// members by reference, not by a structured binding, which clang 14 cannot capture in a lambda.
struct TwoSinks {
  TwoSinks(size_t max_keys, int workers, std::function<bool(const QueuedInvalidation&)> app_wants)
      : queue(0ms, max_keys),
        soketi("first", 10, everything),
        app("second", 100, std::move(app_wants)),
        publisher({&soketi, &app}, queue, workers, 0us) {
    app.away = true;
    publisher.start();
  }
  ~TwoSinks() {
    publisher.set_drain_deadline(0ms);
    publisher.drain_and_stop();
  }
  CoalescingQueue queue;
  FakeSink soketi;
  FakeSink app;
  Publisher publisher;
};

}  // namespace

TEST_CASE("a later sink that is away holds back neither the first sink nor a hot key, and holds one entry per key") {
  TwoSinks pipeline(5, 2, no_replays);  // room for 5 entries in all: a handoff entry per change would fill it
  auto& queue = pipeline.queue;
  auto& soketi = pipeline.soketi;
  auto& app = pipeline.app;
  auto& publisher = pipeline.publisher;

  uint64_t start = queue.next_sequence();
  for (int64_t seq = 1; seq <= 50; ++seq) {
    Invalidation inv = change("hot", seq);
    // Never blocks: the hot key's newer changes merge into the one waiting for the app.
    REQUIRE(eventually([&] { return queue.try_push("c", inv); }));
    REQUIRE(eventually([&] { return soketi.seqs_of("hot").size() == static_cast<size_t>(seq); }));
  }
  CHECK(soketi.seqs_of("hot").back() == 50);  // every change reached the first sink, in order
  CHECK(app.received().empty());
  CHECK(queue.low_watermark() == start);  // the cursor waits for the app

  app.away = false;
  REQUIRE(eventually([&] { return queue.idle(); }));
  auto got = app.seqs_of("hot");
  // The newest change reached the app (in any order: an invalidation is idempotent), and the
  // 50 changes took a few entries, not one each.
  CHECK(std::find(got.begin(), got.end(), 50) != got.end());
  CHECK(got.size() <= 4);
  CHECK(queue.low_watermark() == queue.next_sequence());
  publisher.set_drain_deadline(0ms);
  publisher.drain_and_stop();
  CHECK(publisher.gave_up_nothing());
}

TEST_CASE("replays go to the first sink only, and are done without waiting for the one that skips them") {
  TwoSinks pipeline(100, 1, no_replays);
  auto& queue = pipeline.queue;
  auto& soketi = pipeline.soketi;
  auto& app = pipeline.app;
  for (int i = 0; i < 5; ++i) REQUIRE(queue.push("c", change("r" + std::to_string(i), 10 + i, /*replay=*/true)));
  REQUIRE(eventually([&] { return queue.idle(); }));  // done, though the app is away
  CHECK(soketi.received().size() == 5);
  CHECK(app.received().empty());
  CHECK(queue.low_watermark() == queue.next_sequence());
}

TEST_CASE("at the drain deadline a sink that is still away is given up on, within the deadline, and says so") {
  TwoSinks pipeline(100, 1, everything);
  auto& queue = pipeline.queue;
  auto& soketi = pipeline.soketi;
  auto& app = pipeline.app;
  auto& publisher = pipeline.publisher;
  REQUIRE(queue.push("c", change("k", 1)));
  REQUIRE(eventually([&] { return soketi.received().size() == 1; }));
  publisher.set_drain_deadline(300ms);
  auto started = std::chrono::steady_clock::now();
  publisher.drain_and_stop();
  CHECK(std::chrono::steady_clock::now() - started < 5s);  // a bound, not a benchmark
  CHECK_FALSE(publisher.gave_up_nothing());  // the cursor must not pass k
  CHECK(app.received().empty());
}
