// ChangeClock: stamps each change the bridge receives with its place in commit order (seq)
// and the time subscribers compare their cached copies against (invalidatedAt).
//
// The timestamp contract: PostgreSQL delivers a notification only after its transaction
// committed, and delivers notifications in commit order. So a stamp taken at receipt is
// later than the moment the change became visible to other transactions, and stamps taken
// in receipt order follow commit order. seq is that receipt time in epoch microseconds (plus
// an optional margin for clock offset), bumped by 1 where needed so it strictly increases;
// invalidatedAt is the first whole millisecond after it. Two changes within one millisecond
// share invalidatedAt but never seq.
//
// Thread-safe. The clock is injected so tests can freeze it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

#include "clock.h"

namespace bridge {

// invalidatedAt (epoch ms) of a seq: the first millisecond after it.
inline int64_t invalidated_at_of(int64_t seq) { return seq / 1000 + 1; }

// The smallest seq a change stamped within the last `age` can have (for retention queries).
inline int64_t oldest_seq_within(std::chrono::seconds age) {
  return epoch_us() - std::chrono::duration_cast<std::chrono::microseconds>(age).count();
}

class ChangeClock {
 public:
  using NowMicros = std::function<int64_t()>;  // epoch microseconds

  // margin_us is added to every reading (tolerates a bridge clock that far behind the
  // database's and the readers'). frozen_at_ms > 0 replaces the clock with that constant
  // (tests force equal invalidatedAt with it).
  ChangeClock(int64_t margin_us, int64_t frozen_at_ms, NowMicros now = epoch_us);
  ChangeClock(const ChangeClock&) = delete;
  ChangeClock& operator=(const ChangeClock&) = delete;

  // A seq larger than every one handed out before (and than every one passed to resume_after).
  int64_t next();

  // Continues after a seq persisted by an earlier run (or another bridge of the same name).
  void resume_after(int64_t seq);

  // The newest seq handed out (0 before the first).
  int64_t last() const;

 private:
  const int64_t margin_us_;
  const int64_t frozen_at_us_;
  const NowMicros now_;
  mutable std::mutex mutex_;
  int64_t last_ = 0;  // protected by mutex_
};

}  // namespace bridge
