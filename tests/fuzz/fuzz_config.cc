// libFuzzer: parse_config over the environment the input spells, one KEY=VALUE per line
// (split at the first '=', nothing trimmed: the map parse_config gets is already parsed).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "channel_name.h"
#include "config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  bridge::EnvMap env;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  bridge::ConfigResult result = bridge::parse_config(env);
  for (const auto& error : result.errors) FUZZ_CHECK(!error.empty());
  if (!result.errors.empty()) return 0;

  // A config without errors is one the bridge can start with.
  const bridge::Config& c = result.config;
  FUZZ_CHECK(!c.app_id.empty() && !c.app_key.empty() && !c.app_secret.empty());
  FUZZ_CHECK(!c.database_url.empty() && !c.pg_channels.empty());
  FUZZ_CHECK(!c.webhook_event_types.empty());
  FUZZ_CHECK(c.soketi_port >= 1 && c.soketi_port <= 65535);
  FUZZ_CHECK(!c.soketi_addresses.empty());
  for (const auto& a : c.soketi_addresses) FUZZ_CHECK(!a.host.empty() && a.port >= 1 && a.port <= 65535);
  FUZZ_CHECK(c.http_port >= 1 && c.http_port <= 65535);
  FUZZ_CHECK(!c.ops_host.empty() && c.ops_port >= 1 && c.ops_port <= 65535);
  FUZZ_CHECK(!c.webhook_path.empty() && c.webhook_path[0] == '/');
  FUZZ_CHECK(c.soketi_path_prefix.empty() ||
             (c.soketi_path_prefix[0] == '/' && c.soketi_path_prefix.back() != '/'));
  FUZZ_CHECK(c.max_batch_size >= 1 && c.max_event_bytes >= 1024);
  FUZZ_CHECK(bridge::is_valid_channel_template(c.channel_template, nullptr));
  FUZZ_CHECK(c.event_name.size() <= 200);
  return 0;
}
