#include "change_clock.h"

#include <algorithm>

namespace bridge {

ChangeClock::ChangeClock(int64_t margin_us, int64_t frozen_at_ms, NowMicros now)
    : margin_us_(margin_us), frozen_at_us_(frozen_at_ms * 1000), now_(std::move(now)) {}

int64_t ChangeClock::next() {
  int64_t reading = (frozen_at_us_ > 0 ? frozen_at_us_ : now_()) + margin_us_;
  std::lock_guard lock(mutex_);
  last_ = std::max(reading, last_ + 1);
  return last_;
}

void ChangeClock::resume_after(int64_t seq) {
  std::lock_guard lock(mutex_);
  last_ = std::max(last_, seq);
}

int64_t ChangeClock::last() const {
  std::lock_guard lock(mutex_);
  return last_;
}

}  // namespace bridge
