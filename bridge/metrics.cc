#include "metrics.h"

#include <fmt/format.h>

namespace bridge {

void LagHistogram::observe(double ms) {
  if (ms < 0) ms = 0;
  size_t bucket = 0;
  while (bucket < kBucketsMs.size() && ms > kBucketsMs[bucket]) ++bucket;
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(ms * 1000), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::string LagHistogram::render(const std::string& name, const std::string& help) const {
  std::string out = fmt::format("# HELP {0} {1}\n# TYPE {0} histogram\n", name, help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBucketsMs.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, kBucketsMs[i] / 1000.0, cumulative);
  }
  cumulative += counts_[kBucketsMs.size()].load(std::memory_order_relaxed);
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  out += fmt::format("{}_sum {}\n", name, sum_us_.load(std::memory_order_relaxed) / 1e6);
  out += fmt::format("{}_count {}\n", name, count_.load(std::memory_order_relaxed));
  return out;
}

Metrics::Metrics(const std::vector<std::string>& pg_channels) {
  for (const auto& channel : pg_channels) notifications_received[channel] = 0;
}

std::string Metrics::render(const std::string& version) const {
  std::string out;
  auto counter = [&](const char* name, const char* help, uint64_t value) {
    out += fmt::format("# HELP cache_bridge_{0} {1}\n# TYPE cache_bridge_{0} counter\ncache_bridge_{0} {2}\n",
                       name, help, value);
  };
  // One counter with a label: {label="value"} per pair.
  auto labeled = [&](const char* name, const char* help, const char* label,
                     std::initializer_list<std::pair<const char*, uint64_t>> values) {
    out += fmt::format("# HELP cache_bridge_{0} {1}\n# TYPE cache_bridge_{0} counter\n", name, help);
    for (const auto& [value, count] : values) {
      out += fmt::format("cache_bridge_{}{{{}=\"{}\"}} {}\n", name, label, value, count);
    }
  };
  auto gauge = [&](const char* name, const char* help, int64_t value) {
    out += fmt::format("# HELP cache_bridge_{0} {1}\n# TYPE cache_bridge_{0} gauge\ncache_bridge_{0} {2}\n",
                       name, help, value);
  };
  out += "# HELP cache_bridge_build_info Build version.\n# TYPE cache_bridge_build_info gauge\n";
  out += fmt::format("cache_bridge_build_info{{version=\"{}\"}} 1\n", version);
  out += "# HELP cache_bridge_notifications_received_total PostgreSQL notifications received.\n"
         "# TYPE cache_bridge_notifications_received_total counter\n";
  for (const auto& [channel, count] : notifications_received) {
    out += fmt::format("cache_bridge_notifications_received_total{{pg_channel=\"{}\"}} {}\n",
                       channel, count.load());
  }
  counter("notifications_invalid_total", "Notifications skipped as malformed.", notifications_invalid);
  counter("notifications_held_back_total",
          "Changes held back in the store while the queue was full, published from there later.",
          notifications_held_back);
  // One sink's series; Soketi's keep their historical names.
  struct SinkNames {
    const char *delivered, *delivered_help, *requests, *requests_help, *errors, *errors_help, *retries,
        *retries_help, *dropped, *dropped_help;
  };
  auto sink = [&](const SinkNames& n, const SinkCounters& c) {
    counter(n.delivered, n.delivered_help, c.delivered);
    counter(n.requests, n.requests_help, c.requests);
    labeled(n.errors, n.errors_help, "kind",
            {{"timeout", c.errors_timeout}, {"server", c.errors_server},
             {"rejected", c.errors_rejected}, {"throttled", c.errors_throttled}});
    counter(n.retries, n.retries_help, c.retries);
    labeled(n.dropped, n.dropped_help, "reason", {{"rejected", c.dropped_rejected}});
  };
  sink({"events_published_total", "Events Soketi accepted.", "batches_published_total",
        "HTTP requests Soketi accepted.", "publish_errors_total", "Failed publish requests by kind.",
        "publish_retries_total", "Publish requests retried.", "events_dropped_total",
        "Events dropped, by reason (rejected: Soketi refused the event alone)."},
       soketi);
  counter("soketi_failovers_total",
          "Moves of the bridge's Soketi clients (publishing, startup replay) to the next address of "
          "SOKETI_HOST after no answer or a 5xx.",
          soketi_failovers);
  if (http_sink_enabled) {
    sink({"http_sink_invalidations_total", "Invalidations the HTTP sink accepted.", "http_sink_requests_total",
          "POSTs the HTTP sink accepted.", "http_sink_errors_total", "Failed POSTs to the HTTP sink by kind.",
          "http_sink_retries_total", "POSTs to the HTTP sink retried.", "http_sink_dropped_total",
          "Invalidations dropped, by reason (rejected: the HTTP sink refused the invalidation alone)."},
         http_sink);
  }
  counter("coalesced_total", "Invalidations merged into a pending one for the same key.", coalesced);
  counter("pg_reconnects_total", "Reconnections of the change source (the LISTEN or the replication connection).", pg_reconnects);
  counter("catchup_invalidations_total", "Invalidations read from the store on (re)connect.", catchup_invalidations);
  counter("log_rows_trimmed_total", "Rows of cache_invalidation_log deleted once every cursor passed them.",
          log_rows_trimmed);
  counter("replay_requests_total", "Channels replayed (webhooks and startup).", replay_requests);
  counter("replayed_invalidations_total", "Invalidations replayed to new subscribers.", replayed_invalidations);
  counter("replays_skipped_foreign_total", "Webhook channels BRIDGE_CHANNEL cannot produce: not replayed, no query.",
          replays_skipped_foreign);
  labeled("webhooks_rejected_total", "Webhook requests rejected, by reason.", "reason",
          {{"signature", webhooks_rejected_signature}, {"malformed", webhooks_rejected_malformed},
           {"stale", webhooks_rejected_stale}, {"oversized", webhooks_rejected_oversized}});
  counter("payload_timestamps_clamped_total",
          "Notifications whose payload invalidated_at was later than their receipt (stamped at receipt).",
          payload_timestamps_clamped);
  counter("stamps_written_total", "Stamps written to cache_bridge_stamp.", stamps_written);
  counter("snapshots_served_total", "GET /snapshot requests answered 200.", snapshots_served);
  counter("snapshots_refused_total", "GET /snapshot requests refused (bad request, auth, rate, store).",
          snapshots_refused);
  gauge("queue_depth", "Distinct keys waiting to be published.", queue_depth);
  gauge("queue_bytes", "Footprint of what waits or is in flight (at most BRIDGE_QUEUE_MAX_BYTES, about).", queue_bytes);
  gauge("pg_listen_connected", "1 while the LISTEN connection is up.", listen_connected);
  out += fmt::format("# HELP cache_bridge_pg_notification_queue_usage PostgreSQL's notification queue, "
                     "fraction used (COMMITs that NOTIFY fail at 1).\n"
                     "# TYPE cache_bridge_pg_notification_queue_usage gauge\n"
                     "cache_bridge_pg_notification_queue_usage {}\n",
                     notify_queue_usage.load());
  counter("wal_changes_received_total", "Row changes and messages of attached tables read from the WAL.",
          wal_changes_received);
  counter("wal_changes_skipped_total", "WAL changes without a key to publish (see the log).", wal_changes_skipped);
  counter("wal_slots_lost_total", "Replication slots the server invalidated (made anew, tables invalidated whole).",
          wal_slots_lost);
  gauge("wal_changes_waiting", "Changes read from the WAL, not yet queued.", wal_changes_waiting);
  gauge("wal_slot_lag_bytes", "WAL the replication slot retains beyond the confirmed position.", wal_lag_bytes);
  out += fmt::format("# HELP cache_bridge_wal_slot_lag_seconds Age of the oldest change read from the WAL "
                     "and not yet confirmed.\n# TYPE cache_bridge_wal_slot_lag_seconds gauge\n"
                     "cache_bridge_wal_slot_lag_seconds {}\n",
                     wal_lag_seconds.load());
  out += fmt::format("# HELP cache_bridge_cursor_lag_seconds Age of the oldest change received and not yet "
                     "passed by the saved cursor (notify source; 0 when caught up).\n"
                     "# TYPE cache_bridge_cursor_lag_seconds gauge\n"
                     "cache_bridge_cursor_lag_seconds {}\n",
                     cursor_lag_seconds.load());
  gauge("ready", "1 while GET /readyz answers 200 (the change source and Soketi ready).", ready);
  out += fmt::format("# HELP cache_bridge_role This bridge's role among the bridges of its cursor (wal: its "
                     "slot): active publishes changes, a standby waits (and serves webhooks and snapshots).\n"
                     "# TYPE cache_bridge_role gauge\n"
                     "cache_bridge_role{{role=\"active\"}} {}\ncache_bridge_role{{role=\"standby\"}} {}\n",
                     role_active.load(), 1 - role_active.load());
  counter("takeovers_total", "Times this bridge became active after waiting as a standby.", takeovers);
  out += soketi.lag.render("cache_bridge_commit_to_publish_seconds",
                           "From a change's stamp (its receipt, after the commit) to Soketi accepting it; "
                           "live changes only, not replays.");
  if (http_sink_enabled) {
    out += http_sink.lag.render("cache_bridge_http_sink_commit_to_accept_seconds",
                                "From a change's stamp (its receipt, after the commit) to the HTTP sink "
                                "accepting it.");
  }
  return out;
}

}  // namespace bridge
