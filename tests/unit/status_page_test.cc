#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <rapidjson/document.h>

#include <string>

#include "status_page.h"

using namespace bridge;

namespace {

StatusSnapshot sample() {
  StatusSnapshot s;
  s.version = "1.2.3";
  s.source = "notify";
  s.now_ms = 1'700'000'000'500;
  s.started_ms = 1'700'000'000'000;
  s.ready = false;
  s.ready_reason = "Soketi not probed yet";
  s.pg_connected = true;
  s.pg_reconnects = 2;
  s.notify_queue_usage = 0.25;
  s.queue_depth = 7;
  s.queue_max_keys = 10000;
  s.changes_received = 40;
  s.events_published = 30;
  s.batches_published = 5;
  s.errors_timeout = 1;
  s.errors_server = 2;
  s.errors_rejected = 3;
  s.errors_throttled = 4;
  s.publish_retries = 6;
  s.events_dropped = 1;
  s.cursor_lag_seconds = 1.5;
  RecentInvalidation r;
  r.cache_key = "posts:<img src=x onerror=alert(1)>";
  r.channel = "invalidations";
  r.table = "posts";
  r.action = "update";
  r.seq = 1'700'000'000'400'000;
  r.invalidated_at_ms = 1'700'000'000'401;
  r.published_at_ms = 1'700'000'000'402;
  r.latency_ms = 2.5;
  s.recent.push_back(r);
  return s;
}

rapidjson::Document parse(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str(), json.size());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

}  // namespace

