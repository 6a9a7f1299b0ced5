// Configuration: every key the bridge reads, from one .env shared with Soketi.
// Pure: parse_config() takes the merged key/value map and returns all problems at once.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "env_file.h"
#include "log.h"

namespace bridge {

// One address of Soketi's HTTP API: a node of the cluster, or a proxy in front of it.
struct SoketiAddress {
  std::string host;  // a name or an address; IPv6 without the brackets
  int port = 6001;
  bool operator==(const SoketiAddress&) const = default;
};

struct Config {
  // Soketi application and its HTTP API.
  std::string app_id;
  std::string app_key;
  std::string app_secret;
  // SOKETI_HOST: one host[:port] or a comma list of them, the nodes of one Soketi cluster (Redis
  // adapter) in the order tried; entries without a port take SOKETI_PORT. Never empty once
  // parsed, no duplicates. SoketiClient fails over between them.
  std::vector<SoketiAddress> soketi_addresses = {{"127.0.0.1", 6001}};
  int soketi_port = 6001;  // SOKETI_PORT: the port of the addresses that name none
  bool soketi_use_tls = false;
  std::string soketi_path_prefix;  // "" or "/something", never a trailing slash
  size_t max_batch_size = 10;      // SOKETI_EVENT_MAX_BATCH_SIZE
  size_t max_event_bytes = 100 * 1024;  // SOKETI_EVENT_MAX_SIZE_IN_KB
  int max_events_per_second = -1;       // SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC; -1: none

  // The bridge's HTTP server: Soketi's webhooks, health and metrics.
  std::string webhook_url;
  std::string webhook_path = "/soketi/webhook";
  int http_port = 3001;
  std::string http_bind = "127.0.0.1";
  std::vector<std::string> webhook_event_types;
  // Operators' endpoints (probes, metrics): BRIDGE_OPS_LISTEN, host:port.
  std::string ops_host = "127.0.0.1";
  int ops_port = 3002;

  // PostgreSQL.
  std::string database_url;
  // Where changes come from: NOTIFY (triggers, the default) or the write-ahead log (a logical
  // replication slot read with pgoutput).
  enum class Source { kNotify, kWal };
  Source source = Source::kNotify;            // BRIDGE_SOURCE
  std::string slot_name = "cache_bridge";     // BRIDGE_SLOT (wal)
  std::string publication = "cache_invalidation";  // BRIDGE_PUBLICATION (wal)
  std::chrono::milliseconds pg_answer_timeout{35000};  // BRIDGE_PG_TIMEOUT_MS
  std::vector<std::string> pg_channels;

  // Events.
  std::string channel_template = "invalidations";
  std::string event_name = "cache-invalidate";
  std::chrono::milliseconds coalesce_window{200};
  size_t queue_max_keys = 10000;
  size_t queue_max_bytes = 2u << 20;  // BRIDGE_QUEUE_MAX_BYTES
  int publish_concurrency = 2;
  std::chrono::microseconds publish_linger{0};  // BRIDGE_PUBLISH_LINGER_US
  std::chrono::milliseconds http_timeout{5000};

  // The optional HTTP sink (BRIDGE_HTTP_SINK_URL): signed, batched POSTs of every live
  // invalidation to an app (a Next.js route handler on Vercel), besides Soketi.
  std::string http_sink_url;     // "" = no HTTP sink
  std::string http_sink_secret;  // BRIDGE_HTTP_SINK_SECRET: signs each request (HMAC-SHA256)
  size_t http_sink_max_batch = 100;  // BRIDGE_HTTP_SINK_MAX_BATCH: invalidations per POST

  // Replay and catch-up.
  std::chrono::seconds replay_max_age{86400};
  // notify source: how often the listener trims cache_invalidation_log (0: never).
  std::chrono::seconds log_trim_interval{60};
  int replay_max_keys = 1000;
  double replay_max_per_second = 20;  // BRIDGE_REPLAY_MAX_PER_SEC: channels replayed a second
  std::string cursor_name = "default";  // also names the bridge's stamps in the store

  // The timestamp contract (ChangeClock) and the snapshot endpoint.
  std::chrono::milliseconds clock_margin{0};  // BRIDGE_CLOCK_MARGIN_MS
  int64_t frozen_clock_ms = 0;                // BRIDGE_TEST_FROZEN_CLOCK_MS (tests only)
  double snapshot_max_per_second = 50;        // BRIDGE_SNAPSHOT_MAX_PER_SEC
  std::string snapshot_cors_origin = "*";     // BRIDGE_SNAPSHOT_CORS_ORIGIN
  int snapshot_max_keys = 10000;              // BRIDGE_SNAPSHOT_MAX_KEYS

  bool debug = false;
  log::Format log_format = log::Format::kText;

  // Base URL of Soketi's API at address `index`, e.g. "http://127.0.0.1:6001" (no prefix, no
  // secret). REQUIRES: index < soketi_addresses.size().
  std::string soketi_base_url(size_t index = 0) const;
  // Every address's base URL, comma-separated (for logs).
  std::string soketi_base_urls() const;
};

struct ConfigResult {
  Config config;
  std::vector<std::string> errors;  // one line per problem, each naming its key
};

ConfigResult parse_config(const EnvMap& env);

// http(s)://host[:port][/path[?query]]; the port defaults to the scheme's.
struct ParsedUrl {
  std::string scheme, host, path;  // path with its query, "/" when none
  int port = 0;
};
std::optional<ParsedUrl> parse_http_url(const std::string& url);
// scheme://host:port/path of a URL, without its query (which may hold a token): what logs and
// pages may show. "" when the URL does not parse.
std::string url_for_display(const std::string& url);

}  // namespace bridge
