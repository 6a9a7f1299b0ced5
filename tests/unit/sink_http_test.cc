#include <doctest/doctest.h>

#include <vector>

#include "event_encoder.h"
#include "sink_http.h"

using namespace bridge;

TEST_CASE("the HTTP sink's signature is v1= and the hex HMAC-SHA256 of \"<timestamp>.<body>\"") {
  // openssl: printf '%s' '1700000000.{"invalidations":[]}' | openssl dgst -sha256 -hmac '0123456789abcdef-secret'
  CHECK(http_sink_signature("0123456789abcdef-secret", 1700000000, R"({"invalidations":[]})") ==
        "v1=9a027aa9a911f621345ba0a14ca2bdf30c4c7b9377b06548bcf954de7c20b195");
  CHECK(http_sink_signature("0123456789abcdef-secret", 1700000001, R"({"invalidations":[]})") !=
        http_sink_signature("0123456789abcdef-secret", 1700000000, R"({"invalidations":[]})"));
}

TEST_CASE("the HTTP sink's body carries keys, stamps and what changed, never the row's data") {
  std::vector<QueuedInvalidation> items(2);
  items[0].channel = "invalidations";
  items[0].invalidation = {.cache_key = "posts:42", .seq = 1700000000123456, .table = "posts",
                           .action = "update", .id_json = "42", .data_json = R"({"secret":"card"})"};
  items[1].invalidation = {.cache_key = "plain", .seq = 1700000000200000};
  CHECK(encode_http_sink_body(items) ==
        R"({"invalidations":[{"cacheKey":"posts:42","invalidatedAt":1700000000124,"seq":1700000000123456,)"
        R"("table":"posts","action":"update","id":42},)"
        R"({"cacheKey":"plain","invalidatedAt":1700000000201,"seq":1700000000200000}]})");
  CHECK(encode_http_sink_body({}) == R"({"invalidations":[]})");
}
