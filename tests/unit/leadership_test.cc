#include <doctest/doctest.h>

#include "leadership.h"

using namespace bridge;

TEST_CASE("the advisory lock key is FNV-1a 64 of \"cache_bridge:\" + the name, as a signed bigint") {
  // Computed independently (Python): stable across builds, so operators can look it up in pg_locks.
  CHECK(lock_key_of("default") == -6342180831392901712LL);
  CHECK(lock_key_of("default") == lock_key_of(std::string("def") + "ault"));
  CHECK(lock_key_of("default") != lock_key_of("Default"));
  CHECK(lock_key_of("slot:cache_bridge") != lock_key_of("cache_bridge"));
}

TEST_CASE("standby is logged once per standby period, the takeover with how long it waited") {
  RoleLog log("cursor default");
  auto first = log.standby(1000);
  REQUIRE(first);
  CHECK(first->find("standby: another bridge holds cursor default; waiting") == 0);
  CHECK(log.in_standby());
  CHECK_FALSE(log.standby(2000));
  CHECK_FALSE(log.standby(3000));
  CHECK(log.active(3400) == "active: took over cursor default after 2400 ms in standby (last seen held 400 ms before)");
  CHECK_FALSE(log.in_standby());
  // The lock session ends; the next standby period is logged again.
  log.lost();
  CHECK(log.standby(5000));
  CHECK_FALSE(log.standby(6000));
}

TEST_CASE("a bridge that takes the lock without waiting says it holds it") {
  RoleLog log("slot cache_bridge");
  CHECK(log.active(10) == "active: holding slot cache_bridge");
  log.lost();
  CHECK(log.active(20) == "active: holding slot cache_bridge");
}
