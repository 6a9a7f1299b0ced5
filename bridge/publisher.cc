#include <pthread.h>

#include "publisher.h"

#include <algorithm>
#include <random>

#include "change_clock.h"
#include "clock.h"
#include "log.h"

namespace bridge {
namespace {

// A Retry-After beyond this is Soketi (or a proxy) asking too much: retry sooner.
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

}  // namespace

Publisher::Publisher(const Config& config, CoalescingQueue& queue, Metrics& metrics)
    : config_(config), queue_(queue), metrics_(metrics), rate_limiter_(config.max_events_per_second) {}

Publisher::~Publisher() {
  if (give_up_at_ms_ == 0) set_drain_deadline(std::chrono::milliseconds(0));
  drain_and_stop();
}

void Publisher::start() {
  for (int i = 0; i < config_.publish_concurrency; ++i) {
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "publisher");
      run();
    });
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
  queue_.close();  // workers exit once nothing is ready
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
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

void Publisher::run() {
  SoketiClient client(config_, &metrics_);
  while (true) {
    auto items = queue_.take(config_.max_batch_size,
                             CoalescingQueue::Clock::now() + std::chrono::seconds(1),
                             config_.publish_linger);
    if (items.empty()) {
      if (queue_.closed()) return;  // closed and drained
      continue;
    }
    publish_with_retries(client, items);
    queue_.done(items);
  }
}

void Publisher::publish_with_retries(SoketiClient& client,
                                     const std::vector<QueuedInvalidation>& items) {
  std::vector<PusherEvent> events;
  events.reserve(items.size());
  for (const auto& item : items) {
    events.push_back({item.channel, config_.event_name,
                      encode_event_data(item.invalidation, config_.max_event_bytes)});
  }
  publish_events(client, items, events);
}

void Publisher::publish_events(SoketiClient& client, std::span<const QueuedInvalidation> items,
                               std::span<PusherEvent> events) {
  static thread_local std::minstd_rand jitter(std::random_device{}());
  std::chrono::milliseconds backoff{100};
  auto give_up = [&](int attempt, const std::string& why) {
    gave_up_ += events.size();
    log::error("shutting down: gave up on {} event(s) after {} attempt(s){}; the next start "
               "catches them up", events.size(), attempt, why.empty() ? "" : " (" + why + ")");
  };
  std::string last_failure;
  for (int attempt = 1;; ++attempt) {
    if (giving_up()) return give_up(attempt - 1, last_failure);
    if (auto wait = rate_limiter_.reserve(static_cast<double>(events.size())); wait.count() > 0) {
      if (!pause(wait)) return give_up(attempt - 1, last_failure);
    }
    PublishOutcome outcome = client.publish(events);
    if (outcome.kind == PublishOutcome::Kind::kOk) return published(items, attempt);

    switch (outcome.kind) {
      case PublishOutcome::Kind::kTimeout: ++metrics_.publish_errors_timeout; break;
      case PublishOutcome::Kind::kServerError: ++metrics_.publish_errors_server; break;
      case PublishOutcome::Kind::kThrottled: ++metrics_.publish_errors_throttled; break;
      default: ++metrics_.publish_errors_rejected; break;
    }
    bool app_rejected = outcome.http_status == 401 || outcome.http_status == 403 || outcome.http_status == 404;
    if (outcome.kind == PublishOutcome::Kind::kRejected && !app_rejected) {
      return isolate_rejected(client, items, events, outcome);
    }
    if (app_rejected && !app_rejected_.exchange(true)) {
      // Wrong or rotated credentials, or an unknown app: about every event, not one. Hold
      // everything (the cursor stays) until Soketi accepts again; /readyz says why meanwhile.
      log::error("Soketi rejected the app's credentials (HTTP {}): check SOKETI_APP_ID, SOKETI_APP_KEY "
                 "and SOKETI_APP_SECRET; publishing is paused and retried, nothing is dropped: {}",
                 outcome.http_status, outcome.detail);
    }
    last_failure = outcome.detail;
    if (giving_up()) return give_up(attempt, last_failure);
    auto wait = std::max(backoff, std::min(outcome.retry_after, kMaxRetryAfter));
    wait += std::chrono::milliseconds(jitter() % (backoff.count() / 2 + 1));
    if (!app_rejected && (attempt == 1 || attempt % 10 == 0)) {
      log::warn("publishing {} event(s) failed ({}{}{}); retrying in {} ms (attempt {})",
                events.size(), kind_name(outcome.kind),
                outcome.http_status ? fmt::format(" HTTP {}", outcome.http_status) : "",
                outcome.detail.empty() ? "" : ": " + outcome.detail, wait.count(), attempt);
    }
    ++metrics_.publish_retries;
    if (!pause(wait)) return give_up(attempt, last_failure);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

void Publisher::published(std::span<const QueuedInvalidation> items, int attempts) {
  metrics_.events_published += items.size();
  metrics_.batches_published += 1;
  int64_t now_us = epoch_us();
  for (const auto& item : items) {
    // From the stamp, taken at receipt (just after the commit, for a live change). A replay
    // re-sends an old stamp: its age says nothing about latency.
    if (!item.invalidation.replay) {
      metrics_.publish_lag.observe(static_cast<double>(now_us - item.invalidation.seq) / 1000.0);
    }
    log::debug("published {} to {} (invalidatedAt {}{})", log::excerpt(item.invalidation.cache_key),
               item.channel, invalidated_at_of(item.invalidation.seq),
               item.invalidation.replay ? ", replay" : "");
  }
  if (app_rejected_.exchange(false)) log::info("Soketi accepts the app's credentials again; publishing resumed");
  if (attempts > 1) log::info("Soketi accepted the batch after {} attempts", attempts);
}

void Publisher::isolate_rejected(SoketiClient& client, std::span<const QueuedInvalidation> items,
                                 std::span<PusherEvent> events, const PublishOutcome& outcome) {
  // Soketi refuses a whole batch for one bad event: halve until the bad one stands alone.
  if (events.size() > 1) {
    size_t half = events.size() / 2;
    publish_events(client, items.first(half), events.first(half));
    publish_events(client, items.subspan(half), events.subspan(half));
    return;
  }
  const Invalidation& inv = items.front().invalidation;
  if (outcome.http_status == 413) {
    // Too large for this Soketi (its limit below SOKETI_EVENT_MAX_SIZE_IN_KB): the key and
    // its stamp matter, the row does not.
    Invalidation bare = inv;
    bare.data_json.clear();
    bare.data_omitted = true;
    if (std::string smaller = encode_event_data(bare, config_.max_event_bytes); smaller != events.front().data) {
      log::warn("Soketi refused the event for \"{}\" as too large (HTTP 413): sent without its row data",
                log::excerpt(inv.cache_key));
      events.front().data = std::move(smaller);
      return publish_events(client, items, events);
    }
  }
  ++metrics_.events_dropped_rejected;
  log::error("Soketi rejected the event for \"{}\" on {} (HTTP {}): dropped: {}", log::excerpt(inv.cache_key),
             items.front().channel, outcome.http_status, outcome.detail);
}

}  // namespace bridge
