#include "webhook.h"

#include <rapidjson/document.h>

#include <algorithm>

#include "pusher_signer.h"

namespace bridge {

WebhookVerdict verify_webhook(std::string_view app_key, std::string_view app_secret,
                              std::optional<std::string_view> key_header,
                              std::optional<std::string_view> signature_header,
                              std::string_view body,
                              const std::vector<std::string>& handled_events) {
  WebhookVerdict verdict;
  if (!key_header || !signature_header) {
    return {401, "missing X-Pusher-Key or X-Pusher-Signature", {}};
  }
  // Compare the key in constant time as well: it is not secret, but costs nothing.
  if (key_header->size() != app_key.size() ||
      !signatures_match(std::string(app_key), *key_header)) {
    return {401, "unknown X-Pusher-Key", {}};
  }
  if (!signatures_match(hmac_sha256_hex(app_secret, body), *signature_header)) {
    return {401, "invalid X-Pusher-Signature", {}};
  }

  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return {400, "body is not a JSON object", {}};
  auto events = doc.FindMember("events");
  if (events == doc.MemberEnd() || !events->value.IsArray()) {
    return {400, "body has no \"events\" array", {}};
  }
  for (const auto& event : events->value.GetArray()) {
    if (!event.IsObject()) return {400, "an event is not an object", {}};
    auto name = event.FindMember("name");
    if (name == event.MemberEnd() || !name->value.IsString()) {
      return {400, "an event has no \"name\"", {}};
    }
    std::string event_name = name->value.GetString();
    if (std::find(handled_events.begin(), handled_events.end(), event_name) ==
        handled_events.end()) {
      continue;
    }
    auto channel = event.FindMember("channel");
    if (channel == event.MemberEnd() || !channel->value.IsString() ||
        channel->value.GetStringLength() == 0) {
      return {400, "a " + event_name + " event has no \"channel\"", {}};
    }
    verdict.events.push_back({event_name, channel->value.GetString()});
  }
  verdict.reason = "ok";
  return verdict;
}

}  // namespace bridge
