#include <pthread.h>

#include "replayer.h"

#include "change_clock.h"
#include "channel_name.h"
#include "invalidation_store.h"
#include "log.h"
#include "soketi_client.h"

namespace bridge {
namespace {
constexpr size_t kMaxQueuedRequests = 10000;
// Stamps normally reach the store within milliseconds; past this the replay goes ahead with
// what is there (PostgreSQL is then most likely down, and the replay retries anyway).
constexpr std::chrono::milliseconds kFlushWait{2000};
}

Replayer::Replayer(const Config& config, CoalescingQueue& queue, StampWriter& stamps,
                   Metrics& metrics)
    : config_(config),
      queue_(queue),
      stamps_(stamps),
      metrics_(metrics),
      rate_(config.replay_max_per_second) {}

Replayer::~Replayer() { stop(); }

void Replayer::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "replayer");
    run();
  });
}

void Replayer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Replayer::request(const std::string& channel) {
  // A channel this bridge never publishes to has nothing to replay: no query for it.
  if (!could_be_expanded_from(config_.channel_template, channel)) {
    ++metrics_.replays_skipped_foreign;
    return true;
  }
  std::lock_guard lock(mutex_);
  if (requested_.count(channel)) return true;
  if (requested_.size() >= kMaxQueuedRequests) return false;
  requests_.push_back(channel);
  requested_.insert(channel);
  wake_.notify_one();
  return true;
}

void Replayer::run() {
  // Soketi may not be up yet: keep asking for its occupied channels every few seconds, while
  // serving webhook requests in between.
  bool listed = false;
  auto next_listing = Clock::now();
  int listing_attempts = 0;
  while (true) {
    if (!listed && Clock::now() >= next_listing) {
      listed = replay_occupied_channels(++listing_attempts);
      next_listing = Clock::now() + std::chrono::seconds(5);
    }
    auto channel = next_due(listed ? Clock::time_point::max() : next_listing);
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    if (!channel) continue;

    auto now = Clock::now();
    std::erase_if(replayed_at_, [&](const auto& entry) { return now - entry.second >= kCooldown; });
    if (auto it = replayed_at_.find(*channel); it != replayed_at_.end()) {
      std::lock_guard lock(mutex_);
      requested_.insert(*channel);
      cooling_.emplace(it->second + kCooldown, *channel);
      continue;
    }
    if (auto wait = rate_.reserve(1); wait.count() > 0 && wait_for_stop(wait)) return;
    replayed_at_[*channel] = Clock::now();
    if (auto s = replay(*channel); !s) {
      // Soketi will not send this webhook again: keep the request until PostgreSQL answers.
      log::warn("replay to {} failed, retrying in 2 s: {}", *channel, s.message());
      conn_.reset();
      if (wait_for_stop(std::chrono::seconds(2))) return;
      replayed_at_.erase(*channel);
      request(*channel);
    }
  }
}

std::optional<std::string> Replayer::next_due(Clock::time_point wake_by) {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto now = Clock::now();
    while (!cooling_.empty() && cooling_.begin()->first <= now) {
      requests_.push_back(std::move(cooling_.begin()->second));
      cooling_.erase(cooling_.begin());
    }
    if (!requests_.empty()) {
      std::string channel = std::move(requests_.front());
      requests_.pop_front();
      requested_.erase(channel);
      return channel;
    }
    if (now >= wake_by) return std::nullopt;
    auto until = wake_by;
    if (!cooling_.empty()) until = std::min(until, cooling_.begin()->first);
    if (until == Clock::time_point::max()) {
      wake_.wait(lock);
    } else {
      wake_.wait_until(lock, until);
    }
  }
  return std::nullopt;
}

bool Replayer::wait_for_stop(Clock::duration duration) {
  std::unique_lock lock(mutex_);
  return wake_.wait_for(lock, duration, [&] { return stopping_; });
}

bool Replayer::replay_occupied_channels(int attempt) {
  SoketiClient client(config_, &metrics_);
  std::vector<std::string> channels;
  if (Status s = client.occupied_channels(&channels); !s) {
    if (attempt == 1 || attempt % 12 == 0) {
      log::warn("startup replay: cannot list Soketi's occupied channels ({}); retrying every 5 s",
                s.message());
    }
    return false;
  }
  if (!channels.empty()) log::info("startup replay: {} occupied channel(s)", channels.size());
  for (const auto& channel : channels) request(channel);
  return true;
}

Status Replayer::replay(const std::string& channel) {
  if (!conn_) {
    if (auto s = pg_connect(config_.database_url, &conn_); !s) return s;
  }
  ++metrics_.replay_requests;
  if (!stamps_.flush(kFlushWait)) log::warn("replay to {}: stamps still being written", channel);
  size_t count = 0;
  auto s = store::read_channel_stamps(conn_.get(), config_.cursor_name, channel,
                                      oldest_seq_within(config_.replay_max_age),
                                      config_.replay_max_keys, [&](Invalidation inv) {
                                        inv.replay = true;
                                        ++count;
                                        queue_.push(channel, std::move(inv));
                                      });
  if (!s) return s;
  metrics_.replayed_invalidations += count;
  log::info("replay to {}: {} key(s)", channel, count);
  return Status::ok();
}

}  // namespace bridge
