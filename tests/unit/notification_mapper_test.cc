#include <doctest/doctest.h>

#include <vector>

#include "notification_mapper.h"

using namespace bridge;

TEST_CASE("a text payload is the cache key") {
  auto r = map_notification("posts:42");
  REQUIRE(r.invalidations.size() == 1);
  CHECK(r.invalidations[0].cache_key == "posts:42");
  CHECK(r.invalidations[0].table == "posts");
  CHECK(r.invalidations[0].seq == 0);  // stamped by the listener, at receipt
  CHECK(r.invalidations[0].action.empty());

  auto plain = map_notification("homepage");
  REQUIRE(plain.invalidations.size() == 1);
  CHECK(plain.invalidations[0].cache_key == "homepage");
  CHECK(plain.invalidations[0].table.empty());
}

TEST_CASE("a JSON payload without cache_key is keyed <table>:<id>") {
  auto r = map_notification(
      R"({"table":"posts","action":"UPDATE","id":7,"data":{"id":7,"title":"x"},"invalidated_at":1699999999999})");
  REQUIRE(r.invalidations.size() == 1);
  CHECK(r.invalidations[0].cache_key == "posts:7");
  CHECK(r.invalidations[0].action == "update");
  CHECK(r.invalidations[0].id_json == "7");
  CHECK(r.invalidations[0].data_json == R"({"id":7,"title":"x"})");
  // The payload's clock reading is reported, never taken as the change's time.
  CHECK(r.invalidations[0].seq == 0);
  CHECK(r.claimed_at_ms == 1699999999999);

  auto string_id = map_notification(R"({"table":"users","action":"delete","id":"u-1"})");
  REQUIRE(string_id.invalidations.size() == 1);
  CHECK(string_id.invalidations[0].cache_key == "users:u-1");
  CHECK(string_id.invalidations[0].id_json == "\"u-1\"");
  CHECK_FALSE(string_id.claimed_at_ms);
}

TEST_CASE("cache_key in a JSON payload wins, and data_omitted is kept") {
  auto r = map_notification(
      R"({"table":"posts","action":"insert","id":1,"cache_key":"post-page:1","data_omitted":true})");
  REQUIRE(r.invalidations.size() == 1);
  CHECK(r.invalidations[0].cache_key == "post-page:1");
  CHECK(r.invalidations[0].data_omitted);
  CHECK(r.invalidations[0].data_json.empty());
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
      {R"({"action":"update"})", "JSON payload has neither \"cache_key\" nor \"table\" and \"id\" or \"ids\""},
      {R"({"table":"posts"})", "JSON payload has neither \"cache_key\" nor \"table\" and \"id\" or \"ids\""},
      {R"({"table":"posts","id":{"a":1}})", "\"id\" is not a string or number"},
      {R"({"table":"posts","id":1,"action":"upsert"})", "unknown action \"upsert\""},
      {R"({"table":5,"id":1})", "\"table\" is not a string"},
      {R"({"cache_key":""})", "empty cache key"},
      {"key\twith\ttabs", "cache key contains control characters"},
      {std::string(1100, 'k'), "cache key longer than 1024 bytes"},
  };
  for (const auto& c : cases) {
    auto r = map_notification(c.payload);
    CHECK_MESSAGE(r.invalidations.empty(), c.payload);
    CHECK_MESSAGE(r.error == c.reason, c.payload);
  }
}

TEST_CASE("UTF-8 keys are accepted") {
  auto r = map_notification("produits:café-☕-𝄞");
  REQUIRE(r.invalidations.size() == 1);
  CHECK(r.invalidations[0].cache_key == "produits:café-☕-𝄞");
}

TEST_CASE("a malformed invalidated_at does not cost the change") {
  auto r = map_notification(R"({"cache_key":"a","invalidated_at":"yesterday"})");
  REQUIRE(r.invalidations.size() == 1);
  CHECK(r.invalidations[0].cache_key == "a");
  CHECK_FALSE(r.claimed_at_ms);
}

TEST_CASE("row data JSON cannot carry is left out, the change still goes; an infinite id refuses the payload") {
  auto r = map_notification(R"({"table":"orders","id":7,"data":{"total":2e308,"items":[1]}})");
  REQUIRE(r.invalidations.size() == 1);
  CHECK(r.invalidations[0].cache_key == "orders:7");
  CHECK(r.invalidations[0].data_json.empty());
  CHECK(r.invalidations[0].data_omitted);
  auto bad_id = map_notification(R"({"table":"orders","id":2e308})");
  CHECK(bad_id.invalidations.empty());
  CHECK(bad_id.error == "\"id\" is not a finite number");
}

TEST_CASE("a NUL inside a JSON string is seen, not cut off") {
  auto r = map_notification(R"({"cache_key":"posts:1\u0000x"})");
  CHECK(r.invalidations.empty());
  CHECK(r.error == "cache key contains control characters");
}

TEST_CASE("a truncate names the table's key: every key of the table is stale") {
  auto r = map_notification(R"({"table":"posts","action":"truncate","cache_key":"posts"})");
  REQUIRE(r.invalidations.size() == 1);
  CHECK(r.invalidations[0].cache_key == "posts");
  CHECK(r.invalidations[0].table == "posts");
  CHECK(r.invalidations[0].action == "truncate");
  CHECK(r.invalidations[0].id_json.empty());
  CHECK(r.error.empty());
}

