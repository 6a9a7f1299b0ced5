// Invalidation: one cache key made stale at a point in time, as the bridge publishes it.
#pragma once

#include <cstdint>
#include <string>

namespace bridge {

struct Invalidation {
  std::string cache_key;
  // The change's position in commit order (ChangeClock): per key, larger is newer, and two
  // changes of one key never share a value. 0 until stamped. Its invalidatedAt (epoch ms,
  // later than the change became visible) is invalidated_at_of(seq).
  int64_t seq = 0;
  std::string table;              // empty when unknown
  std::string action;             // insert, update or delete; empty when unknown
  std::string id_json;            // the row id as a JSON value; empty when unknown
  std::string data_json;          // the row as a JSON value; empty when unknown or omitted
  bool data_omitted = false;      // the row was too large to carry
  bool replay = false;            // re-sent state (catch-up for a new subscriber), not a new change
};

// Of two invalidations of the same key, the one a subscriber should end up with: the larger
// seq. A replay merged with a live change is no longer a replay. On equal seq (a replay of
// the very change that is pending) the one with the change's details wins.
inline Invalidation newest_of(Invalidation a, Invalidation b) {
  bool replay = a.replay && b.replay;
  bool take_b = b.seq != a.seq ? b.seq > a.seq : a.action.empty() || !b.action.empty();
  Invalidation out = take_b ? std::move(b) : std::move(a);
  out.replay = replay;
  return out;
}

}  // namespace bridge
