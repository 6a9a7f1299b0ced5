#include <pthread.h>

#include "publisher.h"

#include <algorithm>
#include <random>

#include "change_clock.h"
#include "clock.h"
#include "log.h"
#include "rate_limiter.h"

namespace bridge {
namespace {

// A Retry-After beyond this is the receiver (or a proxy) asking too much: retry sooner.
constexpr std::chrono::milliseconds kMaxRetryAfter{30000};

const char* kind_name(PublishOutcome::Kind kind) {
  switch (kind) {
    case PublishOutcome::Kind::kOk: return "ok";
    case PublishOutcome::Kind::kTimeout: return "no response";
    case PublishOutcome::Kind::kServerError: return "server error";
    case PublishOutcome::Kind::kThrottled: return "throttled";
    case PublishOutcome::Kind::kRejected: return "rejected";
  }
  return "?";
}

void count_failure(SinkCounters& counters, PublishOutcome::Kind kind) {
  switch (kind) {
    case PublishOutcome::Kind::kTimeout: ++counters.errors_timeout; break;
    case PublishOutcome::Kind::kServerError: ++counters.errors_server; break;
    case PublishOutcome::Kind::kThrottled: ++counters.errors_throttled; break;
    default: ++counters.errors_rejected; break;
  }
}

}  // namespace

Publisher::Publisher(std::vector<Sink*> sinks, CoalescingQueue& queue, int concurrency,
                     std::chrono::microseconds linger)
    : queue_(queue), concurrency_(concurrency), linger_(linger) {
  for (Sink* sink : sinks) {
    stages_.push_back(std::make_unique<Stage>());
    stages_.back()->sink = sink;
  }
}

Publisher::~Publisher() {
  if (give_up_at_ms_ == 0) set_drain_deadline(std::chrono::milliseconds(0));
  drain_and_stop();
}

void Publisher::start() {
  for (size_t index = 0; index < stages_.size(); ++index) {
    for (int i = 0; i < concurrency_; ++i) {
      stages_[index]->workers.emplace_back([this, index] {
        pthread_setname_np(pthread_self(), index == 0 ? "publisher" : "publisher-sink");
        run_stage(index);
      });
    }
  }
}

void Publisher::set_drain_deadline(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(pause_mutex_);
    give_up_at_ms_ = steady_ms() + grace.count();
  }
  deadline_set_.notify_all();
}

void Publisher::drain_and_stop() {
  queue_.close();  // the first stage's workers exit once nothing is ready
  for (size_t index = 0; index < stages_.size(); ++index) {
    Stage& stage = *stages_[index];
    if (index > 0) {
      {
        std::lock_guard lock(stage.mutex);
        stage.closed = true;  // the stage before has stopped: this one drains its handoff and exits
      }
      stage.arrived.notify_all();
    }
    for (auto& worker : stage.workers) {
      if (worker.joinable()) worker.join();
    }
    stage.workers.clear();
  }
}

bool Publisher::giving_up() const {
  int64_t at = give_up_at_ms_;
  return at != 0 && steady_ms() >= at;
}

bool Publisher::pause(std::chrono::steady_clock::duration duration) {
  std::unique_lock lock(pause_mutex_);
  auto until = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < until) {
    int64_t at = give_up_at_ms_;
    auto wake = until;
    if (at != 0) {
      auto deadline = std::chrono::steady_clock::time_point(std::chrono::milliseconds(at));
      if (deadline <= std::chrono::steady_clock::now()) return false;
      wake = std::min(wake, deadline);
    }
    deadline_set_.wait_until(lock, wake);
  }
  return !giving_up();
}

void Publisher::run_stage(size_t index) {
  Stage& stage = *stages_[index];
  Route route{stage.sink, stage.sink->connect()};
  size_t max_batch = stage.sink->max_batch();
  while (true) {
    std::vector<QueuedInvalidation> items;
    route.client->prepare();  // the next connection's handshake overlaps the wait
    if (index == 0) {
      items = queue_.take(max_batch, CoalescingQueue::Clock::now() + std::chrono::seconds(1), linger_);
      if (items.empty()) {
        if (queue_.closed()) return;  // closed and drained
        continue;
      }
    } else {
      items = take_handoff(stage);
      if (items.empty()) return;  // closed and drained
    }
    deliver(route, stage.state, items);
    pass_on(index, std::move(items));
  }
}

