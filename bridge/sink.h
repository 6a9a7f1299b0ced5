// Sink: a destination the Publisher delivers invalidations to (Soketi; optionally an app's
// HTTP endpoint). A sink states its limits and which invalidations it wants, and opens one
// client per publisher worker; the Publisher owns the rules every sink shares (retries,
// back-off, splitting a rejected batch, the drain deadline, the cursor waiting for all sinks).
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "coalescing_queue.h"

namespace bridge {

class RateLimiter;
struct SinkCounters;

// How one request went.
struct PublishOutcome {
  enum class Kind { kOk, kTimeout, kServerError, kThrottled, kRejected };
  Kind kind = Kind::kOk;
  int http_status = 0;
  std::string detail;  // transport error or the start of the response body
  std::chrono::milliseconds retry_after{0};  // from a 429's Retry-After, when given
  bool retryable() const { return kind == Kind::kTimeout || kind == Kind::kServerError || kind == Kind::kThrottled; }
  // The receiver refuses the sender (credentials, signature, unknown app), not one request:
  // retrying later is all there is to do.
  bool sender_rejected() const { return http_status == 401 || http_status == 403 || http_status == 404; }
};

// One worker's connection to a sink. Not thread-safe: each worker owns its own.
class SinkClient {
 public:
  virtual ~SinkClient() = default;
  // Delivers `items` in one request. REQUIRES: items.size() <= the sink's max_batch(); an
  // empty batch (the HTTP sink only) checks that the receiver accepts the bridge.
  virtual PublishOutcome send(std::span<const QueuedInvalidation> items) = 0;
  // Called while the worker waits for work: a client may open its next connection ahead.
  virtual void prepare() {}
};

// Thread-safe: every member may be called from any worker.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual std::string_view name() const = 0;  // in log lines: "Soketi", "HTTP sink"
  virtual size_t max_batch() const = 0;
  // Whether this sink gets `item` at all (the HTTP sink skips replays, which only new
  // WebSocket subscribers need). An item no sink wants is simply done.
  virtual bool wants(const QueuedInvalidation& item) const = 0;
  // Whether requests carry the row's data (so a 413 is worth a retry without it).
  virtual bool carries_row_data() const = 0;
  // When the receiver refuses the sender (sender_rejected()), the log says "<name> rejected
  // <credentials_name> (HTTP n): <rejected_hint>".
  virtual std::string_view credentials_name() const = 0;
  virtual std::string_view rejected_hint() const = 0;
  virtual std::unique_ptr<SinkClient> connect() const = 0;
  // Paces requests to the receiver's limit; nullptr when it has none.
  virtual RateLimiter* rate_limiter() { return nullptr; }
  virtual SinkCounters& counters() = 0;
};

}  // namespace bridge
