#include <doctest/doctest.h>

#include "env_file.h"

using namespace bridge;

TEST_CASE(".env parsing accepts what Soketi's and compose's .env files contain") {
  auto result = parse_env_text(
      "# comment\n"
      "\n"
      "PLAIN=value\n"
      "SPACED = spaced value  \n"
      "export EXPORTED=1\n"
      "DOUBLE=\"a \\\"quoted\\\" value # not a comment\"\n"
      "SINGLE='literal \\n'\n"
      "INLINE=value # a comment\n"
      "EMPTY=\n"
      "URL=postgresql://u:p@h:5432/db?sslmode=require\r\n");
  CHECK(result.errors.empty());
  CHECK(result.values.at("PLAIN") == "value");
  CHECK(result.values.at("SPACED") == "spaced value");
  CHECK(result.values.at("EXPORTED") == "1");
  CHECK(result.values.at("DOUBLE") == "a \"quoted\" value # not a comment");
  CHECK(result.values.at("SINGLE") == "literal \\n");
  CHECK(result.values.at("INLINE") == "value");
  CHECK(result.values.at("EMPTY") == "");
  CHECK(result.values.at("URL") == "postgresql://u:p@h:5432/db?sslmode=require");
}

TEST_CASE(".env errors name the line and never echo a value") {
  auto result = parse_env_text("GOOD=1\nno equals sign\n1BAD=x\nSECRET=\"hunter2\n");
  REQUIRE(result.errors.size() == 3);
  CHECK(result.errors[0] == "line 2: expected KEY=VALUE");
  CHECK(result.errors[1] == "line 3: invalid key name");
  CHECK(result.errors[2] == "line 4: SECRET has an unterminated quote");
  for (const auto& e : result.errors) CHECK(e.find("hunter2") == std::string::npos);
  CHECK(result.values.at("GOOD") == "1");
}

TEST_CASE("a missing .env is an error only when it was asked for") {
  CHECK(read_env_file("/nonexistent/.env", false).errors.empty());
  CHECK(read_env_file("/nonexistent/.env", true).errors.size() == 1);
}
