// libFuzzer: a NOTIFY payload through map_notification, then encode_event_data and the
// channel rule (expand_channel) for each invalidation it maps to (one, or one per id of an
// `ids` payload), as the listener and publisher use them.
#include <rapidjson/document.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "channel_name.h"
#include "event_encoder.h"
#include "fuzz_check.h"
#include "notification_mapper.h"

namespace {

constexpr std::string_view kTemplates[] = {"invalidations", "cache-{table}", "{table}.{key}",
                                           "k-{key}-{key}"};

bool channel_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("_-=@,.;").find(c) != std::string_view::npos;
}

// A JSON payload's own "cache_key" string (embedded NULs included), when it has one.
std::optional<std::string> named_key(std::string_view payload) {
  while (!payload.empty() && std::isspace(static_cast<unsigned char>(payload.front()))) payload.remove_prefix(1);
  while (!payload.empty() && std::isspace(static_cast<unsigned char>(payload.back()))) payload.remove_suffix(1);
  rapidjson::Document doc;
  doc.Parse(payload.data(), payload.size());
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  auto key = doc.FindMember("cache_key");
  if (key == doc.MemberEnd() || !key->value.IsString()) return std::nullopt;
  return std::string(key->value.GetString(), key->value.GetStringLength());
}

// What the listener and publisher do with one mapped invalidation must hold for every one.
void check_invalidation(bridge::Invalidation inv) {
  FUZZ_CHECK(!inv.cache_key.empty() && inv.cache_key.size() <= 1024);
  FUZZ_CHECK(inv.seq == 0);

  inv.seq = 1'700'000'000'000'042;
  // Small enough that large rows take the dataOmitted path.
  std::string event = bridge::encode_event_data(inv, 256);
  rapidjson::Document doc;
  doc.Parse(event.data(), event.size());
  FUZZ_CHECK(!doc.HasParseError() && doc.IsObject());
  auto key = doc.FindMember("cacheKey");
  FUZZ_CHECK(key != doc.MemberEnd() && key->value.IsString());
  FUZZ_CHECK(std::string_view(key->value.GetString(), key->value.GetStringLength()) == inv.cache_key);
  if (event.size() > 256) FUZZ_CHECK(!doc.HasMember("data"));

  for (std::string_view channel_template : kTemplates) {
    std::string channel = bridge::expand_channel(channel_template, inv.table, inv.cache_key);
    FUZZ_CHECK(!channel.empty() && channel.size() <= bridge::kMaxChannelNameLength);
    for (char c : channel) FUZZ_CHECK(channel_char(c));
    FUZZ_CHECK(bridge::could_be_expanded_from(channel_template, channel));
    bridge::PusherEvent pusher_event{channel, "cache-invalidate", event};
    std::string body = bridge::encode_batch_body({&pusher_event, 1});
    rapidjson::Document batch;
    batch.Parse(body.data(), body.size());
    FUZZ_CHECK(!batch.HasParseError() && batch.IsObject());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view payload(reinterpret_cast<const char*>(data), size);
  bridge::MappingResult mapped = bridge::map_notification(payload);
  if (mapped.invalidations.empty()) {
    FUZZ_CHECK(!mapped.error.empty());
    return 0;
  }
  // The key a payload names is the key invalidated, byte for byte, or the payload is refused.
  if (auto key = named_key(payload)) FUZZ_CHECK(mapped.invalidations.size() == 1 && mapped.invalidations[0].cache_key == *key);
  // An ids payload yields at most one invalidation per byte of payload.
  FUZZ_CHECK(mapped.invalidations.size() <= payload.size());
  for (bridge::Invalidation inv : mapped.invalidations) check_invalidation(std::move(inv));
  return 0;
}
