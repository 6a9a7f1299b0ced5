#include <doctest/doctest.h>

#include "pusher_signer.h"
#include "webhook.h"

using namespace bridge;

namespace {
const std::vector<std::string> kHandled = {"channel_occupied", "cache_miss"};
const std::string kBody =
    R"({"time_ms":1700000000000,"events":[{"name":"channel_occupied","channel":"invalidations"},)"
    R"({"name":"member_added","channel":"presence-x","user_id":"1"},{"name":"cache_miss","channel":"cache-posts"}]})";

constexpr int64_t kNow = 1700000000000;  // kBody's time_ms

WebhookVerdict verify(std::optional<std::string_view> key, std::optional<std::string_view> sig,
                      const std::string& body, int64_t now_ms = kNow) {
  return verify_webhook("app-key", "app-secret", key, sig, body, kHandled, now_ms);
}
}  // namespace

TEST_CASE("a correctly signed webhook is accepted; unhandled events are skipped") {
  std::string sig = hmac_sha256_hex("app-secret", kBody);
  auto v = verify("app-key", sig, kBody);
  CHECK(v.status == 200);
  REQUIRE(v.events.size() == 2);
  CHECK(v.events[0].name == "channel_occupied");
  CHECK(v.events[0].channel == "invalidations");
  CHECK(v.events[1].name == "cache_miss");
  CHECK(v.events[1].channel == "cache-posts");
}

TEST_CASE("forged, unsigned and foreign webhooks get 401") {
  std::string sig = hmac_sha256_hex("app-secret", kBody);
  CHECK(verify("app-key", hmac_sha256_hex("wrong-secret", kBody), kBody).status == 401);
  CHECK(verify("app-key", std::nullopt, kBody).status == 401);
  CHECK(verify(std::nullopt, sig, kBody).status == 401);
  CHECK(verify("other-key", sig, kBody).status == 401);
  CHECK(verify("app-key", sig, kBody + " ").status == 401);  // body changed after signing
  CHECK(verify("app-key", sig, kBody).events.size() == 2);
}

TEST_CASE("signed but malformed webhooks get 400") {
  for (std::string body : {std::string("not json"), std::string("[]"),
                           std::string(R"({"time_ms":1700000000000,"events":{}})"),
                           std::string(R"({"time_ms":1700000000000,"events":[{"channel":"x"}]})"),
                           std::string(R"({"time_ms":1700000000000,"events":[{"name":"channel_occupied"}]})"),
                           std::string(R"({"events":[]})"), std::string(R"({"time_ms":"now","events":[]})")}) {
    auto v = verify("app-key", hmac_sha256_hex("app-secret", body), body);
    CHECK_MESSAGE(v.status == 400, body);
    CHECK(v.rejection == WebhookRejection::kMalformed);
    CHECK(v.events.empty());
  }
}

TEST_CASE("a signed webhook older than 5 minutes or more than 1 minute ahead is refused as a replay") {
  std::string sig = hmac_sha256_hex("app-secret", kBody);
  CHECK(verify("app-key", sig, kBody, kNow + kWebhookMaxAgeMs).status == 200);       // just in time
  auto old = verify("app-key", sig, kBody, kNow + kWebhookMaxAgeMs + 1);
  CHECK(old.status == 400);
  CHECK(old.rejection == WebhookRejection::kStale);
  CHECK(old.events.empty());
  CHECK(verify("app-key", sig, kBody, kNow - kWebhookMaxAheadMs).status == 200);
  CHECK(verify("app-key", sig, kBody, kNow - kWebhookMaxAheadMs - 1).rejection == WebhookRejection::kStale);
  // The signature is checked first: an unsigned stale body is a signature failure.
  CHECK(verify("app-key", "00", kBody, 0).rejection == WebhookRejection::kSignature);
}

TEST_CASE("a channel with a NUL byte keeps it (and so fails the channel-name rule later)") {
  std::string body = R"({"time_ms":1700000000000,"events":[{"name":"channel_occupied","channel":"\u0000posts"}]})";
  auto v = verify("app-key", hmac_sha256_hex("app-secret", body), body);
  REQUIRE(v.events.size() == 1);
  CHECK(v.events[0].channel == std::string("\0posts", 6));
}
