// Stamp upkeep: keeps a bridge's stored stamps (cache_bridge_stamp) routed by its current
// BRIDGE_CHANNEL, run by the listener on every connect before it catches up.
//   - The template changed since the stamps were routed: every stamp gets its channel anew
//     (its seq is kept), so replays and snapshots keep finding their keys.
//   - The first start of this bridge name with stamps (an upgrade, or a new name): the keys the
//     catch-up log (cache_invalidation_log) holds within max_age are stamped now (after their commits, so within the contract)
//     and routed, so replays serve what they served before.
// Pages through the keys (1,000 at a time): bounded memory, however many keys there are.
// (The bridges trim the log of what every cursor has passed, so a new name seeds from what is
// left: an upgrade's migrated keys before the first trim, later the recent past.)
#pragma once

#include <chrono>
#include <string>

#include "change_clock.h"
#include "pg_connection.h"
#include "status.h"

namespace bridge {

struct StampUpkeepResult {
  size_t rerouted = 0;
  size_t seeded = 0;
};

// REQUIRES: the cursor row of bridge_name exists (store::load_cursor ran).
Status upkeep_stamps(PGconn* conn, const std::string& bridge_name, const std::string& channel_template,
                     std::chrono::seconds max_age, ChangeClock& clock, StampUpkeepResult* result);

}  // namespace bridge
