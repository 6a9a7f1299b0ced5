#include <doctest/doctest.h>

#include "change_clock.h"
#include "invalidation.h"

using namespace bridge;

TEST_CASE("seq strictly increases even when the clock stands still or goes back") {
  int64_t now_us = 1'700'000'000'000'000;
  ChangeClock clock(0, 0, [&] { return now_us; });
  int64_t a = clock.next();
  int64_t b = clock.next();  // same microsecond
  now_us -= 5'000'000;       // the wall clock steps back 5 s
  int64_t c = clock.next();
  CHECK(a == 1'700'000'000'000'000);
  CHECK(b == a + 1);
  CHECK(c == b + 1);
  CHECK(clock.last() == c);
}

TEST_CASE("invalidatedAt is the first millisecond after the stamp") {
  CHECK(invalidated_at_of(1'700'000'000'000'000) == 1'700'000'000'001);
  CHECK(invalidated_at_of(1'700'000'000'000'999) == 1'700'000'000'001);
  CHECK(invalidated_at_of(1'700'000'000'001'000) == 1'700'000'000'002);
}

TEST_CASE("the margin moves every stamp later") {
  ChangeClock clock(250'000, 0, [] { return int64_t{1'000'000'000}; });
  CHECK(clock.next() == 1'000'250'000);
}

TEST_CASE("a frozen clock gives equal invalidatedAt and distinct seq") {
  ChangeClock clock(0, 1'700'000'000'000, [] { return int64_t{0}; });
  int64_t a = clock.next();
  int64_t b = clock.next();
  CHECK(invalidated_at_of(a) == invalidated_at_of(b));
  CHECK(b > a);
}

TEST_CASE("resume_after continues past a persisted seq") {
  ChangeClock clock(0, 0, [] { return int64_t{1000}; });
  clock.resume_after(5000);
  CHECK(clock.next() == 5001);
  clock.resume_after(10);  // never backwards
  CHECK(clock.next() == 5002);
}

TEST_CASE("of two changes in one millisecond the larger seq wins, whatever the order") {
  Invalidation older;
  older.cache_key = "r:30";
  older.seq = 100;
  older.action = "update";
  older.data_json = R"({"v":"x"})";
  Invalidation newer = older;
  newer.seq = 101;
  newer.data_json = R"({"v":"b"})";
  CHECK(newest_of(older, newer).data_json == R"({"v":"b"})");
  CHECK(newest_of(newer, older).data_json == R"({"v":"b"})");
}

TEST_CASE("a replay of the pending change keeps the change's details and is no longer a replay") {
  Invalidation live;
  live.cache_key = "k";
  live.seq = 42;
  live.action = "update";
  Invalidation replay;
  replay.cache_key = "k";
  replay.seq = 42;
  replay.replay = true;
  for (auto merged : {newest_of(live, replay), newest_of(replay, live)}) {
    CHECK(merged.action == "update");
    CHECK_FALSE(merged.replay);
  }
}
