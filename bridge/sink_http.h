// HttpSink: invalidations as signed, batched POSTs to an app's endpoint (BRIDGE_HTTP_SINK_URL),
// for receivers that cannot hold a WebSocket, such as a Next.js route handler on Vercel that
// turns each cache key into a tag invalidation (deploy/clients/nextjs).
//
// A request: POST <url> with
//   Content-Type: application/json
//   X-Cache-Bridge-Timestamp: <unix seconds>
//   X-Cache-Bridge-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" with BRIDGE_HTTP_SINK_SECRET>
//   {"invalidations":[{"cacheKey","invalidatedAt","seq","table","action","id"}, ...]}
// (fields other than cacheKey, invalidatedAt and seq only when known; never the row's data).
// Any 2xx accepts the batch. The receiver should refuse a timestamp more than 5 minutes off.
//
// Takes live changes and catch-ups, not replays: a replay re-sends old state for a new
// WebSocket subscriber, which the app revalidated when it happened. Thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "config.h"
#include "metrics.h"
#include "sink.h"

namespace bridge {

// (The body is encode_http_sink_body() in event_encoder.h.)
// Pure: the X-Cache-Bridge-Signature value.
std::string http_sink_signature(std::string_view secret, int64_t unix_seconds, std::string_view body);

class HttpSink : public Sink {
 public:
  // `config` and `metrics` must outlive the sink and its clients.
  // REQUIRES: config.http_sink_url is a valid http(s) URL (parse_config checked it).
  HttpSink(const Config& config, Metrics& metrics);

  std::string_view name() const override { return "HTTP sink"; }
  size_t max_batch() const override { return config_.http_sink_max_batch; }
  bool wants(const QueuedInvalidation& item) const override { return !item.invalidation.replay; }
  bool carries_row_data() const override { return false; }
  std::string_view credentials_name() const override { return "the bridge's requests"; }
  std::string_view rejected_hint() const override {
    return "check BRIDGE_HTTP_SINK_URL and that BRIDGE_HTTP_SINK_SECRET is the receiver's secret";
  }
  std::unique_ptr<SinkClient> connect() const override;
  SinkCounters& counters() override { return metrics_.http_sink; }

  // The URL without its query (which may hold a token): what logs and errors show.
  const std::string& display_url() const { return display_url_; }

 private:
  const Config& config_;
  Metrics& metrics_;
  const ParsedUrl url_;
  std::string display_url_;
};

}  // namespace bridge
