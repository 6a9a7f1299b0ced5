// Verifies and parses Soketi's webhooks. Pure: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bridge {

struct WebhookEvent {
  std::string name;     // e.g. channel_occupied, cache_miss
  std::string channel;
};

enum class WebhookRejection { kNone, kSignature, kMalformed, kStale };

struct WebhookVerdict {
  int status = 200;  // 200 accepted, 400 malformed or stale, 401 unauthenticated
  std::string reason;  // one line for the response body and the log
  std::vector<WebhookEvent> events;  // only the names in handled_events
  WebhookRejection rejection = WebhookRejection::kNone;
};

// A signed webhook is only good within this of its time_ms: a captured one cannot be
// replayed later (Soketi sends at once and never retries). Future: clock offset only.
inline constexpr int64_t kWebhookMaxAgeMs = 5 * 60 * 1000;
inline constexpr int64_t kWebhookMaxAheadMs = 60 * 1000;

// Checks X-Pusher-Key equals the app key and X-Pusher-Signature is the hex HMAC-SHA256 of the
// raw body under the app secret, then parses {"time_ms":..,"events":[{"name","channel"},..]}
// and refuses a time_ms outside [now_ms - 5 min, now_ms + 1 min].
// Events whose name is not in handled_events are skipped.
WebhookVerdict verify_webhook(std::string_view app_key, std::string_view app_secret,
                              std::optional<std::string_view> key_header,
                              std::optional<std::string_view> signature_header,
                              std::string_view body,
                              const std::vector<std::string>& handled_events, int64_t now_ms);

}  // namespace bridge
