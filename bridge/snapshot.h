// Snapshot: GET /snapshot, the current state of one channel for a subscriber that just
// subscribed. Soketi tells the bridge only about a channel's FIRST subscriber
// (channel_occupied), so every later one asks here: it subscribes first, then fetches the
// snapshot, and merges both by seq (deploy/clients/invalidations.mjs), so a change between the
// two is never lost.
//
// Authorised as Pusher authorises the channel: public (cache- included) open; private- and
// presence- need the client's channel authorization for its socket (the app's auth endpoint
// signs it with the app secret, which the bridge holds). Rate-limited (one token bucket),
// CORS for browsers (a simple GET: no preflight needed).
//
// Thread-safe: handlers on the HTTP thread pool share one PostgreSQL connection, in turn.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "config.h"
#include "metrics.h"
#include "pg_connection.h"
#include "rate_limiter.h"
#include "stamp_writer.h"

namespace bridge {

struct SnapshotQuery {
  std::string channel;
  std::string since;         // epoch ms: only invalidations later than this; empty: all
  std::string socket_id;     // private-/presence-: the subscribing socket
  std::string auth;          // private-/presence-: "<key>:<signature>"
  std::string channel_data;  // presence-: the signed member data
};

struct SnapshotAnswer {
  int status = 200;
  std::string body;          // JSON on 200, one line of text otherwise
  int retry_after_s = 0;     // 429 and 503
};

// Who may read: nullopt when allowed, else the refusal (400 malformed, 401 missing or bad
// authorization). Pure.
std::optional<SnapshotAnswer> check_snapshot_access(std::string_view app_key, std::string_view app_secret,
                                                    const SnapshotQuery& query);

class SnapshotService {
 public:
  SnapshotService(const Config& config, StampWriter& stamps, Metrics& metrics);
  SnapshotService(const SnapshotService&) = delete;
  SnapshotService& operator=(const SnapshotService&) = delete;

  SnapshotAnswer answer(const SnapshotQuery& query);

 private:
  const Config& config_;
  StampWriter& stamps_;
  Metrics& metrics_;
  RateLimiter limiter_;
  // Timed: a request waits for the connection only briefly, so slow or stuck queries (a
  // database that went away) cannot tie up every HTTP worker that webhooks and probes need.
  std::timed_mutex conn_mutex_;
  PgConnPtr conn_;  // protected by conn_mutex_; reconnected on the next request after an error
};

}  // namespace bridge
