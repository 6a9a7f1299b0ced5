// Turns a PostgreSQL notification into an Invalidation. Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "invalidation.h"

namespace bridge {

struct MappingResult {
  std::optional<Invalidation> invalidation;
  std::string error;  // why the payload was skipped, when invalidation is empty
};

// A text payload is the cache key (and the text before its first ':' the table). A JSON object payload names the key in `cache_key`, or
// else by `table` and `id` as "<table>:<id>"; it may carry `action`, `data`, `data_omitted`
// and `invalidated_at` (epoch ms). Without a timestamp, received_at_ms is used.
MappingResult map_notification(std::string_view payload, int64_t received_at_ms);

bool is_valid_utf8(std::string_view text);

}  // namespace bridge
