// Turns a PostgreSQL notification into an Invalidation. Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "invalidation.h"

namespace bridge {

struct MappingResult {
  // What the payload invalidates, in payload order; not yet stamped: seq is 0. Empty when the
  // payload was refused; several for an `ids` payload.
  std::vector<Invalidation> invalidations;
  // Why the payload was refused (invalidations empty), or why some of its ids were skipped
  // (invalidations not empty); empty when everything was taken.
  std::string error;
  // The payload's own `invalidated_at` (epoch ms), when it has one. Never the change's time:
  // a sender's clock reading precedes its commit, and a forged one could shadow later
  // changes. The listener stamps at receipt and only reports a value from the future.
  std::optional<int64_t> claimed_at_ms;
};

// A text payload is the cache key (and the text before its first ':' the table). A JSON object
// payload names the key in `cache_key`, or else by `table` and `id` as "<table>:<id>"; it may
// carry `action` (insert, update, delete or truncate), `data`, `data_omitted` and
// `invalidated_at` (epoch ms).
// The statement-level triggers send many keys at once: {"table","action","ids":[...]}, `ids` a
// non-empty array of strings and numbers (bounded by NOTIFY's 8000 bytes), and no `id`,
// `cache_key` or `data`. Each id is one invalidation keyed "<table>:<id text>" (a string's
// contents, a number's text exactly as written, so "1.50" stays 1.50 as in the store's key),
// with id_json the id's JSON text. A malformed payload or id refuses the whole payload; an id
// that makes no valid cache key (too long, control characters) is skipped alone, named in
// `error`, and the other ids go out.
MappingResult map_notification(std::string_view payload);

bool is_valid_utf8(std::string_view text);

}  // namespace bridge
