#include "config.h"

#include "channel_name.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <optional>

namespace bridge {
namespace {

// Reads keys out of the merged environment, collecting one error line per bad key.
class Reader {
 public:
  explicit Reader(const EnvMap& env) : env_(env) {}

  std::optional<std::string> raw(const std::string& key) const {
    auto it = env_.find(key);
    if (it == env_.end() || it->second.empty()) return std::nullopt;
    return it->second;
  }

  std::string text(const std::string& key, std::string fallback) const {
    return raw(key).value_or(std::move(fallback));
  }

  // First key that is set, else an error naming the first key.
  std::string required(std::initializer_list<std::string> keys) {
    for (const auto& key : keys) {
      if (auto v = raw(key)) return *v;
    }
    std::string names;
    for (const auto& key : keys) names += (names.empty() ? "" : " or ") + key;
    errors.push_back(fmt::format("{}: missing (required)", names));
    return {};
  }

  long long integer(const std::string& key, long long fallback, long long min, long long max) {
    auto v = raw(key);
    if (!v) return fallback;
    long long parsed = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), parsed);
    if (ec != std::errc() || end != v->data() + v->size() || parsed < min || parsed > max) {
      errors.push_back(fmt::format("{}: must be an integer from {} to {}, got \"{}\"", key, min,
                                   max, log::excerpt(*v, 40)));
      return fallback;
    }
    return parsed;
  }

  bool boolean(const std::string& key, bool fallback) {
    auto v = raw(key);
    if (!v) return fallback;
    std::string lower = *v;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower == "1" || lower == "true" || lower == "yes" || lower == "on") return true;
    if (lower == "0" || lower == "false" || lower == "no" || lower == "off") return false;
    errors.push_back(fmt::format("{}: must be true or false, got \"{}\"", key, log::excerpt(*v, 40)));
    return fallback;
  }

  std::vector<std::string> list(const std::string& key, const std::string& fallback) {
    std::vector<std::string> items;
    std::string value = text(key, fallback);
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      if (comma == std::string::npos) comma = value.size();
      std::string item = value.substr(start, comma - start);
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (!item.empty()) items.push_back(item);
      start = comma + 1;
    }
    if (items.empty()) errors.push_back(fmt::format("{}: must list at least one name", key));
    return items;
  }

  std::vector<std::string> errors;

 private:
  const EnvMap& env_;
};

}  // namespace

std::optional<ParsedUrl> parse_http_url(const std::string& url) {
  ParsedUrl out;
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return std::nullopt;
  out.scheme = url.substr(0, scheme_end);
  if (out.scheme != "http" && out.scheme != "https") return std::nullopt;
  size_t host_start = scheme_end + 3;
  size_t path_start = url.find_first_of("/?#", host_start);
  std::string authority = url.substr(host_start, path_start - host_start);
  if (path_start == std::string::npos) {
    out.path = "/";
  } else {
    out.path = url.substr(path_start);
    if (out.path.front() != '/') out.path.insert(0, "/");  // "host?query": the root's query
  }
  out.path = out.path.substr(0, out.path.find('#'));  // a fragment is never sent
  // User info would travel in the clear to every log line that shows the URL: refused.
  if (authority.find('@') != std::string::npos) return std::nullopt;
  size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']') == std::string::npos) {
    out.host = authority.substr(0, colon);
    auto port_text = authority.substr(colon + 1);
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), out.port);
    if (ec != std::errc() || end != port_text.data() + port_text.size()) return std::nullopt;
  } else {
    out.host = authority;
    out.port = out.scheme == "https" ? 443 : 80;
  }
  if (out.host.empty() || out.port < 1 || out.port > 65535) return std::nullopt;
  return out;
}

std::string url_for_display(const std::string& url) {
  auto parsed = parse_http_url(url);
  if (!parsed) return "";
  return fmt::format("{}://{}:{}{}", parsed->scheme, parsed->host, parsed->port,
                     parsed->path.substr(0, parsed->path.find('?')));
}

