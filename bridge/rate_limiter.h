// RateLimiter: a token bucket that keeps the bridge under Soketi's per-app backend event
// limit (SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC), so replays and bursts slow down
// instead of being answered 429. Thread-safe.
#pragma once

#include <chrono>
#include <mutex>

namespace bridge {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // events_per_second <= 0: unlimited. The bucket holds one second's worth.
  explicit RateLimiter(double events_per_second);

  // How long the caller must wait before sending `events`; the tokens are taken now
  // (the bucket may go into debt, so large batches are not starved).
  Clock::duration reserve(double events, Clock::time_point now = Clock::now());

  // Takes `events` tokens if the bucket holds them and returns zero; otherwise takes
  // nothing and returns how long until it would (refused callers never deepen a debt).
  Clock::duration try_take(double events, Clock::time_point now = Clock::now());

 private:
  void refill(Clock::time_point now);  // REQUIRES: mutex_ held

  const double rate_;
  std::mutex mutex_;
  double tokens_;               // protected by mutex_
  Clock::time_point updated_;  // protected by mutex_
};

}  // namespace bridge
