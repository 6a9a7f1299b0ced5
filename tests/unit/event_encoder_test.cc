#include <doctest/doctest.h>

#include "event_encoder.h"

using namespace bridge;

TEST_CASE("event data carries what is known, in the seed's field names") {
  Invalidation inv;
  inv.cache_key = "posts:1";
  inv.seq = 1700000000122456;
  CHECK(encode_event_data(inv, 1000) ==
        R"({"cacheKey":"posts:1","invalidatedAt":1700000000123,"seq":1700000000122456})");

  inv.table = "posts";
  inv.action = "update";
  inv.id_json = "1";
  inv.data_json = R"({"id":1,"title":"t"})";
  inv.replay = true;
  CHECK(encode_event_data(inv, 1000) ==
        R"({"cacheKey":"posts:1","invalidatedAt":1700000000123,"seq":1700000000122456,"table":"posts","action":"update","id":1,"data":{"id":1,"title":"t"},"replay":true})");
}

TEST_CASE("row data is dropped when the event would exceed Soketi's payload limit") {
  Invalidation inv;
  inv.cache_key = "posts:1";
  inv.seq = 2;
  inv.data_json = "\"" + std::string(500, 'x') + "\"";
  std::string small = encode_event_data(inv, 200);
  CHECK(small == R"({"cacheKey":"posts:1","invalidatedAt":1,"seq":2,"dataOmitted":true})");
  CHECK(encode_event_data(inv, 1000).find("xxxx") != std::string::npos);
}

TEST_CASE("batch body") {
  std::vector<PusherEvent> events = {{"c1", "cache-invalidate", R"({"cacheKey":"a"})"},
                                     {"c2", "cache-invalidate", "{}"}};
  CHECK(encode_batch_body(events) ==
        R"({"batch":[{"channel":"c1","name":"cache-invalidate","data":"{\"cacheKey\":\"a\"}"},{"channel":"c2","name":"cache-invalidate","data":"{}"}]})");
}

TEST_CASE("snapshot body") {
  Invalidation a;
  a.cache_key = "posts:1";
  a.seq = 1999;
  a.table = "posts";
  Invalidation b;
  b.cache_key = "home";
  b.seq = 3000;
  CHECK(encode_snapshot("invalidations", {a, b}, false) ==
        R"({"channel":"invalidations","invalidations":[{"cacheKey":"posts:1","invalidatedAt":2,"seq":1999,"table":"posts"},{"cacheKey":"home","invalidatedAt":4,"seq":3000}],"truncated":false})");
}