namespace {

bool valid_identifier(const std::string& name) {
  // PostgreSQL channel names are identifiers; the bridge quotes them, but refuses the
  // empty name and names over NAMEDATALEN.
  return !name.empty() && name.size() < 64;
}

constexpr size_t kMaxSoketiAddresses = 16;

// SOKETI_HOST: "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address, comma-separated.
std::vector<SoketiAddress> parse_soketi_addresses(const std::string& value, int default_port,
                                                  std::vector<std::string>* errors) {
  std::vector<SoketiAddress> out;
  auto bad = [&](const std::string& entry, const std::string& why) {
    errors->push_back(fmt::format("SOKETI_HOST: \"{}\" {}", log::excerpt(entry, 80), why));
  };
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string::npos) comma = value.size();
    std::string entry = value.substr(start, comma - start);
    start = comma + 1;
    entry.erase(0, entry.find_first_not_of(" \t"));
    entry.erase(entry.find_last_not_of(" \t") + 1);
    if (entry.empty()) {
      errors->push_back(fmt::format("SOKETI_HOST: an empty entry in \"{}\" (want host[:port],host[:port],...)",
                                    log::excerpt(value, 80)));
      continue;
    }
    if (entry.find("://") != std::string::npos || entry.find_first_of("/@ \t?#") != std::string::npos) {
      bad(entry, "is not a host[:port] (no scheme, user or path: https is SOKETI_USE_TLS, a path "
                 "SOKETI_PATH_PREFIX)");
      continue;
    }
    SoketiAddress address{entry, default_port};
    std::string port_text;
    if (entry.front() == '[') {
      size_t close = entry.find(']');
      if (close == std::string::npos || close == 1 ||
          (close + 1 < entry.size() && entry[close + 1] != ':')) {
        bad(entry, "is not [IPv6 address] or [IPv6 address]:port");
        continue;
      }
      address.host = entry.substr(1, close - 1);
      if (close + 1 < entry.size()) port_text = entry.substr(close + 2);
      if (close + 1 < entry.size() && port_text.empty()) {
        bad(entry, "ends in ':' without a port");
        continue;
      }
    } else if (size_t colon = entry.find(':'); colon != std::string::npos && entry.find(':', colon + 1) == std::string::npos) {
      address.host = entry.substr(0, colon);
      port_text = entry.substr(colon + 1);
      if (address.host.empty() || port_text.empty()) {
        bad(entry, "is not host:port");
        continue;
      }
    }  // else a name, or a bare IPv6 address (several colons): no port of its own
    if (!port_text.empty()) {
      int port = 0;
      auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
      if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 || port > 65535) {
        bad(entry, "has a port that is not an integer from 1 to 65535");
        continue;
      }
      address.port = port;
    }
    if (std::find(out.begin(), out.end(), address) != out.end()) {
      bad(entry, "is listed twice");
      continue;
    }
    out.push_back(std::move(address));
  }
  if (out.size() > kMaxSoketiAddresses) {
    errors->push_back(fmt::format("SOKETI_HOST: {} addresses, at most {}", out.size(), kMaxSoketiAddresses));
  }
  return out;
}

}  // namespace

std::string Config::soketi_base_url(size_t index) const {
  const SoketiAddress& a = soketi_addresses[index];
  bool v6 = a.host.find(':') != std::string::npos;
  return fmt::format("{}://{}{}{}:{}", soketi_use_tls ? "https" : "http", v6 ? "[" : "", a.host,
                     v6 ? "]" : "", a.port);
}

std::string Config::soketi_base_urls() const {
  std::string out;
  for (size_t i = 0; i < soketi_addresses.size(); ++i) out += (i ? ", " : "") + soketi_base_url(i);
  return out;
}

