#include "coalescing_queue.h"

namespace bridge {

std::string queue_key(const std::string& channel, const std::string& cache_key) {
  std::string key;
  key.reserve(channel.size() + 1 + cache_key.size());
  key += channel;
  key.push_back('\0');
  key += cache_key;
  return key;
}

size_t footprint(const std::string& queue_key, const Invalidation& invalidation) {
  // The key is held by the map, the ready list and the expiry list; the fixed part covers
  // their nodes, the Invalidation and the publisher's copy in flight (measured: about 600 B
  // per entry of small strings, before the allocator's own overhead).
  constexpr size_t kFixed = 640;
  return kFixed + 3 * queue_key.size() + invalidation.cache_key.size() + invalidation.table.size() +
         invalidation.action.size() + invalidation.id_json.size() + invalidation.data_json.size();
}

CoalescingQueue::CoalescingQueue(std::chrono::milliseconds window, size_t max_keys, size_t max_bytes,
                                 QueueClock& clock)
    : window_(window), max_keys_(max_keys), max_bytes_(max_bytes), clock_(clock) {}

bool CoalescingQueue::has_room(const std::string& key) const {
  // Only entries that carry an invalidation count: a quiet key remembered for its window
  // holds no payload, and counting it would cap throughput at max_keys per window. An empty
  // queue takes any entry, however large.
  if (closed_ || pending_ + in_flight_ == 0) return true;
  if (pending_ + in_flight_ < max_keys_ && bytes_ < max_bytes_) return true;
  auto it = keys_.find(key);
  return it != keys_.end() && it->second.pending != nullptr;  // merges
}

bool CoalescingQueue::push(const std::string& channel, Invalidation invalidation) {
  std::string key = queue_key(channel, invalidation.cache_key);

  std::unique_lock lock(mutex_);
  while (!has_room(key)) {
    forget_expired(clock_.now());
    if (has_room(key)) break;
    // Room can come unsignalled (another push makes this key pending, so this one merges):
    // look again every 50 ms.
    clock_.wait_until(room_, lock, clock_.now() + std::chrono::milliseconds(50));
  }
  if (closed_) return false;
  insert(std::move(key), std::move(invalidation));
  return true;
}

bool CoalescingQueue::try_push(const std::string& channel, Invalidation& invalidation) {
  std::string key = queue_key(channel, invalidation.cache_key);
  std::lock_guard lock(mutex_);
  if (!has_room(key)) {
    forget_expired(clock_.now());
    if (!has_room(key)) return false;
  }
  if (closed_) return false;
  insert(std::move(key), std::move(invalidation));
  return true;
}

void CoalescingQueue::insert(std::string key, Invalidation invalidation) {
  uint64_t sequence = next_sequence_++;
  KeyState& state = keys_[key];
  if (state.pending) {
    *state.pending = newest_of(std::move(*state.pending), std::move(invalidation));
    size_t bytes = footprint(key, *state.pending);
    bytes_ = bytes_ - state.pending_bytes + bytes;
    state.pending_bytes = bytes;
    ++coalesced_;
    return;  // already ready or waiting for its window
  }
  state.pending = std::make_unique<Invalidation>(std::move(invalidation));
  state.pending_bytes = footprint(key, *state.pending);
  bytes_ += state.pending_bytes;
  state.pending_sequence = sequence;
  unpublished_.insert(sequence);
  ++pending_;
  if (clock_.now() < state.window_end) {
    trailing_.emplace(state.window_end, key);
    ready_or_timer_.notify_one();  // a waiting take() may need an earlier wake-up
  } else if (state.in_flight == 0) {
    make_ready(key, state);
  }  // else done() makes it ready: one publish per key at a time
}

void CoalescingQueue::make_ready(const std::string& key, KeyState& state) {
  // While an earlier publish of this key is in flight (perhaps retrying), the newer entry
  // waits: sent side by side, a retried older event could land after it.
  if (state.ready || state.in_flight > 0) return;
  state.ready = true;
  if (ready_.empty()) ready_since_ = clock_.now();
  ready_.push_back(key);
  ready_or_timer_.notify_one();
}

void CoalescingQueue::fire_due_timers(Clock::time_point now) {
  while (!trailing_.empty() && trailing_.top().first <= now) {
    auto [due, key] = trailing_.top();
    trailing_.pop();
    auto it = keys_.find(key);
    if (it == keys_.end() || it->second.window_end != due || !it->second.pending) continue;
    make_ready(key, it->second);
  }
  forget_expired(now);
}

void CoalescingQueue::forget_expired(Clock::time_point now) {
  while (!expiries_.empty() && expiries_.front().first <= now) {
    forget_if_quiet(expiries_.front().second, now);
    expiries_.pop_front();
  }
}

void CoalescingQueue::forget_if_quiet(const std::string& key, Clock::time_point now) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  const KeyState& state = it->second;
  if (!state.pending && state.in_flight == 0 && state.window_end <= now) {
    keys_.erase(it);
    room_.notify_one();
  }
}

