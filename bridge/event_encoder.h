// Encodes invalidations as Pusher events and /batch_events bodies. Pure: no I/O.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coalescing_queue.h"
#include "invalidation.h"

namespace bridge {

struct PusherEvent {
  std::string channel;
  std::string name;
  std::string data;  // the JSON text Pusher delivers as the event's data
};

// {"cacheKey","invalidatedAt","seq","table","action","id","data","replay"}: fields only when known.
// The row data is left out (with "dataOmitted": true) when the event would exceed max_bytes.
std::string encode_event_data(const Invalidation& inv, size_t max_bytes);

// {"batch":[{"channel","name","data"},...]}
std::string encode_batch_body(std::span<const PusherEvent> events);

// The HTTP sink's body (sink_http.h): {"invalidations":[{"cacheKey","invalidatedAt","seq",
// "table","action","id"},...]}, fields only when known, never the row's data.
std::string encode_http_sink_body(std::span<const QueuedInvalidation> items);

// GET /snapshot's body: {"channel","invalidations":[{"cacheKey","invalidatedAt","seq","table"},..],
// "truncated"}, the entries as given (oldest first).
std::string encode_snapshot(std::string_view channel, const std::vector<Invalidation>& invalidations,
                            bool truncated);

}  // namespace bridge