ConfigResult parse_config(const EnvMap& env) {
  Reader r(env);
  ConfigResult result;
  Config& c = result.config;

  c.app_id = r.required({"SOKETI_APP_ID", "SOKETI_DEFAULT_APP_ID"});
  c.app_key = r.required({"SOKETI_APP_KEY", "SOKETI_DEFAULT_APP_KEY"});
  c.app_secret = r.required({"SOKETI_APP_SECRET", "SOKETI_DEFAULT_APP_SECRET"});
  c.soketi_port = static_cast<int>(r.integer("SOKETI_PORT", c.soketi_port, 1, 65535));
  if (auto hosts = parse_soketi_addresses(r.text("SOKETI_HOST", "127.0.0.1"), c.soketi_port, &r.errors);
      !hosts.empty()) {
    c.soketi_addresses = std::move(hosts);
  } else {
    c.soketi_addresses = {{"127.0.0.1", c.soketi_port}};  // the errors say why; keep the invariant
  }
  c.soketi_use_tls = r.boolean("SOKETI_USE_TLS", false);
  c.soketi_path_prefix = r.text("SOKETI_PATH_PREFIX", "");
  while (!c.soketi_path_prefix.empty() && c.soketi_path_prefix.back() == '/') {
    c.soketi_path_prefix.pop_back();
  }
  if (!c.soketi_path_prefix.empty() && c.soketi_path_prefix.front() != '/') {
    c.soketi_path_prefix.insert(0, "/");
  }
  c.max_batch_size = static_cast<size_t>(r.integer("SOKETI_EVENT_MAX_BATCH_SIZE", 10, 1, 10000));
  c.max_event_bytes =
      static_cast<size_t>(r.integer("SOKETI_EVENT_MAX_SIZE_IN_KB", 100, 1, 100000)) * 1024;

  c.max_events_per_second = static_cast<int>(
      r.integer("SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC", -1, -1, 100000000));

  c.webhook_url = r.text("SOKETI_WEBHOOK_URL", "http://127.0.0.1:3001/soketi/webhook");
  if (auto url = parse_http_url(c.webhook_url)) {
    c.http_port = url->port;
    c.webhook_path = url->path;
  } else {
    r.errors.push_back(fmt::format("SOKETI_WEBHOOK_URL: must be an http(s)://host:port/path URL, got \"{}\"",
                                   log::excerpt(c.webhook_url, 60)));
  }
  c.webhook_event_types = r.list("SOKETI_WEBHOOK_EVENT_TYPES", "channel_occupied,cache_miss");
  c.http_bind = r.text("BRIDGE_HTTP_BIND", c.http_bind);
  std::string ops = r.text("BRIDGE_OPS_LISTEN", "127.0.0.1:3002");
  if (size_t colon = ops.rfind(':'); colon != std::string::npos && colon > 0) {
    c.ops_host = ops.substr(0, colon);
    auto port_text = ops.substr(colon + 1);
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), c.ops_port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || c.ops_port < 1 || c.ops_port > 65535) {
      r.errors.push_back(fmt::format("BRIDGE_OPS_LISTEN: must be host:port, got \"{}\"", log::excerpt(ops, 60)));
    }
  } else {
    r.errors.push_back(fmt::format("BRIDGE_OPS_LISTEN: must be host:port, got \"{}\"", log::excerpt(ops, 60)));
  }

  c.database_url = r.required({"DATABASE_URL"});
  c.pg_answer_timeout = std::chrono::milliseconds(r.integer("BRIDGE_PG_TIMEOUT_MS", 35000, 1000, 3600000));
  c.pg_channels = r.list("BRIDGE_PG_CHANNELS", "cache_invalidation,data_change_notification");
  for (const auto& channel : c.pg_channels) {
    if (!valid_identifier(channel)) {
      r.errors.push_back(fmt::format("BRIDGE_PG_CHANNELS: \"{}\" is longer than 63 bytes",
                                     log::excerpt(channel, 80)));
    }
  }

  std::string source = r.text("BRIDGE_SOURCE", "notify");
  if (source == "wal") {
    c.source = Config::Source::kWal;
  } else if (source != "notify") {
    r.errors.push_back(fmt::format("BRIDGE_SOURCE: must be notify or wal, got \"{}\"", log::excerpt(source, 40)));
  }
  c.slot_name = r.text("BRIDGE_SLOT", c.slot_name);
  // Slot names are lower-case letters, digits and underscores (PostgreSQL's own rule).
  if (c.slot_name.size() > 63 ||
      !std::all_of(c.slot_name.begin(), c.slot_name.end(),
                   [](char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'; })) {
    r.errors.push_back(fmt::format("BRIDGE_SLOT: must be up to 63 lower-case letters, digits and underscores, got \"{}\"",
                                   log::excerpt(c.slot_name, 80)));
  }
  c.publication = r.text("BRIDGE_PUBLICATION", c.publication);
  if (!valid_identifier(c.publication)) {
    r.errors.push_back(fmt::format("BRIDGE_PUBLICATION: \"{}\" is longer than 63 bytes", log::excerpt(c.publication, 80)));
  }

  c.channel_template = r.text("BRIDGE_CHANNEL", c.channel_template);
  if (std::string why; !is_valid_channel_template(c.channel_template, &why)) {
    r.errors.push_back("BRIDGE_CHANNEL: " + why);
  }
  c.event_name = r.text("BRIDGE_EVENT", c.event_name);
  if (c.event_name.size() > 200) r.errors.push_back("BRIDGE_EVENT: longer than 200 bytes");
  c.coalesce_window = std::chrono::milliseconds(r.integer("BRIDGE_COALESCE_MS", 200, 0, 3600000));
  c.queue_max_keys = static_cast<size_t>(r.integer("BRIDGE_QUEUE_MAX_KEYS", 10000, 1, 100000000));
  c.queue_max_bytes = static_cast<size_t>(r.integer("BRIDGE_QUEUE_MAX_BYTES", 2 << 20, 64 << 10, int64_t{1} << 40));
  c.publish_concurrency = static_cast<int>(r.integer("BRIDGE_PUBLISH_CONCURRENCY", 2, 1, 64));
  c.publish_linger = std::chrono::microseconds(r.integer("BRIDGE_PUBLISH_LINGER_US", 0, 0, 1000000));
  c.http_timeout = std::chrono::milliseconds(r.integer("BRIDGE_HTTP_TIMEOUT_MS", 5000, 100, 600000));

  c.http_sink_url = r.text("BRIDGE_HTTP_SINK_URL", "");
  c.http_sink_secret = r.text("BRIDGE_HTTP_SINK_SECRET", "");
  c.http_sink_max_batch = static_cast<size_t>(r.integer("BRIDGE_HTTP_SINK_MAX_BATCH", 100, 1, 1000));
  if (!c.http_sink_url.empty()) {
    if (!parse_http_url(c.http_sink_url)) {
      // Without a query or user info, which may hold a token.
      std::string shown = c.http_sink_url.substr(0, c.http_sink_url.find_first_of("?#"));
      if (size_t at = shown.rfind('@'); at != std::string::npos) {
        size_t scheme_end = shown.find("://");
        shown = (scheme_end == std::string::npos ? "" : shown.substr(0, scheme_end + 3)) + "...@" + shown.substr(at + 1);
      }
      r.errors.push_back(fmt::format("BRIDGE_HTTP_SINK_URL: must be an http(s)://host[:port]/path URL "
                                     "(no user info), got \"{}\"",
                                     log::excerpt(shown, 60)));
    }
    // The receiver checks every request's signature with this secret: a short one can be guessed.
    if (c.http_sink_secret.size() < 16) {
      r.errors.push_back("BRIDGE_HTTP_SINK_SECRET: required with BRIDGE_HTTP_SINK_URL, at least 16 characters");
    }
  }

  c.replay_max_age = std::chrono::seconds(r.integer("BRIDGE_REPLAY_MAX_AGE_S", 86400, 1, 315360000));
  c.log_trim_interval = std::chrono::seconds(r.integer("BRIDGE_LOG_TRIM_S", 60, 0, 86400));
  c.replay_max_keys = static_cast<int>(r.integer("BRIDGE_REPLAY_MAX_KEYS", 1000, 0, 10000000));
  c.replay_max_per_second = static_cast<double>(r.integer("BRIDGE_REPLAY_MAX_PER_SEC", 20, 1, 100000));
  c.cursor_name = r.text("BRIDGE_CURSOR_NAME", c.cursor_name);

  c.clock_margin = std::chrono::milliseconds(r.integer("BRIDGE_CLOCK_MARGIN_MS", 0, 0, 60000));
  c.frozen_clock_ms = r.integer("BRIDGE_TEST_FROZEN_CLOCK_MS", 0, 0, 253402300799999);
  c.snapshot_max_per_second =
      static_cast<double>(r.integer("BRIDGE_SNAPSHOT_MAX_PER_SEC", 50, 1, 1000000));
  c.snapshot_cors_origin = r.text("BRIDGE_SNAPSHOT_CORS_ORIGIN", c.snapshot_cors_origin);
  c.snapshot_max_keys = static_cast<int>(r.integer("BRIDGE_SNAPSHOT_MAX_KEYS", 10000, 1, 1000000));

  c.debug = r.boolean("SOKETI_DEBUG", false);
  std::string format = r.text("BRIDGE_LOG_FORMAT", "text");
  if (format == "json") {
    c.log_format = log::Format::kJson;
  } else if (format != "text") {
    r.errors.push_back(fmt::format("BRIDGE_LOG_FORMAT: must be text or json, got \"{}\"",
                                   log::excerpt(format, 40)));
  }

  result.errors = std::move(r.errors);
  return result;
}

}  // namespace bridge
