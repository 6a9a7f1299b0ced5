#include "webhook.h"

#include <rapidjson/document.h>

#include <algorithm>

#include "pusher_signer.h"

namespace bridge {

WebhookVerdict verify_webhook(std::string_view app_key, std::string_view app_secret,
                              std::optional<std::string_view> key_header,
                              std::optional<std::string_view> signature_header,
                              std::string_view body,
                              const std::vector<std::string>& handled_events, int64_t now_ms) {
  WebhookVerdict verdict;
  if (!key_header || !signature_header) {
    return {401, "missing X-Pusher-Key or X-Pusher-Signature", {}, WebhookRejection::kSignature};
  }
  // Compare the key in constant time as well: it is not secret, but costs nothing.
  if (key_header->size() != app_key.size() ||
      !signatures_match(std::string(app_key), *key_header)) {
    return {401, "unknown X-Pusher-Key", {}, WebhookRejection::kSignature};
  }
  if (!signatures_match(hmac_sha256_hex(app_secret, body), *signature_header)) {
    return {401, "invalid X-Pusher-Signature", {}, WebhookRejection::kSignature};
  }

  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return {400, "body is not a JSON object", {}, WebhookRejection::kMalformed};
  }
  auto time_ms = doc.FindMember("time_ms");
  if (time_ms == doc.MemberEnd() || !time_ms->value.IsInt64()) {
    return {400, "body has no integer \"time_ms\"", {}, WebhookRejection::kMalformed};
  }
  int64_t sent_at = time_ms->value.GetInt64();
  if (sent_at < now_ms - kWebhookMaxAgeMs || sent_at > now_ms + kWebhookMaxAheadMs) {
    return {400, "time_ms is more than 5 minutes old or 1 minute ahead: refused as a replay", {},
            WebhookRejection::kStale};
  }
  auto events = doc.FindMember("events");
  if (events == doc.MemberEnd() || !events->value.IsArray()) {
    return {400, "body has no \"events\" array", {}, WebhookRejection::kMalformed};
  }
  for (const auto& event : events->value.GetArray()) {
    if (!event.IsObject()) return {400, "an event is not an object", {}, WebhookRejection::kMalformed};
    auto name = event.FindMember("name");
    if (name == event.MemberEnd() || !name->value.IsString()) {
      return {400, "an event has no \"name\"", {}, WebhookRejection::kMalformed};
    }
    std::string event_name(name->value.GetString(), name->value.GetStringLength());
    if (std::find(handled_events.begin(), handled_events.end(), event_name) ==
        handled_events.end()) {
      continue;
    }
    auto channel = event.FindMember("channel");
    if (channel == event.MemberEnd() || !channel->value.IsString() ||
        channel->value.GetStringLength() == 0) {
      return {400, "a " + event_name + " event has no \"channel\"", {}, WebhookRejection::kMalformed};
    }
    // The whole string, NUL bytes included: the channel-name rule then refuses it.
    verdict.events.push_back({event_name, std::string(channel->value.GetString(), channel->value.GetStringLength())});
  }
  verdict.reason = "ok";
  return verdict;
}

}  // namespace bridge
