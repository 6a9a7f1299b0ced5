#include <doctest/doctest.h>

#include <set>
#include <sstream>
#include <string>

#include "metrics.h"

using namespace bridge;

TEST_CASE("every metric comes with # HELP and # TYPE, and every sample belongs to one") {
  Metrics metrics({"cache_invalidation"});
  metrics.http_sink_enabled = true;
  metrics.soketi.lag.observe(3);
  metrics.http_sink.lag.observe(4);
  std::istringstream lines(metrics.render("test"));
  std::set<std::string> helped, typed;
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      CHECK_MESSAGE(line.size() > 7 + name.size() + 1, "empty help for " << name);
      helped.insert(name);
    } else if (line.rfind("# TYPE ", 0) == 0) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      CHECK_MESSAGE(helped.count(name) == 1, "# TYPE without # HELP: " << name);
      typed.insert(name);
    } else {
      ++samples;
      std::string name = line.substr(0, line.find_first_of("{ "));
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (!typed.count(name) && name.size() > std::string(suffix).size() &&
            name.compare(name.size() - std::string(suffix).size(), std::string::npos, suffix) == 0) {
          name.resize(name.size() - std::string(suffix).size());
        }
      }
      CHECK_MESSAGE(typed.count(name) == 1, "sample without # TYPE: " << line);
    }
  }
  CHECK(samples > 30);
  CHECK(typed.count("cache_bridge_commit_to_publish_seconds") == 1);
  CHECK(typed.count("cache_bridge_wal_slot_lag_bytes") == 1);
}

TEST_CASE("the role is a gauge per role, 1 for the current one, with the takeovers counted") {
  Metrics metrics({"cache_invalidation"});
  std::string standby = metrics.render("t");
  CHECK(standby.find("# HELP cache_bridge_role ") != std::string::npos);
  CHECK(standby.find("# TYPE cache_bridge_role gauge\n") != std::string::npos);
  CHECK(standby.find("cache_bridge_role{role=\"active\"} 0\ncache_bridge_role{role=\"standby\"} 1\n") != std::string::npos);
  metrics.role_active = 1;
  ++metrics.takeovers;
  std::string active = metrics.render("t");
  CHECK(active.find("cache_bridge_role{role=\"active\"} 1\ncache_bridge_role{role=\"standby\"} 0\n") != std::string::npos);
  CHECK(active.find("cache_bridge_takeovers_total 1\n") != std::string::npos);
}
