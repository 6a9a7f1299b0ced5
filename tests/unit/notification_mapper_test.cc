#include <doctest/doctest.h>

#include <vector>

#include "notification_mapper.h"

using namespace bridge;

TEST_CASE("a text payload is the cache key") {
  auto r = map_notification("posts:42");
  REQUIRE(r.invalidation);
  CHECK(r.invalidation->cache_key == "posts:42");
  CHECK(r.invalidation->table == "posts");
  CHECK(r.invalidation->seq == 0);  // stamped by the listener, at receipt
  CHECK(r.invalidation->action.empty());

  auto plain = map_notification("homepage");
  REQUIRE(plain.invalidation);
  CHECK(plain.invalidation->cache_key == "homepage");
  CHECK(plain.invalidation->table.empty());
}

TEST_CASE("a JSON payload without cache_key is keyed <table>:<id>") {
  auto r = map_notification(
      R"({"table":"posts","action":"UPDATE","id":7,"data":{"id":7,"title":"x"},"invalidated_at":1699999999999})");
  REQUIRE(r.invalidation);
  CHECK(r.invalidation->cache_key == "posts:7");
  CHECK(r.invalidation->action == "update");
  CHECK(r.invalidation->id_json == "7");
  CHECK(r.invalidation->data_json == R"({"id":7,"title":"x"})");
  // The payload's clock reading is reported, never taken as the change's time.
  CHECK(r.invalidation->seq == 0);
  CHECK(r.claimed_at_ms == 1699999999999);

  auto string_id = map_notification(R"({"table":"users","action":"delete","id":"u-1"})");
  REQUIRE(string_id.invalidation);
  CHECK(string_id.invalidation->cache_key == "users:u-1");
  CHECK(string_id.invalidation->id_json == "\"u-1\"");
  CHECK_FALSE(string_id.claimed_at_ms);
}

TEST_CASE("cache_key in a JSON payload wins, and data_omitted is kept") {
  auto r = map_notification(
      R"({"table":"posts","action":"insert","id":1,"cache_key":"post-page:1","data_omitted":true})");
  REQUIRE(r.invalidation);
  CHECK(r.invalidation->cache_key == "post-page:1");
  CHECK(r.invalidation->data_omitted);
  CHECK(r.invalidation->data_json.empty());
}

TEST_CASE("bad payloads are skipped with a reason") {
  struct Case {
    std::string payload;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"", "empty payload"},
      {"   \n", "empty payload"},
      {std::string("posts:\xff\xfe", 8), "payload is not valid UTF-8"},
      {std::string("\xc3", 1), "payload is not valid UTF-8"},
      {std::string("\xed\xa0\x80", 3), "payload is not valid UTF-8"},  // a surrogate
      {"{not json", "malformed JSON"},
      {"[1,2]", "JSON payload is not an object"},
      {R"({"action":"update"})", "JSON payload has neither \"cache_key\" nor \"table\" and \"id\""},
      {R"({"table":"posts"})", "JSON payload has neither \"cache_key\" nor \"table\" and \"id\""},
      {R"({"table":"posts","id":{"a":1}})", "\"id\" is not a string or number"},
      {R"({"table":"posts","id":1,"action":"truncate"})", "unknown action \"truncate\""},
      {R"({"table":5,"id":1})", "\"table\" is not a string"},
      {R"({"cache_key":""})", "empty cache key"},
      {"key\twith\ttabs", "cache key contains control characters"},
      {std::string(1100, 'k'), "cache key longer than 1024 bytes"},
  };
  for (const auto& c : cases) {
    auto r = map_notification(c.payload);
    CHECK_FALSE_MESSAGE(r.invalidation.has_value(), c.payload);
    CHECK_MESSAGE(r.error == c.reason, c.payload);
  }
}

TEST_CASE("UTF-8 keys are accepted") {
  auto r = map_notification("produits:café-☕-𝄞");
  REQUIRE(r.invalidation);
  CHECK(r.invalidation->cache_key == "produits:café-☕-𝄞");
}

TEST_CASE("a malformed invalidated_at does not cost the change") {
  auto r = map_notification(R"({"cache_key":"a","invalidated_at":"yesterday"})");
  REQUIRE(r.invalidation);
  CHECK(r.invalidation->cache_key == "a");
  CHECK_FALSE(r.claimed_at_ms);
}

TEST_CASE("row data JSON cannot carry is left out, the change still goes; an infinite id refuses the payload") {
  auto r = map_notification(R"({"table":"orders","id":7,"data":{"total":2e308,"items":[1]}})");
  REQUIRE(r.invalidation);
  CHECK(r.invalidation->cache_key == "orders:7");
  CHECK(r.invalidation->data_json.empty());
  CHECK(r.invalidation->data_omitted);
  auto bad_id = map_notification(R"({"table":"orders","id":2e308})");
  CHECK_FALSE(bad_id.invalidation);
  CHECK(bad_id.error == "\"id\" is not a finite number");
}

TEST_CASE("a NUL inside a JSON string is seen, not cut off") {
  auto r = map_notification(R"({"cache_key":"posts:1\u0000x"})");
  CHECK_FALSE(r.invalidation);
  CHECK(r.error == "cache key contains control characters");
}
