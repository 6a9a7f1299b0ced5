#include <doctest/doctest.h>

#include "config.h"

using namespace bridge;

namespace {
EnvMap minimal() {
  return {{"SOKETI_APP_ID", "1"},
          {"SOKETI_APP_KEY", "key"},
          {"SOKETI_APP_SECRET", "s3cr3t-value"},
          {"DATABASE_URL", "postgresql://bridge:pgpass-value@db/app"}};
}
}  // namespace

TEST_CASE("defaults fill everything but the credentials and the database") {
  auto result = parse_config(minimal());
  REQUIRE(result.errors.empty());
  const Config& c = result.config;
  CHECK(c.soketi_base_url() == "http://127.0.0.1:6001");
  CHECK(c.pg_channels == std::vector<std::string>{"cache_invalidation", "data_change_notification"});
  CHECK(c.channel_template == "invalidations");
  CHECK(c.event_name == "cache-invalidate");
  CHECK(c.max_batch_size == 10);
  CHECK(c.max_event_bytes == 100 * 1024);
  CHECK(c.http_port == 3001);
  CHECK(c.webhook_path == "/soketi/webhook");
  CHECK(c.coalesce_window.count() == 200);
  CHECK(c.webhook_event_types == std::vector<std::string>{"channel_occupied", "cache_miss"});
}

TEST_CASE("Soketi's own SOKETI_DEFAULT_APP_* names are fallbacks") {
  EnvMap env = minimal();
  env.erase("SOKETI_APP_ID");
  env.erase("SOKETI_APP_SECRET");
  env["SOKETI_DEFAULT_APP_ID"] = "default-id";
  env["SOKETI_DEFAULT_APP_SECRET"] = "default-secret";
  env["SOKETI_APP_KEY"] = "bridge-key";
  env["SOKETI_DEFAULT_APP_KEY"] = "ignored";
  auto result = parse_config(env);
  REQUIRE(result.errors.empty());
  CHECK(result.config.app_id == "default-id");
  CHECK(result.config.app_secret == "default-secret");
  CHECK(result.config.app_key == "bridge-key");
}

TEST_CASE("every problem is reported at once, one line naming each key") {
  EnvMap env = {{"SOKETI_PORT", "http"},
                {"SOKETI_EVENT_MAX_BATCH_SIZE", "0"},
                {"SOKETI_USE_TLS", "maybe"},
                {"SOKETI_WEBHOOK_URL", "ftp://x"},
                {"BRIDGE_COALESCE_MS", "-5"},
                {"BRIDGE_LOG_FORMAT", "xml"},
                {"BRIDGE_PG_CHANNELS", " , "}};
  auto result = parse_config(env);
  std::vector<std::string> keys = {"SOKETI_APP_ID", "SOKETI_APP_KEY", "SOKETI_APP_SECRET",
                                   "DATABASE_URL", "SOKETI_PORT", "SOKETI_EVENT_MAX_BATCH_SIZE",
                                   "SOKETI_USE_TLS", "SOKETI_WEBHOOK_URL", "BRIDGE_COALESCE_MS",
                                   "BRIDGE_LOG_FORMAT", "BRIDGE_PG_CHANNELS"};
  CHECK(result.errors.size() == keys.size());
  for (const auto& key : keys) {
    bool named = false;
    for (const auto& e : result.errors) named |= e.rfind(key, 0) == 0;
    CHECK_MESSAGE(named, key);
  }
}

TEST_CASE("errors never contain the secret or the database password") {
  EnvMap env = minimal();
  env["SOKETI_PORT"] = "99999";
  env["BRIDGE_HTTP_TIMEOUT_MS"] = "nope";
  auto result = parse_config(env);
  CHECK(result.errors.size() == 2);
  for (const auto& e : result.errors) {
    CHECK(e.find("s3cr3t-value") == std::string::npos);
    CHECK(e.find("pgpass-value") == std::string::npos);
  }
}

