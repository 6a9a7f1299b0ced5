#include <doctest/doctest.h>

#include "pusher_signer.h"
#include "snapshot.h"

using namespace bridge;

namespace {
constexpr const char* kKey = "app-key";
constexpr const char* kSecret = "app-secret";

std::optional<int> refused(const SnapshotQuery& q) {
  auto answer = check_snapshot_access(kKey, kSecret, q);
  return answer ? std::optional<int>(answer->status) : std::nullopt;
}
}  // namespace

TEST_CASE("public channels, cache- ones included, are open") {
  CHECK_FALSE(refused({"invalidations", "", "", "", ""}));
  CHECK_FALSE(refused({"cache-posts=3A1", "1700000000000", "", "", ""}));
}

TEST_CASE("malformed requests are 400") {
  CHECK(refused({"", "", "", "", ""}) == 400);
  CHECK(refused({"has space", "", "", "", ""}) == 400);
  CHECK(refused({std::string(201, 'a'), "", "", "", ""}) == 400);
  CHECK(refused({"invalidations", "yesterday", "", "", ""}) == 400);
  CHECK(refused({"invalidations", "-5", "", "", ""}) == 400);
  CHECK(refused({"private-encrypted-x", "", "1.2", "k:s", ""}) == 400);
}

TEST_CASE("private- channels need this socket's authorization for this channel") {
  std::string good = std::string(kKey) + ":" + hmac_sha256_hex(kSecret, "123.456:private-orders");
  CHECK_FALSE(refused({"private-orders", "", "123.456", good, ""}));
  CHECK(refused({"private-orders", "", "", "", ""}) == 401);
  CHECK(refused({"private-orders", "", "123.457", good, ""}) == 401);       // another socket
  CHECK(refused({"private-other", "", "123.456", good, ""}) == 401);        // another channel
  CHECK(refused({"private-orders", "", "123.456", "app-key:00", ""}) == 401);
  CHECK(refused({"private-orders", "", "not-a-socket", good, ""}) == 400);
  std::string forged = std::string(kKey) + ":" + hmac_sha256_hex("guess", "123.456:private-orders");
  CHECK(refused({"private-orders", "", "123.456", forged, ""}) == 401);
}

TEST_CASE("presence- channels sign the member data too") {
  std::string data = R"({"user_id":"7"})";
  std::string good = std::string(kKey) + ":" + hmac_sha256_hex(kSecret, "1.2:presence-room:" + data);
  CHECK_FALSE(refused({"presence-room", "", "1.2", good, data}));
  CHECK(refused({"presence-room", "", "1.2", good, ""}) == 401);
  CHECK(refused({"presence-room", "", "1.2", good, R"({"user_id":"8"})"}) == 401);
}
