#include <pthread.h>

#include "replayer.h"

#include "change_clock.h"
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
    : config_(config), queue_(queue), stamps_(stamps), metrics_(metrics) {}

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
  std::lock_guard lock(mutex_);
  if (requested_.count(channel)) return true;
  if (requests_.size() >= kMaxQueuedRequests) return false;
  requests_.push_back(channel);
  requested_.insert(channel);
  wake_.notify_one();
  return true;
}

void Replayer::run() {
  // Soketi may not be up yet: keep asking for its occupied channels every few seconds, while
  // serving webhook requests in between.
  bool listed = false;
  auto next_listing = std::chrono::steady_clock::now();
  int listing_attempts = 0;
  while (true) {
    if (!listed && std::chrono::steady_clock::now() >= next_listing) {
      listed = replay_occupied_channels(++listing_attempts);
      next_listing = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    std::string channel;
    {
      std::unique_lock lock(mutex_);
      auto has_work = [&] { return stopping_ || !requests_.empty(); };
      if (listed) {
        wake_.wait(lock, has_work);
      } else if (!wake_.wait_until(lock, next_listing, has_work)) {
        continue;
      }
      if (stopping_) return;
      channel = std::move(requests_.front());
      requests_.pop_front();
      requested_.erase(channel);
    }
    if (auto s = replay(channel); !s) {
      // Soketi will not send this webhook again: keep the request until PostgreSQL answers.
      log::warn("replay to {} failed, retrying in 2 s: {}", channel, s.message());
      conn_.reset();
      std::unique_lock lock(mutex_);
      if (wake_.wait_for(lock, std::chrono::seconds(2), [&] { return stopping_; })) return;
      lock.unlock();
      request(channel);
    }
  }
}

bool Replayer::replay_occupied_channels(int attempt) {
  SoketiClient client(config_);
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