std::vector<QueuedInvalidation> CoalescingQueue::take(size_t max_items, Clock::time_point deadline,
                                                       Clock::duration linger) {
  std::vector<QueuedInvalidation> taken;
  std::unique_lock lock(mutex_);
  while (true) {
    auto now = clock_.now();
    fire_due_timers(now);
    if (!ready_.empty()) {
      auto full_at = ready_since_ + linger;
      if (ready_.size() >= max_items || closed_ || now >= full_at) break;
      clock_.wait_until(ready_or_timer_, lock, full_at);
      continue;
    }
    if (closed_ || now >= deadline) return taken;
    auto wake = deadline;
    if (!trailing_.empty() && trailing_.top().first < wake) wake = trailing_.top().first;
    clock_.wait_until(ready_or_timer_, lock, wake);
  }

  auto now = clock_.now();
  while (!ready_.empty() && taken.size() < max_items) {
    std::string key = std::move(ready_.front());
    ready_.pop_front();
    KeyState& state = keys_.at(key);
    state.ready = false;
    taken.push_back({key.substr(0, key.find('\0')), std::move(*state.pending), state.pending_sequence, false,
                     state.pending_bytes});
    state.pending.reset();
    state.pending_bytes = 0;  // charged to the taken entry now
    --pending_;
    ++in_flight_;
    ++state.in_flight;
    if (window_.count() > 0) {
      state.window_end = now + window_;
      expiries_.emplace_back(state.window_end, key);
    } else {
      state.window_end = now;
    }
  }
  if (!ready_.empty()) ready_or_timer_.notify_one();  // let another publisher take the rest
  return taken;
}

void CoalescingQueue::release_key(const QueuedInvalidation& item, Clock::time_point now) {
  std::string key = queue_key(item.channel, item.invalidation.cache_key);
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  KeyState& state = it->second;
  --state.in_flight;
  if (state.pending && state.in_flight == 0) {
    // It waited for this publish; its window may still be open.
    if (closed_ || now >= state.window_end) {
      make_ready(key, state);
    } else {
      trailing_.emplace(state.window_end, key);
      ready_or_timer_.notify_one();
    }
  }
  forget_if_quiet(key, now);
}

void CoalescingQueue::release(std::vector<QueuedInvalidation>& items) {
  std::lock_guard lock(mutex_);
  auto now = clock_.now();
  for (auto& item : items) {
    if (item.key_released) continue;
    release_key(item, now);
    item.key_released = true;
  }
}

void CoalescingQueue::done(const std::vector<QueuedInvalidation>& items) {
  std::lock_guard lock(mutex_);
  auto now = clock_.now();
  room_.notify_all();
  for (const auto& item : items) {
    unpublished_.erase(unpublished_.find(item.sequence));
    --in_flight_;
    bytes_ -= item.charged_bytes;
    if (!item.key_released) release_key(item, now);
  }
}

uint64_t CoalescingQueue::next_sequence() const {
  std::lock_guard lock(mutex_);
  return next_sequence_;
}

uint64_t CoalescingQueue::low_watermark() const {
  std::lock_guard lock(mutex_);
  return unpublished_.empty() ? next_sequence_ : *unpublished_.begin();
}

size_t CoalescingQueue::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

size_t CoalescingQueue::pending_keys() const {
  std::lock_guard lock(mutex_);
  return pending_;
}

uint64_t CoalescingQueue::coalesced_count() const {
  std::lock_guard lock(mutex_);
  return coalesced_;
}

bool CoalescingQueue::idle() const {
  std::lock_guard lock(mutex_);
  return pending_ == 0 && in_flight_ == 0;
}

bool CoalescingQueue::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

void CoalescingQueue::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  // Shutting down: what waits for its window goes out now rather than never.
  for (auto& [key, state] : keys_) {
    if (state.pending) make_ready(key, state);
  }
  ready_or_timer_.notify_all();
  room_.notify_all();
}

}  // namespace bridge
