#include <doctest/doctest.h>

#include "wal_mapper.h"

using namespace bridge;
using namespace bridge::pgoutput;

namespace {

constexpr uint32_t kInt4 = 23, kText = 25, kBool = 16, kJsonb = 3802, kNumeric = 1700;

Relation posts() {
  Relation r;
  r.id = 7;
  r.schema = "public";
  r.name = "posts";
  r.columns = {{"id", kInt4, true}, {"title", kText, false}, {"body", kText, false}, {"ok", kBool, false}};
  return r;
}

Value text(std::string s) { return Value{Value::Kind::kText, std::move(s)}; }
Value null() { return Value{Value::Kind::kNull, {}}; }
Value unchanged() { return Value{Value::Kind::kUnchangedToast, {}}; }

RowChange change(RowChange::Kind kind, std::optional<Tuple> old_tuple, std::optional<Tuple> new_tuple,
                 bool old_is_full = false) {
  RowChange c;
  c.kind = kind;
  c.relation_id = 7;
  c.old_tuple = std::move(old_tuple);
  c.old_is_full = old_is_full;
  c.new_tuple = std::move(new_tuple);
  return c;
}

}  // namespace

TEST_CASE("an insert is keyed <table>:<key text> with a typed id") {
  auto m = map_row_change(posts(), {"posts", "id", false},
                          change(RowChange::Kind::kInsert, std::nullopt, Tuple{text("1"), text("a"), null(), text("t")}));
  REQUIRE(m.invalidations.size() == 1);
  CHECK(m.error.empty());
  CHECK(m.invalidations[0].cache_key == "posts:1");
  CHECK(m.invalidations[0].table == "posts");
  CHECK(m.invalidations[0].action == "insert");
  CHECK(m.invalidations[0].id_json == "1");
  CHECK(m.invalidations[0].data_json.empty());  // row data is opt-in
}

TEST_CASE("row data: typed values, unchanged TOASTed columns left out") {
  auto m = map_row_change(posts(), {"posts", "id", true},
                          change(RowChange::Kind::kUpdate, std::nullopt,
                                 Tuple{text("1"), text("say \"hi\""), unchanged(), text("f")}));
  REQUIRE(m.invalidations.size() == 1);
  CHECK(m.invalidations[0].action == "update");
  CHECK(m.invalidations[0].data_json == R"({"id":1,"title":"say \"hi\"","ok":false})");
}

TEST_CASE("a key change makes the old key stale too") {
  auto m = map_row_change(posts(), {"posts", "id", false},
                          change(RowChange::Kind::kUpdate, Tuple{text("1"), null(), null(), null()},
                                 Tuple{text("2"), text("a"), null(), null()}));
  REQUIRE(m.invalidations.size() == 2);
  CHECK(m.invalidations[0].cache_key == "posts:1");
  CHECK(m.invalidations[0].action == "delete");
  CHECK(m.invalidations[1].cache_key == "posts:2");
  CHECK(m.invalidations[1].action == "update");
}

TEST_CASE("a delete carries the identity's columns only, unless the identity is FULL") {
  auto identity = map_row_change(posts(), {"posts", "id", true},
                                 change(RowChange::Kind::kDelete, Tuple{text("3"), null(), null(), null()}, std::nullopt));
  REQUIRE(identity.invalidations.size() == 1);
  CHECK(identity.invalidations[0].action == "delete");
  CHECK(identity.invalidations[0].data_json == R"({"id":3})");

  auto full = map_row_change(posts(), {"posts", "id", true},
                             change(RowChange::Kind::kDelete, Tuple{text("3"), text("x"), null(), text("t")},
                                    std::nullopt, /*old_is_full=*/true));
  CHECK(full.invalidations[0].data_json == R"({"id":3,"title":"x","body":null,"ok":true})");
}

TEST_CASE("a key the change does not carry is an error, a NULL key no invalidation") {
  Relation r = posts();
  auto by_title = map_row_change(r, {"posts", "title", false},
                                 change(RowChange::Kind::kDelete, Tuple{text("3"), null(), null(), null()}, std::nullopt));
  CHECK(by_title.invalidations.empty());
  CHECK(by_title.error.find("REPLICA IDENTITY FULL") != std::string::npos);

  auto null_key = map_row_change(r, {"posts", "title", false},
                                 change(RowChange::Kind::kInsert, std::nullopt, Tuple{text("3"), null(), null(), null()}));
  CHECK(null_key.invalidations.empty());
  CHECK(null_key.error.empty());

  auto missing = map_row_change(r, {"posts", "slug", false},
                                change(RowChange::Kind::kInsert, std::nullopt, Tuple{text("3"), null(), null(), null()}));
  CHECK(missing.error.find("no column slug") != std::string::npos);

  auto not_utf8 = map_row_change(r, {"posts", "title", false},
                                 change(RowChange::Kind::kInsert, std::nullopt, Tuple{text("3"), text("\xff"), null(), null()}));
  CHECK(not_utf8.invalidations.empty());
  CHECK_FALSE(not_utf8.error.empty());
}

TEST_CASE("a row too large to carry is left out, flagged") {
  auto m = map_row_change(posts(), {"posts", "id", true},
                          change(RowChange::Kind::kInsert, std::nullopt,
                                 Tuple{text("1"), text(std::string(kMaxRowDataBytes, 'x')), null(), null()}));
  REQUIRE(m.invalidations.size() == 1);
  CHECK(m.invalidations[0].data_json.empty());
  CHECK(m.invalidations[0].data_omitted);
}

TEST_CASE("TRUNCATE makes the whole table stale: its name is the key") {
  Invalidation inv = map_truncate({"other.posts", "id", false});
  CHECK(inv.cache_key == "other.posts");
  CHECK(inv.table == "other.posts");
  CHECK(inv.action == "truncate");
}

TEST_CASE("values become JSON by their type") {
  CHECK(json_of_value(kInt4, "-12") == "-12");
  CHECK(json_of_value(kNumeric, "1.50") == "1.50");
  CHECK(json_of_value(kNumeric, "NaN") == R"("NaN")");
  CHECK(json_of_value(701, "Infinity") == R"("Infinity")");
  CHECK(json_of_value(701, "1e+300") == "1e+300");
  CHECK(json_of_value(kInt4, "01") == R"("01")");  // never a malformed number
  CHECK(json_of_value(kBool, "t") == "true");
  CHECK(json_of_value(kJsonb, R"({"a": [1, 2]})") == R"({"a": [1, 2]})");
  CHECK(json_of_value(kJsonb, R"({"a": 1} trailing)") == R"("{\"a\": 1} trailing")");
  CHECK(json_of_value(kText, "line\nbreak") == R"("line\nbreak")");
  CHECK(json_of_value(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11") == R"("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")");
}
