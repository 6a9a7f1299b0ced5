// libFuzzer: a webhook body through verify_webhook, correctly signed so that the fuzzer gets
// past the signature check to the JSON, and once more with a forged signature.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "pusher_signer.h"
#include "webhook.h"

namespace {

constexpr int64_t kNowMs = 1700000000000;  // the corpus's time_ms values sit around this
const std::vector<std::string> kHandled = {"channel_occupied", "cache_miss"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string signature = bridge::hmac_sha256_hex("app-secret", body);
  bridge::WebhookVerdict v =
      bridge::verify_webhook("app-key", "app-secret", "app-key", signature, body, kHandled, kNowMs);
  FUZZ_CHECK(v.status == 200 || v.status == 400);
  FUZZ_CHECK(!v.reason.empty());
  if (v.status == 200) {
    FUZZ_CHECK(v.rejection == bridge::WebhookRejection::kNone);
    for (const auto& e : v.events) {
      FUZZ_CHECK(e.name == kHandled[0] || e.name == kHandled[1]);
      FUZZ_CHECK(!e.channel.empty());
    }
  } else {
    FUZZ_CHECK(v.rejection != bridge::WebhookRejection::kNone && v.events.empty());
  }

  signature[0] = signature[0] == '0' ? '1' : '0';
  bridge::WebhookVerdict forged =
      bridge::verify_webhook("app-key", "app-secret", "app-key", signature, body, kHandled, kNowMs);
  FUZZ_CHECK(forged.status == 401 && forged.rejection == bridge::WebhookRejection::kSignature);
  FUZZ_CHECK(forged.events.empty());
  return 0;
}
