// Encodes invalidations as Pusher events and /batch_events bodies. Pure: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "invalidation.h"

namespace bridge {

struct PusherEvent {
  std::string channel;
  std::string name;
  std::string data;  // the JSON text Pusher delivers as the event's data
};

// Expands {table} and {key} in a channel template. Characters Pusher does not allow in
// channel names (anything but A-Z a-z 0-9 _ - = @ , . ;) become '-'; the store's replay
// query applies the same rule (see InvalidationStore).
std::string expand_channel(std::string_view channel_template, std::string_view table,
                           std::string_view cache_key);

// {"cacheKey","invalidatedAt","table","action","id","data","replay"}: fields only when known.
// The row data is left out (with "dataOmitted": true) when the event would exceed max_bytes.
std::string encode_event_data(const Invalidation& inv, size_t max_bytes);

// {"batch":[{"channel","name","data"},...]}
std::string encode_batch_body(const std::vector<PusherEvent>& events);

}  // namespace bridge
