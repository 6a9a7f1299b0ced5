// The failover rule of SoketiClient against in-process HTTP servers standing in for Soketi nodes.
#include <doctest/doctest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "soketi_client.h"

using namespace bridge;

namespace {

// A stand-in node on 127.0.0.1: answers every API call with `status` and `body` (Soketi 1.6.1
// answers its errors as 200 with {"error", "code"}), counting the calls.
class FakeNode {
 public:
  FakeNode() {
    auto handler = [this](const httplib::Request&, httplib::Response& response) {
      ++calls;
      response.status = status.load();
      response.set_content(status == 200 && broken ? R"({"error":"Redis is gone","code":503})" : body(),
                           "application/json");
    };
    server_.Post(R"(/apps/.*)", handler);
    server_.Get(R"(/apps/.*)", handler);
    port = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeNode() {
    server_.stop();
    thread_.join();
  }
  std::string body() const { return status == 200 ? R"({"channels":{"invalidations":{}}})" : R"({"error":"no"})"; }

  int port = 0;
  std::atomic<int> status{200};
  std::atomic<bool> broken{false};  // 200 carrying a 503 in the body
  std::atomic<int> calls{0};

 private:
  httplib::Server server_;
  std::thread thread_;
};

// A port on 127.0.0.1 that accepts connections (the kernel's backlog) and never answers: a hung
// node. With listening == false, a port nobody listens on: connections are refused.
class SilentPort {
 public:
  explicit SilentPort(bool listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port = ntohs(addr.sin_port);
    if (listening) {
      REQUIRE(::listen(fd_, 16) == 0);
    } else {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~SilentPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port = 0;

 private:
  int fd_ = -1;
};

Config config_for(std::vector<int> ports) {
  Config c;
  c.app_id = "1";
  c.app_key = "key";
  c.app_secret = "secret";
  c.http_timeout = std::chrono::milliseconds(1000);
  c.soketi_addresses.clear();
  for (int port : ports) c.soketi_addresses.push_back({"127.0.0.1", port});
  return c;
}

const std::vector<PusherEvent> kEvent = {{"invalidations", "cache-invalidate", R"({"cacheKey":"t:1"})"}};

}  // namespace

TEST_CASE("SoketiClient: an address that does not answer is passed over within the call, then avoided") {
  for (bool hung : {false, true}) {
    CAPTURE(hung);
    FakeNode live;
    SilentPort dead(hung);
    Config config = config_for({dead.port, live.port});
    Metrics metrics({});
    SoketiClient client(config, &metrics);
    auto started = std::chrono::steady_clock::now();
    CHECK(client.publish(kEvent).kind == PublishOutcome::Kind::kOk);
    // Refused: at once; hung: one HTTP timeout, no more.
    auto took = std::chrono::steady_clock::now() - started;
    CHECK(took < (hung ? std::chrono::milliseconds(1900) : std::chrono::milliseconds(500)));
    CHECK(client.current_url() == config.soketi_base_url(1));
    CHECK(metrics.soketi_failovers == 1);
    CHECK(client.publish(kEvent).kind == PublishOutcome::Kind::kOk);
    CHECK(metrics.soketi_failovers == 1);  // stuck to the live one
    CHECK(live.calls == 2);
  }
}

TEST_CASE("SoketiClient: a 5xx (also as Soketi's 200 with an error code) moves on; a healthy address is stuck to") {
  FakeNode a, b;
  Config config = config_for({a.port, b.port});
  Metrics metrics({});
  SoketiClient client(config, &metrics);
  CHECK(client.publish(kEvent).kind == PublishOutcome::Kind::kOk);
  CHECK(a.calls == 1);

  a.status = 500;
  CHECK(client.publish(kEvent).kind == PublishOutcome::Kind::kOk);
  CHECK(a.calls == 2);
  CHECK(b.calls == 1);
  a.status = 200;  // a recovers: the client stays on b
  CHECK(client.publish(kEvent).kind == PublishOutcome::Kind::kOk);
  CHECK(b.calls == 2);
  CHECK(a.calls == 2);

  b.broken = true;  // b's Redis is gone: the call goes back to a
  std::vector<std::string> channels;
  CHECK(client.occupied_channels(&channels).is_ok());
  CHECK(channels == std::vector<std::string>{"invalidations"});
  CHECK(client.current_url() == config.soketi_base_url(0));
  CHECK(metrics.soketi_failovers == 2);
}

TEST_CASE("SoketiClient: a 4xx or 429 is an answer, not a reason to move") {
  FakeNode a, b;
  Config config = config_for({a.port, b.port});
  SoketiClient client(config);  // without metrics
  a.status = 401;
  auto outcome = client.publish(kEvent);
  CHECK(client.answered());
  CHECK(outcome.kind == PublishOutcome::Kind::kRejected);
  CHECK(outcome.http_status == 401);
  a.status = 429;
  CHECK(client.publish(kEvent).kind == PublishOutcome::Kind::kThrottled);
  CHECK(b.calls == 0);
  CHECK(client.current_url() == config.soketi_base_url(0));
}

TEST_CASE("SoketiClient: when every address fails, the call says why for each, once each") {
  FakeNode b;
  b.status = 503;
  SilentPort dead(false);
  Config config = config_for({dead.port, b.port});
  Metrics metrics({});
  SoketiClient client(config, &metrics);
  auto outcome = client.publish(kEvent);
  CHECK(outcome.kind == PublishOutcome::Kind::kServerError);
  CHECK(outcome.detail.find(config.soketi_base_url(0) + ": cannot connect") != std::string::npos);
  CHECK(outcome.detail.find(config.soketi_base_url(1) + ": HTTP 503") != std::string::npos);
  CHECK(b.calls == 1);
  CHECK_FALSE(client.answered());
  CHECK(metrics.soketi_failovers == 0);  // an outage is not a move
  CHECK(client.current_url() == config.soketi_base_url(0));

  std::vector<std::string> channels;
  Status s = client.occupied_channels(&channels);
  CHECK_FALSE(s.is_ok());
  CHECK(b.calls == 2);  // from the dead one (current) to b, and no further
  CHECK(client.current_url() == config.soketi_base_url(0));
  CHECK(s.message().find("every address") != std::string::npos);
  CHECK(s.message().find(config.soketi_base_url(0) + ": ") != std::string::npos);
  CHECK(s.message().find(config.soketi_base_url(1) + ": HTTP 503") != std::string::npos);
  CHECK(s.message().find("secret") == std::string::npos);
}
