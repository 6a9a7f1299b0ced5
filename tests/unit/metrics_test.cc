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
