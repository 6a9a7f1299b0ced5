// PlainHttpClient against real HTTP servers on 127.0.0.1: cpp-httplib's server in-process (keep-alive,
// Connection: close, chunked answers, a slow handler) and a raw socket that drops a connection
// opened ahead, as a server does with an idle one.
#include <doctest/doctest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "plain_http.h"

using namespace bridge;
using namespace std::chrono_literals;

namespace {

class Server {
 public:
  Server() {
    server_.Post("/echo", [this](const httplib::Request& request, httplib::Response& response) {
      ++calls;
      last_query = request.get_param_value("auth_key");
      last_header = request.get_header_value("X-Test");
      if (close_after) response.set_header("Connection", "close");
      response.set_header("Retry-After", "7");
      response.status = 202;
      response.set_content("got " + request.body, "text/plain");
    });
    server_.Get("/chunked", [](const httplib::Request&, httplib::Response& response) {
      response.set_chunked_content_provider("application/json", [](size_t offset, httplib::DataSink& sink) {
        if (offset == 0) {
          sink.write("{\"channels\":", 12);
        } else if (offset == 12) {
          sink.write("{}}", 3);
        } else {
          sink.done();
        }
        return true;
      });
    });
    server_.Get("/held", [this](const httplib::Request&, httplib::Response& response) {
      // Answers only once the test lets it (bounded, so a failed test still ends).
      for (int i = 0; i < 500 && !release_held; ++i) std::this_thread::sleep_for(10ms);
      answered_held = true;
      response.set_content("late", "text/plain");
    });
    port = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~Server() {
    server_.stop();
    thread_.join();
  }

  int port = 0;
  std::atomic<int> calls{0};
  std::atomic<bool> close_after{false};
  std::atomic<bool> release_held{false};
  std::atomic<bool> answered_held{false};
  std::string last_query, last_header;

 private:
  httplib::Server server_;
  std::thread thread_;
};

// Accepts one connection and closes it at once (an idle connection the server dropped), then
// answers the next one's request with 200 "ok" and closes.
class DropsFirstConnection {
 public:
  DropsFirstConnection() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    REQUIRE(::listen(fd_, 4) == 0);
    thread_ = std::thread([this] {
      int first = ::accept(fd_, nullptr, nullptr);
      ::close(first);
      first_closed = true;
      int second = ::accept(fd_, nullptr, nullptr);
      if (second < 0) return;
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t got = ::recv(second, buffer, sizeof buffer, 0);
        if (got <= 0) break;
        request.append(buffer, static_cast<size_t>(got));
      }
      requests_on_second = request.empty() ? 0 : 1;
      const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      ::send(second, answer, sizeof answer - 1, MSG_NOSIGNAL);
      ::close(second);
    });
  }
  ~DropsFirstConnection() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  int port = 0;
  std::atomic<bool> first_closed{false};
  std::atomic<int> requests_on_second{0};

 private:
  int fd_ = -1;
  std::thread thread_;
};

}  // namespace

TEST_CASE("PlainHttpClient: a POST with its query, headers and body; the answer's status, headers and body") {
  Server server;
  PlainHttpClient client("127.0.0.1", server.port, 2000ms);
  auto result = client.post("/echo?auth_key=k1&x=y", {{"X-Test", "v"}}, R"({"a":1})", "application/json");
  REQUIRE(result);
  CHECK(result->status == 202);
  CHECK(result->body == R"(got {"a":1})");
  CHECK(result->get_header_value("Retry-After") == "7");
  CHECK(server.last_query == "k1");
  CHECK(server.last_header == "v");
}

TEST_CASE("PlainHttpClient: keeps a connection the server keeps, and opens one per request after Connection: close") {
  Server server;
  PlainHttpClient client("127.0.0.1", server.port, 2000ms);
  for (int i = 0; i < 3; ++i) REQUIRE(client.post("/echo", {}, "x", "text/plain"));
  CHECK(client.connections_opened() == 1);

  server.close_after = true;  // as Soketi answers
  for (int i = 0; i < 3; ++i) REQUIRE(client.post("/echo", {}, "x", "text/plain"));
  CHECK(client.connections_opened() == 3);  // the first still on the kept one, which the answer closes
  CHECK(server.calls == 6);
}

TEST_CASE("PlainHttpClient: prepare() opens the next connection ahead, and the request uses it") {
  Server server;
  server.close_after = true;
  PlainHttpClient client("127.0.0.1", server.port, 2000ms);
  client.prepare();
  CHECK(client.connections_opened() == 1);
  client.prepare();  // one is open: nothing more
  CHECK(client.connections_opened() == 1);
  REQUIRE(client.post("/echo", {}, "x", "text/plain"));
  CHECK(client.connections_opened() == 1);
  client.prepare();  // the server closed it: the next one
  REQUIRE(client.post("/echo", {}, "y", "text/plain"));
  CHECK(client.connections_opened() == 2);
}

TEST_CASE("PlainHttpClient: a connection opened ahead that the server dropped is replaced, and the request sent once") {
  DropsFirstConnection server;
  PlainHttpClient client("127.0.0.1", server.port, 2000ms);
  client.prepare();
  for (int i = 0; i < 500 && !server.first_closed; ++i) std::this_thread::sleep_for(2ms);
  REQUIRE(server.first_closed);  // dropped before the request is sent
  auto result = client.post("/x", {}, "x", "text/plain");
  REQUIRE(result);
  CHECK(result->status == 200);
  CHECK(result->body == "ok");
  CHECK(client.connections_opened() == 2);
  CHECK(server.requests_on_second == 1);
}

TEST_CASE("PlainHttpClient: a chunked answer is put together") {
  Server server;
  PlainHttpClient client("127.0.0.1", server.port, 2000ms);
  auto result = client.get("/chunked");
  REQUIRE(result);
  CHECK(result->status == 200);
  CHECK(result->body == R"({"channels":{}})");
  REQUIRE(client.get("/chunked"));  // and the connection stays usable after it
  CHECK(client.connections_opened() == 1);
}

TEST_CASE("PlainHttpClient: refused, and no answer within the timeout") {
  int port;
  {
    Server gone;
    port = gone.port;
  }
  PlainHttpClient refused("127.0.0.1", port, 2000ms);
  auto result = refused.post("/echo", {}, "x", "text/plain");
  CHECK_FALSE(result);
  CHECK(result.error() == httplib::Error::Connection);

  Server server;
  PlainHttpClient impatient("127.0.0.1", server.port, 200ms);
  auto late = impatient.get("/held");
  CHECK_FALSE(late);
  CHECK(late.error() == httplib::Error::Read);
  CHECK_FALSE(server.answered_held);  // the timeout, not the handler, ended it
  server.release_held = true;
}
