// Turns a PostgreSQL notification into an Invalidation. Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "invalidation.h"

namespace bridge {

struct MappingResult {
  std::optional<Invalidation> invalidation;  // not yet stamped: seq is 0
  std::string error;  // why the payload was skipped, when invalidation is empty
  // The payload's own `invalidated_at` (epoch ms), when it has one. Never the change's time:
  // a sender's clock reading precedes its commit, and a forged one could shadow later
  // changes. The listener stamps at receipt and only reports a value from the future.
  std::optional<int64_t> claimed_at_ms;
};

// A text payload is the cache key (and the text before its first ':' the table). A JSON object
// payload names the key in `cache_key`, or else by `table` and `id` as "<table>:<id>"; it may
// carry `action`, `data`, `data_omitted` and `invalidated_at` (epoch ms).
MappingResult map_notification(std::string_view payload);

bool is_valid_utf8(std::string_view text);

}  // namespace bridge