TEST_CASE("TLS, path prefix and the webhook URL") {
  EnvMap env = minimal();
  env["SOKETI_USE_TLS"] = "true";
  env["SOKETI_HOST"] = "ws.example.com";
  env["SOKETI_PORT"] = "443";
  env["SOKETI_PATH_PREFIX"] = "soketi/";
  env["SOKETI_WEBHOOK_URL"] = "http://bridge:8080/hooks/soketi";
  auto result = parse_config(env);
  REQUIRE(result.errors.empty());
  CHECK(result.config.soketi_base_url() == "https://ws.example.com:443");
  CHECK(result.config.soketi_path_prefix == "/soketi");
  CHECK(result.config.http_port == 8080);
  CHECK(result.config.webhook_path == "/hooks/soketi");
}

TEST_CASE("the change source: notify by default, wal with its slot and publication") {
  auto defaults = parse_config(minimal());
  CHECK(defaults.config.source == Config::Source::kNotify);
  CHECK(defaults.config.slot_name == "cache_bridge");
  CHECK(defaults.config.publication == "cache_invalidation");

  auto env = minimal();
  env["BRIDGE_SOURCE"] = "wal";
  env["BRIDGE_SLOT"] = "bridge_2";
  env["BRIDGE_PUBLICATION"] = "Mixed Case";
  auto wal = parse_config(env);
  REQUIRE(wal.errors.empty());
  CHECK(wal.config.source == Config::Source::kWal);
  CHECK(wal.config.slot_name == "bridge_2");
  CHECK(wal.config.publication == "Mixed Case");

  env["BRIDGE_SOURCE"] = "logical";
  env["BRIDGE_SLOT"] = "Bridge-2";
  env["BRIDGE_PUBLICATION"] = std::string(64, 'p');
  auto bad = parse_config(env);
  REQUIRE(bad.errors.size() == 3);
  CHECK(bad.errors[0].find("BRIDGE_SOURCE: must be notify or wal") == 0);
  CHECK(bad.errors[1].find("BRIDGE_SLOT") == 0);
  CHECK(bad.errors[2].find("BRIDGE_PUBLICATION") == 0);
}

TEST_CASE("SOKETI_HOST: one address, or a comma list of host[:port] tried in order") {
  auto one = parse_config(minimal());
  REQUIRE(one.errors.empty());
  CHECK(one.config.soketi_addresses == std::vector<SoketiAddress>{{"127.0.0.1", 6001}});

  EnvMap env = minimal();
  env["SOKETI_HOST"] = " soketi-a , soketi-b:6002,10.0.0.7 ,[fd00::7]:6003, [::1], fd00::8";
  env["SOKETI_PORT"] = "7001";
  auto many = parse_config(env);
  REQUIRE(many.errors.empty());
  const Config& c = many.config;
  CHECK(c.soketi_addresses == std::vector<SoketiAddress>{{"soketi-a", 7001}, {"soketi-b", 6002}, {"10.0.0.7", 7001},
                                                         {"fd00::7", 6003}, {"::1", 7001}, {"fd00::8", 7001}});
  CHECK(c.soketi_base_url() == "http://soketi-a:7001");
  CHECK(c.soketi_base_url(1) == "http://soketi-b:6002");
  CHECK(c.soketi_base_url(3) == "http://[fd00::7]:6003");
  CHECK(c.soketi_base_urls().rfind("http://soketi-a:7001, http://soketi-b:6002, ", 0) == 0);

  env["SOKETI_USE_TLS"] = "true";
  CHECK(parse_config(env).config.soketi_base_url(1) == "https://soketi-b:6002");
}