TEST_CASE("status JSON: readiness, queue, publishing, errors, lag and the recent list") {
  auto d = parse(render_status_json(sample()));
  CHECK(std::string(d["version"].GetString()) == "1.2.3");
  CHECK(std::string(d["source"].GetString()) == "notify");
  CHECK(d["nowMs"].GetInt64() == 1'700'000'000'500);
  CHECK(d["ready"].GetBool() == false);
  CHECK(std::string(d["readyReason"].GetString()) == "Soketi not probed yet");
  CHECK(d["postgres"]["connected"].GetBool());
  CHECK(d["postgres"]["reconnects"].GetUint64() == 2);
  CHECK(d["postgres"]["notifyQueueUsage"].GetDouble() == doctest::Approx(0.25));
  CHECK(d["queue"]["depth"].GetInt64() == 7);
  CHECK(d["queue"]["maxKeys"].GetUint64() == 10000);
  CHECK(d["published"]["events"].GetUint64() == 30);
  CHECK(d["published"]["batches"].GetUint64() == 5);
  CHECK(d["published"]["received"].GetUint64() == 40);
  CHECK(d["errors"]["timeout"].GetUint64() == 1);
  CHECK(d["errors"]["server"].GetUint64() == 2);
  CHECK(d["errors"]["rejected"].GetUint64() == 3);
  CHECK(d["errors"]["throttled"].GetUint64() == 4);
  CHECK(d["errors"]["retries"].GetUint64() == 6);
  CHECK(d["errors"]["dropped"].GetUint64() == 1);
  CHECK(d["errors"]["lastProblem"].IsNull());
  CHECK(d["lag"]["cursorSeconds"].GetDouble() == doctest::Approx(1.5));
  CHECK_FALSE(d["lag"].HasMember("slotBytes"));
  REQUIRE(d["recent"].Size() == 1);
  const auto& r = d["recent"][0];
  // The key as is: the page renders it as text (the JSON is no markup).
  CHECK(std::string(r["cacheKey"].GetString()) == "posts:<img src=x onerror=alert(1)>");
  CHECK(std::string(r["channel"].GetString()) == "invalidations");
  CHECK(std::string(r["table"].GetString()) == "posts");
  CHECK(std::string(r["action"].GetString()) == "update");
  CHECK(r["seq"].GetInt64() == 1'700'000'000'400'000);
  CHECK(r["invalidatedAt"].GetInt64() == 1'700'000'000'401);
  CHECK(r["publishedAt"].GetInt64() == 1'700'000'000'402);
  CHECK(r["latencyMs"].GetDouble() == doctest::Approx(2.5));
  CHECK(r["replay"].GetBool() == false);
}

TEST_CASE("status JSON: the WAL source shows the slot's lag; a ready bridge no reason") {
  StatusSnapshot s = sample();
  s.source = "wal";
  s.ready = true;
  s.ready_reason = "left over";
  s.slot_lag_bytes = 4096;
  s.slot_lag_seconds = 0.75;
  auto d = parse(render_status_json(s));
  CHECK(d["ready"].GetBool());
  CHECK(std::string(d["readyReason"].GetString()).empty());
  CHECK(d["lag"]["slotBytes"].GetInt64() == 4096);
  CHECK(d["lag"]["slotSeconds"].GetDouble() == doctest::Approx(0.75));
  CHECK_FALSE(d["lag"].HasMember("cursorSeconds"));
}

TEST_CASE("status JSON: the last problem, with invalid UTF-8 escaped rather than breaking the JSON") {
  StatusSnapshot s = sample();
  s.last_problem = StatusSnapshot::Problem{1'700'000'000'100, "warn", "publishing failed: \xff\xfe \"quoted\"\n"};
  s.recent.clear();
  auto d = parse(render_status_json(s));
  const auto& p = d["errors"]["lastProblem"];
  CHECK(p["timeMs"].GetInt64() == 1'700'000'000'100);
  CHECK(std::string(p["level"].GetString()) == "warn");
  std::string message = p["message"].GetString();
  CHECK(message.find("publishing failed: ") == 0);
  CHECK(message.find("\\xff\\xfe") != std::string::npos);
  CHECK(d["recent"].Size() == 0);
}

TEST_CASE("status JSON: the HTTP sink is null unless configured, then its URL and counts") {
  StatusSnapshot s = sample();
  CHECK(parse(render_status_json(s))["httpSink"].IsNull());
  s.http_sink = StatusSnapshot::HttpSinkStatus{.url = "https://app.example.com:443/api/revalidate",
                                               .delivered = 7, .requests = 2, .retries = 1, .dropped = 0, .errors = 1};
  auto d = parse(render_status_json(s));
  CHECK(std::string(d["httpSink"]["url"].GetString()) == "https://app.example.com:443/api/revalidate");
  CHECK(d["httpSink"]["delivered"].GetUint64() == 7);
  CHECK(d["httpSink"]["errors"].GetUint64() == 1);
}

TEST_CASE("status page: self-contained, renders data as text, and its CSP admits exactly its script") {
  const std::string& page = status_page_html();
  CHECK(page.rfind("<!doctype html>", 0) == 0);
  CHECK(page.find("status.json") != std::string::npos);
  // No markup built from data, no external assets.
  CHECK(page.find("innerHTML") == std::string::npos);
  CHECK(page.find("outerHTML") == std::string::npos);
  CHECK(page.find("insertAdjacentHTML") == std::string::npos);
  CHECK(page.find("document.write") == std::string::npos);
  CHECK(page.find("textContent") != std::string::npos);
  CHECK(page.find("src=") == std::string::npos);
  CHECK(page.find("href=") == std::string::npos);
  CHECK(page.find("http://") == std::string::npos);
  CHECK(page.find("https://") == std::string::npos);

  // One inline script; the CSP names its SHA-256, and nothing else may run.
  size_t open = page.find("<script>");
  size_t close = page.find("</script>");
  REQUIRE(open != std::string::npos);
  REQUIRE(close != std::string::npos);
  CHECK(page.find("<script", open + 1) == std::string::npos);
  std::string script = page.substr(open + 8, close - open - 8);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(script.data(), script.size(), digest, &length, EVP_sha256(), nullptr);
  unsigned char b64[64] = {};
  EVP_EncodeBlock(b64, digest, static_cast<int>(length));
  const std::string& csp = status_page_csp();
  CHECK(csp.find("script-src 'sha256-" + std::string(reinterpret_cast<char*>(b64)) + "'") != std::string::npos);
  CHECK(csp.find("default-src 'none'") != std::string::npos);
  CHECK(csp.find("connect-src 'self'") != std::string::npos);
  CHECK(csp.find("unsafe-inline'; script") != std::string::npos);  // styles only
  CHECK(csp.find("script-src 'unsafe-inline'") == std::string::npos);
  CHECK(&status_page_html() == &page);  // built once
}

TEST_CASE("the status is refused to a Host name that is not ours (DNS rebinding), served to addresses and localhost") {
  CHECK(status_host_allowed("127.0.0.1:3002", "127.0.0.1"));
  CHECK(status_host_allowed("10.1.2.3:3002", "0.0.0.0"));  // a pod's IP, as kubectl port-forward or a probe sends it
  CHECK(status_host_allowed("[::1]:3002", "127.0.0.1"));
  CHECK(status_host_allowed("LocalHost:3002", "127.0.0.1"));
  CHECK(status_host_allowed("bridge.internal:3002", "bridge.internal"));
  CHECK(status_host_allowed("", "127.0.0.1"));
  CHECK_FALSE(status_host_allowed("attacker.example:3002", "127.0.0.1"));
  CHECK_FALSE(status_host_allowed("127.0.0.1.attacker.example", "127.0.0.1"));
  CHECK_FALSE(status_host_allowed("[::1", "127.0.0.1"));
}
