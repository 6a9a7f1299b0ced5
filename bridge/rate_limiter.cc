#include "rate_limiter.h"

#include <algorithm>

namespace bridge {

RateLimiter::RateLimiter(double events_per_second)
    : rate_(events_per_second), tokens_(events_per_second), updated_(Clock::now()) {}

RateLimiter::Clock::duration RateLimiter::reserve(double events, Clock::time_point now) {
  if (rate_ <= 0) return Clock::duration::zero();
  std::lock_guard lock(mutex_);
  if (now > updated_) {
    double elapsed = std::chrono::duration<double>(now - updated_).count();
    tokens_ = std::min(rate_, tokens_ + elapsed * rate_);
    updated_ = now;
  }
  tokens_ -= events;
  if (tokens_ >= 0) return Clock::duration::zero();
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / rate_));
}

}  // namespace bridge
