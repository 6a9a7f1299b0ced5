// StatusPage: the operators' one-look page, GET /status and GET /status.json on the ops
// server. Pure: the server gathers a StatusSnapshot (metrics, readiness, the recent
// invalidations, the last logged problem) and this module turns it into JSON; the HTML is a
// constant page (inline CSS and JS, no external assets) that polls /status.json and renders
// every value with textContent, so a cache key such as `<img src=x onerror=...>` stays text.
// Its Content-Security-Policy admits only the page's own script (by hash) as a second fence.
//
// It shows cache keys: it belongs on the ops port (BRIDGE_OPS_LISTEN), never the public one.
// The snapshot holds no secret (the app secret and the database password are never put in it).
// Thread-safe: free functions without shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recent_invalidations.h"

namespace bridge {

struct StatusSnapshot {
  std::string version;
  std::string source;  // "notify" or "wal"
  std::string role;    // "active" or "standby" (leadership.h)
  int64_t now_ms = 0;
  int64_t started_ms = 0;
  bool ready = false;
  std::string ready_reason;  // what /readyz says when not ready
  bool pg_connected = false;
  uint64_t pg_reconnects = 0;
  double notify_queue_usage = 0;  // notify: PostgreSQL's notification queue, 0..1
  int64_t queue_depth = 0;
  uint64_t queue_max_keys = 0;
  uint64_t changes_received = 0;  // notifications (notify) or WAL changes (wal)
  uint64_t held_back = 0;
  uint64_t events_published = 0;
  uint64_t batches_published = 0;
  uint64_t publish_retries = 0;
  uint64_t errors_timeout = 0;
  uint64_t errors_server = 0;
  uint64_t errors_rejected = 0;
  uint64_t errors_throttled = 0;
  uint64_t events_dropped = 0;
  // The last warning or error the bridge logged (publish failures are logged), if any.
  struct Problem {
    int64_t time_ms = 0;
    std::string level;
    std::string message;
  };
  std::optional<Problem> last_problem;
  // wal: the slot's retained WAL and the age of the oldest unconfirmed change; notify: the age
  // of the oldest change the saved cursor has not passed.
  int64_t slot_lag_bytes = 0;
  double slot_lag_seconds = 0;
  double cursor_lag_seconds = 0;
  std::vector<RecentInvalidation> recent;  // newest first
  // BRIDGE_HTTP_SINK_URL, when set: where it POSTs (without the query) and how that goes.
  struct HttpSinkStatus {
    std::string url;
    uint64_t delivered = 0;
    uint64_t requests = 0;
    uint64_t retries = 0;
    uint64_t dropped = 0;
    uint64_t errors = 0;  // every kind
  };
  std::optional<HttpSinkStatus> http_sink;
};

// {"version","source","role","nowMs","startedMs","ready","readyReason","postgres":{...},"queue":{...},
//  "published":{...},"errors":{...,"lastProblem":null|{...}},"lag":{...},"recent":[...],
//  "httpSink":null|{...}}
// (every field is listed in status_page.cc). Invalid UTF-8 in a string is shown escaped.
std::string render_status_json(const StatusSnapshot& snapshot);

// Whether a request's Host header may read the status (it shows cache keys): an IP address,
// localhost, or `ops_host` (BRIDGE_OPS_LISTEN's host), with any port, or no Host at all. A
// name of someone else's (DNS rebinding: a web page whose own name now points at 127.0.0.1)
// is refused.
bool status_host_allowed(std::string_view host_header, std::string_view ops_host);

// The page (text/html; charset=utf-8), the same bytes every time.
const std::string& status_page_html();
// The Content-Security-Policy header value to send with it.
const std::string& status_page_csp();

}  // namespace bridge