TEST_CASE("an ids payload is one invalidation per id, in payload order") {
  auto r = map_notification(
      R"({"table":"other.posts","action":"update","ids":[1,"a:b",-7,"caf\u00e9"],"invalidated_at":5})");
  CHECK(r.error.empty());
  REQUIRE(r.invalidations.size() == 4);
  std::vector<std::string> keys, ids;
  for (const auto& inv : r.invalidations) {
    keys.push_back(inv.cache_key);
    ids.push_back(inv.id_json);
    CHECK(inv.table == "other.posts");
    CHECK(inv.action == "update");
    CHECK(inv.seq == 0);
    CHECK(inv.data_json.empty());
  }
  CHECK(keys == std::vector<std::string>{"other.posts:1", "other.posts:a:b", "other.posts:-7", "other.posts:café"});
  CHECK(ids == std::vector<std::string>{"1", "\"a:b\"", "-7", "\"café\""});
  CHECK(r.claimed_at_ms == 5);
}

TEST_CASE("an id's number is keyed by its text as written, as the store keys it") {
  // PostgreSQL writes numeric 1.50 as 1.50 and a numeric(30) as all its digits; a double would
  // print 1.5 and round the digits.
  auto r = map_notification(R"({"table":"prices","action":"delete","ids":[1.50,123456789012345678901234567890,1e3]})");
  REQUIRE(r.invalidations.size() == 3);
  CHECK(r.invalidations[0].cache_key == "prices:1.50");
  CHECK(r.invalidations[0].id_json == "1.50");
  CHECK(r.invalidations[1].cache_key == "prices:123456789012345678901234567890");
  CHECK(r.invalidations[2].cache_key == "prices:1e3");
  CHECK(r.invalidations[2].action == "delete");
}

TEST_CASE("a malformed ids payload is refused whole, with the reason") {
  struct Case {
    std::string payload;
    std::string reason;
  };
  std::vector<Case> cases = {
      {R"({"table":"t","action":"update","ids":[]})", "\"ids\" is empty"},
      {R"({"table":"t","action":"update","ids":1})", "\"ids\" is not an array"},
      {R"({"table":"t","action":"update","ids":"1,2"})", "\"ids\" is not an array"},
      {R"({"action":"update","ids":[1]})", "\"ids\" without \"table\""},
      {R"({"table":"","ids":[1]})", "\"ids\" without \"table\""},
      {R"({"table":"t","ids":[1,null]})", "\"ids\"[1] is not a string or number"},
      {R"({"table":"t","ids":[1,[2]]})", "\"ids\"[1] is not a string or number"},
      {R"({"table":"t","ids":[{"a":1}]})", "\"ids\"[0] is not a string or number"},
      {R"({"table":"t","ids":[true]})", "\"ids\"[0] is not a string or number"},
      {R"({"table":"t","ids":[1,2e308]})", "\"ids\"[1] is not a finite number"},
      {R"({"table":"t","ids":[1],"id":1})", "\"ids\" with \"id\""},
      {R"({"table":"t","ids":[1],"cache_key":"t:1"})", "\"ids\" with \"cache_key\""},
      {R"({"table":"t","ids":[1],"data":{"id":1}})", "\"ids\" with \"data\""},
      {R"({"table":"t","ids":[1],"action":"merge"})", "unknown action \"merge\""},
      {R"({"table":"t","ids":[1])", "malformed JSON"},
  };
  for (const auto& c : cases) {
    auto r = map_notification(c.payload);
    CHECK_MESSAGE(r.invalidations.empty(), c.payload);
    CHECK_MESSAGE(r.error == c.reason, c.payload);
  }
}

TEST_CASE("an id that makes no valid cache key is skipped alone, and named") {
  std::string long_id(1100, 'x');
  auto r = map_notification(R"({"table":"t","action":"insert","ids":[1,"a\tb",")" + long_id + R"(",2]})");
  REQUIRE(r.invalidations.size() == 2);
  CHECK(r.invalidations[0].cache_key == "t:1");
  CHECK(r.invalidations[1].cache_key == "t:2");
  CHECK(r.error == "\"ids\"[1]: cache key contains control characters (and 1 more ids skipped)");

  auto none = map_notification(R"({"table":"t","ids":["\u0000"]})");
  CHECK(none.invalidations.empty());
  CHECK(none.error == "\"ids\"[0]: cache key contains control characters");
}

TEST_CASE("an ids payload as the triggers split it: thousands of keys under 8000 bytes") {
  std::string payload = R"({"table":"bulk","action":"update","ids":[)";
  for (int i = 0; i < 1500; ++i) payload += (i ? "," : "") + std::to_string(100000 + i);
  payload += "]}";
  REQUIRE(payload.size() < 12000);
  auto r = map_notification(payload);
  CHECK(r.error.empty());
  REQUIRE(r.invalidations.size() == 1500);
  CHECK(r.invalidations.front().cache_key == "bulk:100000");
  CHECK(r.invalidations.back().cache_key == "bulk:101499");
}
