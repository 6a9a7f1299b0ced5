// ReconnectBackoff: how long a change source waits before it reconnects to PostgreSQL:
// 0.5 s, doubling to 30 s, each wait up to half again longer at random (bridges restarted
// together do not reconnect in step); back to 0.5 s once a connection worked.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

namespace bridge {

class ReconnectBackoff {
 public:
  void reset() { base_ = kFirst; }

  // The wait before the next attempt (the one after doubles).
  std::chrono::milliseconds next() {
    auto wait = base_ + std::chrono::milliseconds(jitter_() % (base_.count() / 2 + 1));
    base_ = std::min(base_ * 2, kLast);
    return wait;
  }

  // Sleeps `wait`, looking at `stop` every 100 ms.
  static void sleep(std::chrono::milliseconds wait, const std::atomic<bool>& stop) {
    for (auto until = std::chrono::steady_clock::now() + wait; !stop && std::chrono::steady_clock::now() < until;) {
      std::this_thread::sleep_for(std::min(std::chrono::milliseconds{100}, wait));
    }
  }

 private:
  static constexpr std::chrono::milliseconds kFirst{500};
  static constexpr std::chrono::milliseconds kLast{30000};
  std::chrono::milliseconds base_ = kFirst;
  std::minstd_rand jitter_{std::random_device{}()};
};

}  // namespace bridge
