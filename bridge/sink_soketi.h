// SoketiSink: invalidations as Pusher events (BRIDGE_EVENT on each one's channel), through
// Soketi's HTTP API in /batch_events requests of up to SOKETI_EVENT_MAX_BATCH_SIZE, paced
// under SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC when that is set. Takes everything,
// replays included (they are for Soketi's new subscribers). Thread-safe.
#pragma once

#include "config.h"
#include "metrics.h"
#include "rate_limiter.h"
#include "sink.h"

namespace bridge {

class SoketiSink : public Sink {
 public:
  // `config` and `metrics` must outlive the sink and its clients.
  SoketiSink(const Config& config, Metrics& metrics);

  std::string_view name() const override { return "Soketi"; }
  size_t max_batch() const override { return config_.max_batch_size; }
  bool wants(const QueuedInvalidation&) const override { return true; }
  bool carries_row_data() const override { return true; }
  std::string_view credentials_name() const override { return "the app's credentials"; }
  std::string_view rejected_hint() const override {
    return "check SOKETI_APP_ID, SOKETI_APP_KEY and SOKETI_APP_SECRET";
  }
  std::unique_ptr<SinkClient> connect() const override;
  RateLimiter* rate_limiter() override { return &rate_limiter_; }
  SinkCounters& counters() override { return metrics_.soketi; }

 private:
  const Config& config_;
  Metrics& metrics_;
  RateLimiter rate_limiter_;
};

}  // namespace bridge