std::vector<QueuedInvalidation> Publisher::take_handoff(Stage& stage) {
  std::unique_lock lock(stage.mutex);
  stage.arrived.wait(lock, [&] { return !stage.handoff.empty() || stage.closed; });
  std::vector<QueuedInvalidation> items;
  size_t n = std::min(stage.handoff.size(), stage.sink->max_batch());
  items.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    QueuedInvalidation& front = stage.handoff.front();
    stage.waiting.erase(queue_key(front.channel, front.invalidation.cache_key));
    items.push_back(std::move(front));
    stage.handoff.pop_front();
  }
  if (!stage.handoff.empty()) stage.arrived.notify_one();  // more than one request's worth
  return items;
}

bool Publisher::wanted_after(size_t index, const QueuedInvalidation& item) const {
  for (size_t later = index + 1; later < stages_.size(); ++later) {
    if (stages_[later]->sink->wants(item)) return true;
  }
  return false;
}

void Publisher::pass_on(size_t index, std::vector<QueuedInvalidation> items) {
  if (index + 1 == stages_.size()) return queue_.done(items);
  // Soketi has them in order; the later sinks need no order, so the key's next change need
  // not wait for them (a hot key keeps reaching Soketi while the app is away).
  if (index == 0) queue_.release(items);
  Stage& next = *stages_[index + 1];
  std::vector<QueuedInvalidation> finished;  // wanted by no later stage, or merged into a waiting one
  {
    std::lock_guard lock(next.mutex);
    for (auto& item : items) {
      if (!wanted_after(index, item)) {
        finished.push_back(std::move(item));
        continue;
      }
      std::string key = queue_key(item.channel, item.invalidation.cache_key);
      if (auto it = next.waiting.find(key); it != next.waiting.end()) {
        // One invalidation covers both; the waiting entry keeps its (older) sequence, so the
        // cursor still waits for it, as when the queue merges pending entries.
        it->second->invalidation = newest_of(std::move(it->second->invalidation), std::move(item.invalidation));
        finished.push_back(std::move(item));
        continue;
      }
      next.handoff.push_back(std::move(item));
      next.waiting.emplace(std::move(key), std::prev(next.handoff.end()));
    }
  }
  if (!finished.empty()) queue_.done(finished);
  next.arrived.notify_one();
}

void Publisher::deliver(Route& route, SinkState& state, std::span<const QueuedInvalidation> items) {
  std::vector<QueuedInvalidation> wanted;  // only filled when the sink skips some
  if (!std::all_of(items.begin(), items.end(), [&](const auto& item) { return route.sink->wants(item); })) {
    for (const auto& item : items) {
      if (route.sink->wants(item)) wanted.push_back(item);
    }
    items = wanted;
  }
  size_t max_batch = route.sink->max_batch();
  for (size_t at = 0; at < items.size(); at += max_batch) {
    deliver_batch(route, state, items.subspan(at, std::min(max_batch, items.size() - at)));
  }
}

