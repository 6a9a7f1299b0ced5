// Metrics: counters and gauges the bridge exports in Prometheus text format.
// Thread-safe: every field is atomic; the per-channel map is fixed at construction.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "recent_invalidations.h"

namespace bridge {

// Commit-to-publish lag in milliseconds, as a Prometheus histogram (of live changes: a
// replay's stamp is old by design).
class LagHistogram {
 public:
  static constexpr std::array<double, 13> kBucketsMs = {1, 2, 5, 10, 25, 50, 100, 250, 500,
                                                        1000, 2500, 5000, 10000};
  void observe(double ms);
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::array<std::atomic<uint64_t>, kBucketsMs.size() + 1> counts_{};  // last: +Inf
  std::atomic<uint64_t> sum_us_{0};
  std::atomic<uint64_t> count_{0};
};

// What the Publisher counts for one sink.
struct SinkCounters {
  std::atomic<uint64_t> delivered{0};         // invalidations the receiver accepted
  std::atomic<uint64_t> requests{0};          // requests the receiver accepted
  std::atomic<uint64_t> errors_timeout{0};    // no answer
  std::atomic<uint64_t> errors_server{0};     // 5xx
  std::atomic<uint64_t> errors_rejected{0};   // 4xx other than 429
  std::atomic<uint64_t> errors_throttled{0};  // 429
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> dropped_rejected{0};  // refused alone: dropped (see the log)
  LagHistogram lag;                           // stamp to acceptance, live changes only
  RecentInvalidations recent;  // the last ones accepted, for the status page (not exported)
};

struct Metrics {
  explicit Metrics(const std::vector<std::string>& pg_channels);

  // By PG channel; std::less<> finds a string_view without building a string.
  std::map<std::string, std::atomic<uint64_t>, std::less<>> notifications_received;
  std::atomic<uint64_t> notifications_invalid{0};
  std::atomic<uint64_t> notifications_held_back{0};  // queue full: published later from the stamps
  SinkCounters soketi;     // the historical cache_bridge_events_published_total, publish_* series
  SinkCounters http_sink;  // cache_bridge_http_sink_*: only with BRIDGE_HTTP_SINK_URL
  bool http_sink_enabled = false;  // set before the first render
  std::atomic<uint64_t> soketi_failovers{0};  // a Soketi client moved to the next address of SOKETI_HOST
  std::atomic<uint64_t> coalesced{0};
  std::atomic<uint64_t> pg_reconnects{0};
  std::atomic<uint64_t> catchup_invalidations{0};
  std::atomic<uint64_t> log_rows_trimmed{0};  // cache_invalidation_log rows every cursor passed
  std::atomic<uint64_t> replay_requests{0};
  std::atomic<uint64_t> replayed_invalidations{0};
  std::atomic<uint64_t> replays_skipped_foreign{0};  // webhooks for channels BRIDGE_CHANNEL cannot produce
  // By reason: a bad or missing signature, a malformed body, a stale time_ms, an oversized body.
  std::atomic<uint64_t> webhooks_rejected_signature{0};
  std::atomic<uint64_t> webhooks_rejected_malformed{0};
  std::atomic<uint64_t> webhooks_rejected_stale{0};
  std::atomic<uint64_t> webhooks_rejected_oversized{0};
  std::atomic<uint64_t> payload_timestamps_clamped{0};  // payload invalidated_at later than receipt
  std::atomic<uint64_t> stamps_written{0};
  std::atomic<uint64_t> snapshots_served{0};
  std::atomic<uint64_t> snapshots_refused{0};  // 400/401/403/429/503
  std::atomic<int64_t> queue_depth{0};
  std::atomic<int64_t> queue_bytes{0};
  std::atomic<int> listen_connected{0};
  std::atomic<double> notify_queue_usage{0};  // pg_notification_queue_usage(), 0..1
  // The WAL source (BRIDGE_SOURCE=wal).
  std::atomic<uint64_t> wal_changes_received{0};  // row changes and messages of attached tables
  std::atomic<uint64_t> wal_changes_skipped{0};   // no key to be had (see the log)
  std::atomic<uint64_t> wal_slots_lost{0};        // slots the server invalidated, made anew
  std::atomic<int64_t> wal_changes_waiting{0};    // received, not yet queued
  std::atomic<int64_t> wal_lag_bytes{0};          // WAL the slot keeps beyond what was confirmed
  std::atomic<double> wal_lag_seconds{0};         // age of the oldest change not yet confirmed
  // The notify source: the stamp (epoch µs) of the oldest change received that the saved
  // cursor has not passed yet, 0 when none; cursor_lag_seconds is its age, set per scrape.
  std::atomic<int64_t> cursor_pending_since_us{0};
  std::atomic<double> cursor_lag_seconds{0};
  std::atomic<int> ready{0};  // what /readyz answers (1: 200), set per scrape
  // Leadership among the bridges of one cursor (or slot): 1 while this one publishes changes.
  std::atomic<int> role_active{0};
  std::atomic<uint64_t> takeovers{0};  // became active after a standby period

  std::string render(const std::string& version) const;
};

}  // namespace bridge
