#include <doctest/doctest.h>

#include "event_encoder.h"

using namespace bridge;

TEST_CASE("channel templates expand {table} and {key}, keeping names Pusher accepts") {
  CHECK(expand_channel("invalidations", "posts", "posts:1") == "invalidations");
  CHECK(expand_channel("cache-{table}", "posts", "posts:1") == "cache-posts");
  CHECK(expand_channel("cache-{key}", "posts", "posts:1") == "cache-posts-1");
  CHECK(expand_channel("{table}.{key}", "", "a b/c") == ".a-b-c");
  CHECK(expand_channel("x-{unknown}", "t", "k") == "x-{unknown}");
}

TEST_CASE("event data carries what is known, in the seed's field names") {
  Invalidation inv;
  inv.cache_key = "posts:1";
  inv.invalidated_at_ms = 1700000000123;
  CHECK(encode_event_data(inv, 1000) == R"({"cacheKey":"posts:1","invalidatedAt":1700000000123})");

  inv.table = "posts";
  inv.action = "update";
  inv.id_json = "1";
  inv.data_json = R"({"id":1,"title":"t"})";
  inv.replay = true;
  CHECK(encode_event_data(inv, 1000) ==
        R"({"cacheKey":"posts:1","invalidatedAt":1700000000123,"table":"posts","action":"update","id":1,"data":{"id":1,"title":"t"},"replay":true})");
}

TEST_CASE("row data is dropped when the event would exceed Soketi's payload limit") {
  Invalidation inv;
  inv.cache_key = "posts:1";
  inv.invalidated_at_ms = 1;
  inv.data_json = "\"" + std::string(500, 'x') + "\"";
  std::string small = encode_event_data(inv, 200);
  CHECK(small == R"({"cacheKey":"posts:1","invalidatedAt":1,"dataOmitted":true})");
  CHECK(encode_event_data(inv, 1000).find("xxxx") != std::string::npos);
}

TEST_CASE("batch body") {
  std::vector<PusherEvent> events = {{"c1", "cache-invalidate", R"({"cacheKey":"a"})"},
                                     {"c2", "cache-invalidate", "{}"}};
  CHECK(encode_batch_body(events) ==
        R"({"batch":[{"channel":"c1","name":"cache-invalidate","data":"{\"cacheKey\":\"a\"}"},{"channel":"c2","name":"cache-invalidate","data":"{}"}]})");
}
