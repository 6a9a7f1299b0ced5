// ChangeStamper: what both change sources do with every change before it is queued: stamp it
// (ChangeClock), route it to its Pusher channel (BRIDGE_CHANNEL), and record the stamp
// (StampWriter) first, so a replay or snapshot that flushes the writer never misses what goes
// out live. Warns once when row data goes to a public channel.
//
// Used by one source thread: not thread-safe itself (the clock and the writer are).
#pragma once

#include <string>

#include "change_clock.h"
#include "invalidation.h"
#include "stamp_writer.h"

namespace bridge {

class ChangeStamper {
 public:
  // `channel_template` must outlive the stamper.
  ChangeStamper(const std::string& channel_template, ChangeClock& clock, StampWriter& stamps)
      : channel_template_(channel_template), clock_(clock), stamps_(stamps) {}

  // Sets invalidation.seq and *channel, and records the stamp. False when the writer is
  // closed (shutting down): the change is then not published either, its source re-sends it.
  bool stamp(Invalidation& invalidation, std::string* channel);

 private:
  const std::string& channel_template_;
  ChangeClock& clock_;
  StampWriter& stamps_;
  bool warned_public_rows_ = false;  // once per process
};

}  // namespace bridge
