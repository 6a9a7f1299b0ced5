// Unit tests of the channel-name rule (bridge/channel_name.h), with the vectors shared by
// tests/integration/channel-name.test.mjs, which pins the JavaScript twin to the same output.
#include <doctest/doctest.h>

#include <cctype>
#include <string>
#include <vector>

#include "channel_name.h"

using namespace bridge;

namespace {

std::string repeat(std::string_view text, size_t times) {
  std::string out;
  for (size_t i = 0; i < times; ++i) out += text;
  return out;
}

struct Vector {
  std::string channel_template;
  std::string table;
  std::string cache_key;
  std::string expected;
};

// SHARED VECTORS: keep identical to kVectors in tests/integration/channel-name.test.mjs.
// The hashed outputs were computed with this implementation and checked with sha256sum.
const std::vector<Vector> kVectors = {
    {"invalidations", "posts", "posts:1", "invalidations"},
    {"cache-{key}", "posts", "posts:1", "cache-posts=3A1"},
    {"cache-{key}", "posts", "posts-1", "cache-posts-1"},
    {"cache-{key}", "posts", "café", "cache-caf=C3=A9"},
    {"cache-{key}", "posts", "a=b", "cache-a=3Db"},
    {"cache-{key}", "posts", "\U0001F600", "cache-=F0=9F=98=80"},
    {"cache-{key}", "posts", "a b/c", "cache-a=20b=2Fc"},
    {"cache-{key}", "posts", "", "cache-"},
    {"cache-{table}-{key}", "public.posts", "posts:1", "cache-public.posts-posts=3A1"},
    {"{key}.{key}", "t", "k:1", "k=3A1.k=3A1"},
    {"x-{unknown}", "t", "k", "x-{unknown}"},
    {"{key}", "", repeat("a", 200), repeat("a", 200)},
    {"{key}", "", repeat("a", 201), repeat("a", 182) + "=ha92efd82109373e5"},
    {"cache-{key}", "posts", repeat("x", 299) + "a",
     "cache-" + repeat("x", 176) + "=ha75d853983ba97e1"},
    {"cache-{key}", "posts", repeat("x", 299) + "b",
     "cache-" + repeat("x", 176) + "=h9e1b9340881491f4"},
    {"cache-{key}", "posts", repeat("é", 100), "cache-" + repeat("=C3=A9", 29) + "=h798bc8a0a3acef59"},
};

bool is_lower_hex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("shared vectors (identical in the JavaScript twin's test)") {
  for (const auto& v : kVectors) {
    CAPTURE(v.channel_template);
    CAPTURE(v.cache_key);
    CHECK(expand_channel(v.channel_template, v.table, v.cache_key) == v.expected);
  }
}

TEST_CASE("escaping is injective where the old '-' rule was not") {
  CHECK(expand_channel("{key}", "t", "posts:1") == "posts=3A1");
  CHECK(expand_channel("{key}", "t", "posts-1") == "posts-1");
  CHECK(expand_channel("{key}", "t", "posts:1") != expand_channel("{key}", "t", "posts-1"));
  CHECK(expand_channel("{key}", "t", "a=b") == "a=3Db");
  CHECK(expand_channel("{key}", "t", "a=3Db") == "a=3D3Db");  // '=' is escaped, so no clash
  CHECK(expand_channel("{key}", "t", "café") == "caf=C3=A9");
  CHECK(expand_channel("{table}", "A-Z_az09@,.;", "k") == "A-Z_az09@,.;");
}

TEST_CASE("each byte of a 4-byte UTF-8 character becomes its own escape") {
  std::string name = expand_channel("{key}", "t", "\U0001F600");  // U+1F600, F0 9F 98 80
  CHECK(name == "=F0=9F=98=80");
  CHECK(name.size() == 4 * 3);
}

TEST_CASE("literal template text is kept and placeholders repeat") {
  CHECK(expand_channel("cache-{table}-{key}", "posts", "1") == "cache-posts-1");
  CHECK(expand_channel("{key}-{key}", "t", "a:b") == "a=3Ab-a=3Ab");
  CHECK(expand_channel("{table}{table}", "t", "k") == "tt");
  CHECK(expand_channel("invalidations", "t", "k") == "invalidations");
}

TEST_CASE("a 300-character key gives a hashed name of at most 200 characters") {
  const std::string key_a = repeat("x", 299) + "a";
  const std::string key_b = repeat("x", 299) + "b";
  std::string a = expand_channel("cache-{key}", "posts", key_a);
  std::string b = expand_channel("cache-{key}", "posts", key_b);
  CHECK(a.size() <= kMaxChannelNameLength);
  CHECK(a.starts_with("cache-"));
  REQUIRE(a.size() >= 18);
  CHECK(a.substr(a.size() - 18, 2) == "=h");
  CHECK(is_lower_hex(a.substr(a.size() - 16)));
  CHECK(a != b);  // the hash covers the whole name, so the last character still counts
}

TEST_CASE("a long multi-byte key is never cut inside an escape") {
  for (const std::string unit : {"é", "\U0001F600", "\u20AC", "a\u00E9", "ab\u00E9", "a:"}) {
    CAPTURE(unit);
    for (size_t prefix = 0; prefix < 4; ++prefix) {
      std::string name = expand_channel(repeat("c", prefix) + "{key}", "t", repeat(unit, 120));
      CHECK(name.size() <= kMaxChannelNameLength);
      size_t marker = name.rfind("=h");
      REQUIRE(marker != std::string::npos);
      CHECK(marker + 18 == name.size());
      CHECK(marker <= 182);
      std::string before = name.substr(0, marker);
      REQUIRE(before.size() >= 2);
      CHECK(before[before.size() - 1] != '=');
      CHECK(before[before.size() - 2] != '=');
    }
  }
}

TEST_CASE("exactly 200 characters is not hashed, 201 is") {
  CHECK(expand_channel("{key}", "t", repeat("a", 200)) == repeat("a", 200));
  std::string hashed = expand_channel("{key}", "t", repeat("a", 201));
  CHECK(hashed.size() == 200);
  CHECK(hashed.substr(182, 2) == "=h");
  // Escapes count at their expanded length: 66 ':' are 198 characters, 67 are 201.
  CHECK(expand_channel("{key}", "t", repeat(":", 66)) == repeat("=3A", 66));
  CHECK(expand_channel("{key}", "t", repeat(":", 67)).find("=h") != std::string::npos);
}

TEST_CASE("a hashed name cannot equal an unhashed one") {
  // Unhashed names only contain '=' followed by uppercase hex; "=h" is only ever the marker.
  std::string hashed = expand_channel("{key}", "t", repeat("a", 201));
  std::string lookalike = expand_channel("{key}", "t", hashed.substr(150));  // short: unhashed
  CHECK(lookalike == repeat("a", 32) + "=3Dha92efd82109373e5");
  CHECK(lookalike.find("=h") == std::string::npos);
}

TEST_CASE("valid channel templates") {
  std::string why = "untouched";
  CHECK(is_valid_channel_template("invalidations", &why));
  CHECK(is_valid_channel_template("cache-{key}", &why));
  CHECK(is_valid_channel_template("private-{table}", &why));
  CHECK(is_valid_channel_template("{key}", &why));
  CHECK(is_valid_channel_template("a_b-c=d@e,f.g;h{table}{key}", &why));
  CHECK(is_valid_channel_template(repeat("a", 200) + "{key}", &why));
  CHECK(why == "untouched");
  CHECK(is_valid_channel_template("cache-{key}", nullptr));
}

TEST_CASE("invalid channel templates say why") {
  std::string why;
  CHECK_FALSE(is_valid_channel_template("a b", &why));
  CHECK(why.find("byte 32") != std::string::npos);
  CHECK_FALSE(is_valid_channel_template("x:{key}", &why));
  CHECK(why.find("':'") != std::string::npos);
  CHECK_FALSE(is_valid_channel_template("", &why));
  CHECK(why == "is empty");
  CHECK_FALSE(is_valid_channel_template("x-{unknown}", &why));
  CHECK_FALSE(is_valid_channel_template("café", &why));
  CHECK_FALSE(is_valid_channel_template(repeat("a", 201), &why));
  CHECK(why.find("201") != std::string::npos);
  CHECK_FALSE(is_valid_channel_template("a b", nullptr));
}

TEST_CASE("could_be_expanded_from refuses names the template cannot produce") {
  CHECK(could_be_expanded_from("invalidations", "invalidations"));
  CHECK_FALSE(could_be_expanded_from("invalidations", "invalidations2"));
  CHECK_FALSE(could_be_expanded_from("invalidations", "random-7"));
  CHECK(could_be_expanded_from("cache-{key}", expand_channel("cache-{key}", "", "posts:1")));
  CHECK(could_be_expanded_from("cache-{key}", "cache-"));  // an empty key
  CHECK_FALSE(could_be_expanded_from("cache-{key}", "private-x"));
  CHECK_FALSE(could_be_expanded_from("cache-{key}", "cache-a b"));
  CHECK(could_be_expanded_from("t-{table}-k-{key}-end", expand_channel("t-{table}-k-{key}-end", "posts", "1")));
  CHECK_FALSE(could_be_expanded_from("t-{table}-k-{key}-end", "t-posts-1-end"));  // no "-k-"
  std::string hashed = expand_channel("cache-{key}-tail", "", std::string(300, 'x'));
  CHECK(hashed.size() <= 200);
  CHECK(could_be_expanded_from("cache-{key}-tail", hashed));  // the tail was cut, the hash is there
  CHECK_FALSE(could_be_expanded_from("cache-{key}", std::string(201, 'c')));
}
