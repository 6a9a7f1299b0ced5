#include <doctest/doctest.h>

#include "secret_redactor.h"

using namespace bridge;

TEST_CASE("the password of a URI, as written and decoded") {
  auto s = conninfo_secrets("postgresql://app:s3cr%40t@db.example.com:5432/app");
  CHECK(s == std::vector<std::string>{"s3cr%40t", "s3cr@t"});
  CHECK(conninfo_secrets("postgres://app@db/app").empty());
  CHECK(conninfo_secrets("postgresql://db/app?user=x&password=hunter22&sslmode=require") ==
        std::vector<std::string>{"hunter22"});
}

TEST_CASE("a malformed URI's password is still found: libpq would echo it") {
  // '%ss' is no valid escape, and libpq's error message quotes it.
  auto s = conninfo_secrets("postgresql://app:Pa%ss@127.0.0.1:5432/postgres");
  CHECK(s == std::vector<std::string>{"Pa%ss"});
  std::string libpq = "invalid percent-encoded token: \"Pa%ss\"";
  CHECK(redact(libpq, s) == "invalid percent-encoded token: \"[redacted]\"");
  // An '@' inside the password (unencoded): the last '@' before the path ends the userinfo.
  CHECK(conninfo_secrets("postgresql://app:a@b@host/db") == std::vector<std::string>{"a@b"});
}

TEST_CASE("key=value conninfo, bare and quoted") {
  CHECK(conninfo_secrets("host=db user=app password=hunter22 dbname=app") ==
        std::vector<std::string>{"hunter22"});
  CHECK(conninfo_secrets("host=db password = 'it\\'s secret' dbname=app") ==
        std::vector<std::string>{"it\\'s secret", "it's secret"});
  CHECK(conninfo_secrets("host=db passwordfile=/x").empty());
  CHECK(conninfo_secrets("host=db").empty());
}

TEST_CASE("redact blanks every occurrence, longest secret first, and leaves short ones alone") {
  CHECK(redact("a hunter22 b hunter22", {"hunter22"}) == "a [redacted] b [redacted]");
  CHECK(redact("abcdef", {"abc", "abcdef"}) == "[redacted]");
  CHECK(redact("x = a", {"a"}) == "x = a");
  CHECK(redact("nothing here", {}) == "nothing here");
}
