#include <doctest/doctest.h>

#include "pusher_signer.h"

using namespace bridge;

TEST_CASE("signature matches Pusher's documented worked example") {
  const std::string body = R"({"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"})";
  CHECK(md5_hex(body) == "ec365a775a4cd0599faeb73354201b6f");

  std::string query = signed_query("POST", "/apps/3/events", {}, body, "278d425bdf160c739803",
                                   "7ad3773142a6692b25b8", 1353088179);
  CHECK(query ==
        "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
        "&body_md5=ec365a775a4cd0599faeb73354201b6f"
        "&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
}

TEST_CASE("a GET without body has no body_md5 and sorts extra parameters") {
  std::string query = signed_query("GET", "/apps/3/channels", {{"filter_by_prefix", "cache-"}}, "",
                                   "key", "secret", 1000);
  CHECK(query.find("body_md5") == std::string::npos);
  std::string expected_unsigned = "auth_key=key&auth_timestamp=1000&auth_version=1.0&filter_by_prefix=cache-";
  CHECK(query.rfind(expected_unsigned, 0) == 0);
  CHECK(query.substr(expected_unsigned.size()) ==
        "&auth_signature=" +
            hmac_sha256_hex("secret", "GET\n/apps/3/channels\n" + expected_unsigned));
}

TEST_CASE("signature comparison") {
  std::string sig = hmac_sha256_hex("secret", "body");
  CHECK(sig.size() == 64);
  CHECK(signatures_match(sig, sig));
  std::string upper = sig;
  for (auto& c : upper) c = static_cast<char>(toupper(c));
  CHECK(signatures_match(sig, upper));
  std::string flipped = sig;
  flipped[10] = flipped[10] == 'a' ? 'b' : 'a';
  CHECK_FALSE(signatures_match(sig, flipped));
  CHECK_FALSE(signatures_match(sig, sig.substr(0, 63)));
  CHECK_FALSE(signatures_match(sig, ""));
}

TEST_CASE("channel authorization as Pusher's auth endpoints sign it") {
  // Pusher's documented example: key 278d425bdf160c739803, secret 7ad3773142a6692b25b8.
  const char* key = "278d425bdf160c739803";
  const char* secret = "7ad3773142a6692b25b8";
  std::string auth = std::string(key) + ":" + hmac_sha256_hex(secret, "1234.1234:private-foobar");
  CHECK(auth == "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
  CHECK(channel_auth_valid(key, secret, "1234.1234", "private-foobar", "", auth));
  CHECK_FALSE(channel_auth_valid(key, secret, "1234.1235", "private-foobar", "", auth));  // other socket
  CHECK_FALSE(channel_auth_valid(key, secret, "1234.1234", "private-other", "", auth));   // other channel
  CHECK_FALSE(channel_auth_valid("other-key", secret, "1234.1234", "private-foobar", "", auth));
  CHECK_FALSE(channel_auth_valid(key, secret, "1234.1234", "private-foobar", "", "no-colon"));
  CHECK_FALSE(channel_auth_valid(key, secret, "1234.1234", "private-foobar", "", std::string(key) + ":"));
  std::string data = R"({"user_id":"1"})";
  std::string presence = std::string(key) + ":" + hmac_sha256_hex(secret, "1.2:presence-x:" + data);
  CHECK(channel_auth_valid(key, secret, "1.2", "presence-x", data, presence));
  CHECK_FALSE(channel_auth_valid(key, secret, "1.2", "presence-x", "", presence));
}