TEST_CASE("SOKETI_HOST: every bad entry is named, and the list stays usable") {
  const char* bad[] = {"a,,b", "a,", "http://soketi:6001", "soketi/apps", "user@soketi", "soketi:", ":6001",
                       "soketi:http", "soketi:0", "soketi:65536", "[fd00::1", "[]:6001", "[fd00::1]6001",
                       "[fd00::1]:", "a:6001,a:6001",
                       "a,a:6001"};  // "a" takes SOKETI_PORT (6001): the same address twice
  for (const char* value : bad) {
    EnvMap env = minimal();
    env["SOKETI_HOST"] = value;
    auto result = parse_config(env);
    REQUIRE_MESSAGE(result.errors.size() == 1, value);
    CHECK_MESSAGE(result.errors[0].rfind("SOKETI_HOST: ", 0) == 0, result.errors[0]);
    CHECK_FALSE(result.config.soketi_addresses.empty());
  }
  EnvMap env = minimal();
  env["SOKETI_HOST"] = "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q";
  auto many = parse_config(env);
  REQUIRE(many.errors.size() == 1);
  CHECK(many.errors[0] == "SOKETI_HOST: 17 addresses, at most 16");

  env["SOKETI_HOST"] = "https://ws.example.com";
  auto url = parse_config(env);
  REQUIRE(url.errors.size() == 1);
  CHECK(url.errors[0].find("SOKETI_USE_TLS") != std::string::npos);
}

TEST_CASE("the HTTP sink: off by default; a URL needs a valid form and a secret of 16 characters") {
  CHECK(parse_config(minimal()).config.http_sink_url.empty());

  auto env = minimal();
  env["BRIDGE_HTTP_SINK_URL"] = "https://app.example.com/api/revalidate?team=1";
  env["BRIDGE_HTTP_SINK_SECRET"] = "0123456789abcdef";
  auto ok = parse_config(env);
  REQUIRE(ok.errors.empty());
  CHECK(ok.config.http_sink_max_batch == 100);
  auto url = parse_http_url(ok.config.http_sink_url);
  REQUIRE(url);
  CHECK(url->port == 443);
  CHECK(url->path == "/api/revalidate?team=1");

  env["BRIDGE_HTTP_SINK_SECRET"] = "short-secret";
  env["BRIDGE_HTTP_SINK_URL"] = "ftp://app.example.com/x";
  env["BRIDGE_HTTP_SINK_MAX_BATCH"] = "0";
  auto bad = parse_config(env);
  REQUIRE(bad.errors.size() == 3);
  std::string all;
  for (const auto& e : bad.errors) all += e + "\n";
  CHECK(all.find("BRIDGE_HTTP_SINK_URL: must be an http(s)") != std::string::npos);
  CHECK(all.find("BRIDGE_HTTP_SINK_SECRET: required") != std::string::npos);
  CHECK(all.find("BRIDGE_HTTP_SINK_MAX_BATCH") != std::string::npos);
  CHECK(all.find("short-secret") == std::string::npos);

  env["BRIDGE_HTTP_SINK_URL"] = "https://user:tok3n-value@app.example.com/x?key=qu3ry-value";
  auto userinfo = parse_config(env);
  std::string errors;
  for (const auto& e : userinfo.errors) errors += e + "\n";
  CHECK(errors.find("no user info") != std::string::npos);
  CHECK(errors.find("tok3n-value") == std::string::npos);
  CHECK(errors.find("qu3ry-value") == std::string::npos);
}

TEST_CASE("url_for_display drops the query, which may hold a token") {
  CHECK(url_for_display("https://app.example.com/api/revalidate?token=abc") == "https://app.example.com:443/api/revalidate");
  CHECK(url_for_display("https://app.example.com?token=abc") == "https://app.example.com:443/");
  CHECK(url_for_display("https://app.example.com:8443#frag") == "https://app.example.com:8443/");
  CHECK(url_for_display("https://user:token@app.example.com/x").empty());  // refused, not shown
  CHECK(url_for_display("http://127.0.0.1:3000") == "http://127.0.0.1:3000/");
  CHECK(url_for_display("not a url").empty());
}
