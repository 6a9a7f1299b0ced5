#include <doctest/doctest.h>

#include "reconnect_backoff.h"

using namespace bridge;
using std::chrono::milliseconds;

TEST_CASE("reconnect waits double from 0.5 s to 30 s, up to half again longer, and start over once connected") {
  ReconnectBackoff backoff;
  milliseconds base{500};
  for (int i = 0; i < 10; ++i) {
    auto wait = backoff.next();
    CHECK(wait >= base);
    CHECK(wait <= base + base / 2);
    base = std::min(base * 2, milliseconds{30000});
  }
  backoff.reset();
  CHECK(backoff.next() <= milliseconds{750});
}
