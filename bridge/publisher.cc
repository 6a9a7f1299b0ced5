#include <pthread.h>

#include "publisher.h"

#include <algorithm>
#include <random>

#include "clock.h"
#include "log.h"

namespace bridge {
namespace {

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
  stopping_ = true;
  queue_.close();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void Publisher::start() {
  for (int i = 0; i < config_.publish_concurrency; ++i) {
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "publisher");
      run();
    });
  }
}

void Publisher::drain_and_stop(std::chrono::milliseconds grace) {
  give_up_at_ms_ = steady_ms() + grace.count();
  queue_.close();  // workers exit once nothing is ready
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
}

void Publisher::run() {
  SoketiClient client(config_);
  while (true) {
    auto items = queue_.take(config_.max_batch_size,
                             CoalescingQueue::Clock::now() + std::chrono::seconds(1),
                             config_.publish_linger);
    if (items.empty()) {
      if (stopping_ || give_up_at_ms_ != 0) return;  // closed and drained
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

  static thread_local std::minstd_rand jitter(std::random_device{}());
  std::chrono::milliseconds backoff{100};
  for (int attempt = 1;; ++attempt) {
    if (auto wait = rate_limiter_.reserve(static_cast<double>(events.size())); wait.count() > 0) {
      std::this_thread::sleep_for(wait);
    }
    PublishOutcome outcome = client.publish(events);
    if (outcome.kind == PublishOutcome::Kind::kOk) {
      metrics_.events_published += events.size();
      metrics_.batches_published += 1;
      int64_t now_us = epoch_us();
      for (const auto& item : items) {
        // From the stamp, taken at receipt (just after the commit, for a live change).
        metrics_.publish_lag.observe(static_cast<double>(now_us - item.invalidation.seq) / 1000.0);
        log::debug("published {} to {} (invalidatedAt {}{})", log::excerpt(item.invalidation.cache_key),
                   item.channel, item.invalidation.invalidated_at_ms,
                   item.invalidation.replay ? ", replay" : "");
      }
      if (attempt > 1) log::info("Soketi accepted the batch after {} attempts", attempt);
      return;
    }

    switch (outcome.kind) {
      case PublishOutcome::Kind::kTimeout: ++metrics_.publish_errors_timeout; break;
      case PublishOutcome::Kind::kServerError: ++metrics_.publish_errors_server; break;
      case PublishOutcome::Kind::kThrottled: ++metrics_.publish_errors_throttled; break;
      default: ++metrics_.publish_errors_rejected; break;
    }
    if (!outcome.retryable()) {
      if (outcome.http_status == 401 || outcome.http_status == 403 || outcome.http_status == 404) {
        log::error("Soketi rejected the credentials ({}): check SOKETI_APP_ID, SOKETI_APP_KEY and "
                   "SOKETI_APP_SECRET; dropped {} event(s): {}",
                   outcome.http_status, events.size(), outcome.detail);
      } else {
        log::error("Soketi rejected a batch of {} event(s) with HTTP {}; dropped: {}", events.size(),
                   outcome.http_status, outcome.detail);
      }
      return;
    }
    if (give_up_at_ms_ != 0 && steady_ms() >= give_up_at_ms_) {
      log::error("shutting down: gave up on {} event(s) after {} attempts ({})", events.size(),
                 attempt, outcome.detail);
      return;
    }
    auto wait = std::max(backoff, outcome.retry_after);
    wait += std::chrono::milliseconds(jitter() % (backoff.count() / 2 + 1));
    if (attempt == 1 || attempt % 10 == 0) {
      log::warn("publishing {} event(s) failed ({}{}{}); retrying in {} ms (attempt {})",
                events.size(), kind_name(outcome.kind),
                outcome.http_status ? fmt::format(" HTTP {}", outcome.http_status) : "",
                outcome.detail.empty() ? "" : ": " + outcome.detail, wait.count(), attempt);
    }
    ++metrics_.publish_retries;
    std::this_thread::sleep_for(wait);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace bridge
