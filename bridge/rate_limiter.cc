#include "rate_limiter.h"

#include <algorithm>

namespace bridge {

RateLimiter::RateLimiter(double events_per_second)
    : rate_(events_per_second), tokens_(events_per_second), updated_(Clock::now()) {}

void RateLimiter::refill(Clock::time_point now) {
  if (now > updated_) {
    double elapsed = std::chrono::duration<double>(now - updated_).count();
    tokens_ = std::min(rate_, tokens_ + elapsed * rate_);
    updated_ = now;
  }
}

RateLimiter::Clock::duration RateLimiter::try_take(double events, Clock::time_point now) {
  if (rate_ <= 0) return Clock::duration::zero();
  std::lock_guard lock(mutex_);
  refill(now);
  if (tokens_ >= events) {
    tokens_ -= events;
    return Clock::duration::zero();
  }
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>((events - tokens_) / rate_));
}

RateLimiter::Clock::duration RateLimiter::reserve(double events, Clock::time_point now) {
  if (rate_ <= 0) return Clock::duration::zero();
  std::lock_guard lock(mutex_);
  refill(now);
  tokens_ -= events;
  if (tokens_ >= 0) return Clock::duration::zero();
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / rate_));
}

}  // namespace bridge
