#include <doctest/doctest.h>

#include "rate_limiter.h"

using namespace bridge;
using namespace std::chrono_literals;

TEST_CASE("unlimited never waits") {
  RateLimiter limiter(-1);
  CHECK(limiter.reserve(1e9) == RateLimiter::Clock::duration::zero());
}

TEST_CASE("a full bucket allows one second's worth, then paces to the rate") {
  RateLimiter limiter(100);
  auto t0 = RateLimiter::Clock::now();
  CHECK(limiter.reserve(100, t0) == RateLimiter::Clock::duration::zero());
  auto wait = limiter.reserve(10, t0);  // 10 events in debt at 100/s
  CHECK(wait >= 99ms);
  CHECK(wait <= 101ms);
  // Half a second later 50 tokens came back: the debt of 10 is paid, 40 remain.
  CHECK(limiter.reserve(40, t0 + 500ms) == RateLimiter::Clock::duration::zero());
  CHECK(limiter.reserve(1, t0 + 500ms) > 0ms);
}

TEST_CASE("try_take refuses without going into debt") {
  RateLimiter limiter(10);
  auto t0 = RateLimiter::Clock::now();
  CHECK(limiter.try_take(10, t0) == RateLimiter::Clock::duration::zero());
  auto wait = limiter.try_take(1, t0);
  CHECK(wait >= 99ms);
  CHECK(wait <= 101ms);
  // A storm of refused requests costs nothing: 100 ms later one token is there.
  for (int i = 0; i < 1000; ++i) CHECK(limiter.try_take(1, t0) > 0ms);
  CHECK(limiter.try_take(1, t0 + 100ms) == RateLimiter::Clock::duration::zero());
}
