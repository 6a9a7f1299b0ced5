// QueueClock: the time a CoalescingQueue reads and waits by, injected so that tests move it by
// hand instead of sleeping (leveldb's Env, reduced to the clock).
//
// The clock owns the waiting as well as the reading: a test clock must end a wait when its
// time is advanced, which a condition variable waiting on real time would not notice.
//
// Thread-safe: both member functions may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace bridge {

class QueueClock {
 public:
  // Time points are steady_clock's type, whatever the clock: a test clock's values are its
  // own, so a deadline for a queue is computed from that queue's clock.
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  QueueClock() = default;
  QueueClock(const QueueClock&) = delete;
  QueueClock& operator=(const QueueClock&) = delete;
  virtual ~QueueClock() = default;

  virtual time_point now() const = 0;

  // Blocks with `lock` released until `cv` is notified or `until` has passed on this clock,
  // or spuriously, and returns with `lock` held again: callers wait in a loop that re-checks
  // their condition (and now()).
  // REQUIRES: `lock` holds the mutex that guards the state `cv`'s waiters wait on, so that a
  // clock which ends waits itself can lock it before notifying and no wake-up is lost.
  virtual void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          time_point until) = 0;

  // The process's steady clock and real waits. Never destroyed, so threads still running
  // at exit can use it.
  static QueueClock& steady();
};

class SteadyQueueClock final : public QueueClock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  time_point until) override {
    cv.wait_until(lock, until);
  }
};

inline QueueClock& QueueClock::steady() {
  static QueueClock* const clock = new SteadyQueueClock();
  return *clock;
}

}  // namespace bridge