void Publisher::deliver_batch(Route& route, SinkState& state, std::span<const QueuedInvalidation> items) {
  static thread_local std::minstd_rand jitter(std::random_device{}());
  Sink& sink = *route.sink;
  SinkCounters& counters = sink.counters();
  std::chrono::milliseconds backoff{100};
  auto give_up = [&](int attempt, const std::string& why) {
    gave_up_ += items.size();
    log::error("shutting down: gave up on {} event(s) for {} after {} attempt(s){}; the next start "
               "catches them up", items.size(), sink.name(), attempt, why.empty() ? "" : " (" + why + ")");
  };
  std::string last_failure;
  for (int attempt = 1;; ++attempt) {
    if (giving_up()) return give_up(attempt - 1, last_failure);
    if (RateLimiter* limiter = sink.rate_limiter()) {
      if (auto wait = limiter->reserve(static_cast<double>(items.size())); wait.count() > 0) {
        if (!pause(wait)) return give_up(attempt - 1, last_failure);
      }
    }
    PublishOutcome outcome = route.client->send(items);
    if (outcome.kind == PublishOutcome::Kind::kOk) return delivered(route, state, items, attempt);

    count_failure(counters, outcome.kind);
    bool sender_rejected = outcome.sender_rejected();
    if (outcome.kind == PublishOutcome::Kind::kRejected && !sender_rejected) {
      return isolate_rejected(route, state, items, outcome);
    }
    if (sender_rejected && !state.sender_rejected.exchange(true)) {
      // About every item, not one. Hold everything (the cursor stays) until the sink accepts
      // again; /readyz says why meanwhile (for Soketi).
      log::error("{} rejected {} (HTTP {}): {}; publishing is paused and retried, nothing is dropped: {}",
                 sink.name(), sink.credentials_name(), outcome.http_status, sink.rejected_hint(),
                 outcome.detail);
    }
    last_failure = outcome.detail;
    if (giving_up()) return give_up(attempt, last_failure);
    auto wait = std::max(backoff, std::min(outcome.retry_after, kMaxRetryAfter));
    wait += std::chrono::milliseconds(jitter() % (backoff.count() / 2 + 1));
    if (!sender_rejected && (attempt == 1 || attempt % 10 == 0)) {
      log::warn("{}: publishing {} event(s) failed ({}{}{}); retrying in {} ms (attempt {})",
                sink.name(), items.size(), kind_name(outcome.kind),
                outcome.http_status ? fmt::format(" HTTP {}", outcome.http_status) : "",
                outcome.detail.empty() ? "" : ": " + outcome.detail, wait.count(), attempt);
    }
    ++counters.retries;
    if (!pause(wait)) return give_up(attempt, last_failure);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

void Publisher::delivered(Route& route, SinkState& state, std::span<const QueuedInvalidation> items,
                          int attempts) {
  Sink& sink = *route.sink;
  SinkCounters& counters = sink.counters();
  counters.delivered += items.size();
  counters.requests += 1;
  int64_t now_us = epoch_us();
  counters.recent.record(items, now_us);
  for (const auto& item : items) {
    // From the stamp, taken at receipt (just after the commit, for a live change). A replay
    // re-sends an old stamp: its age says nothing about latency.
    if (!item.invalidation.replay) {
      counters.lag.observe(static_cast<double>(now_us - item.invalidation.seq) / 1000.0);
    }
    log::debug("published {} on {} to {} (invalidatedAt {}{})", log::excerpt(item.invalidation.cache_key),
               item.channel, sink.name(), invalidated_at_of(item.invalidation.seq),
               item.invalidation.replay ? ", replay" : "");
  }
  if (state.sender_rejected.exchange(false)) {
    log::info("{} accepts {} again; publishing resumed", sink.name(), sink.credentials_name());
  }
  if (attempts > 1) log::info("{} accepted the batch after {} attempts", sink.name(), attempts);
}

void Publisher::isolate_rejected(Route& route, SinkState& state, std::span<const QueuedInvalidation> items,
                                 const PublishOutcome& outcome) {
  // A receiver refuses a whole batch for one bad item: halve until the bad one stands alone.
  if (items.size() > 1) {
    size_t half = items.size() / 2;
    deliver_batch(route, state, items.first(half));
    deliver_batch(route, state, items.subspan(half));
    return;
  }
  const QueuedInvalidation& item = items.front();
  if (outcome.http_status == 413 && route.sink->carries_row_data() && !item.invalidation.data_json.empty()) {
    // Too large for the receiver (Soketi's limit below SOKETI_EVENT_MAX_SIZE_IN_KB): the key
    // and its stamp matter, the row does not.
    log::warn("{} refused the event for \"{}\" as too large (HTTP 413): sent without its row data",
              route.sink->name(), log::excerpt(item.invalidation.cache_key));
    QueuedInvalidation bare = item;
    bare.invalidation.data_json.clear();
    bare.invalidation.data_omitted = true;
    return deliver_batch(route, state, std::span(&bare, 1));
  }
  ++route.sink->counters().dropped_rejected;
  log::error("{} rejected the event for \"{}\" on {} (HTTP {}): dropped: {}", route.sink->name(),
             log::excerpt(item.invalidation.cache_key), item.channel, outcome.http_status, outcome.detail);
}

}  // namespace bridge
