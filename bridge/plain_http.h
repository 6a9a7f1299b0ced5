// PlainHttpClient: HTTP/1.1 requests over plain TCP in the few system calls the publisher's hot
// path can afford. The profile of issue 12 had cpp-httplib's client at about 17 system calls per
// request to Soketi (fcntl around a polled connect, two sends, a poll before every read, a
// shutdown before the close) and 6% of the bridge's CPU in its own code; this one makes 6 to 8:
//   - one writev for the head and the body;
//   - Soketi closes after every response, so prepare() opens the next connection between
//     requests: its handshake overlaps the wait for work instead of adding to a request;
//   - a connection the server keeps open is reused. One that turns out closed before any byte
//     of the answer (an idle connection the server dropped) is replaced and the request sent
//     once more: a request may then arrive twice, which an invalidation tolerates;
//   - answers framed by Content-Length, chunked, or the end of the connection, at most
//     kMaxBody bytes.
// Every wait (connect, write, read) ends after `timeout`. Answers and errors come as
// cpp-httplib's Result, so both clients' outcomes are classified by the same code
// (http_outcome.h). TLS is not spoken here: https goes through cpp-httplib (http_transport.h).
// Not thread-safe: one per worker.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "http_transport.h"

namespace bridge {

class PlainHttpClient final : public HttpTransport {
 public:
  static constexpr size_t kMaxBody = 16u << 20;

  PlainHttpClient(std::string host, int port, std::chrono::milliseconds timeout);
  ~PlainHttpClient() override;
  PlainHttpClient(const PlainHttpClient&) = delete;
  PlainHttpClient& operator=(const PlainHttpClient&) = delete;

  httplib::Result post(const std::string& target, const httplib::Headers& headers, const std::string& body,
                       const std::string& content_type) override;
  httplib::Result get(const std::string& target) override;
  void prepare() override;

  // For tests: connections opened so far.
  uint64_t connections_opened() const { return connections_opened_; }

 private:
  enum class Step { kOk, kRefused, kConnectTimeout, kWriteFailed, kClosedEarly, kReadFailed, kMalformed };

  httplib::Result request(const std::string& head, const std::string& body);
  // One attempt on the open (or a new) connection.
  Step exchange(const std::string& head, const std::string& body, httplib::Response* response);
  bool open();    // a non-blocking socket with connect() started; false (and errno) when it failed at once
  void close();
  bool resolve();  // fills address_ (false: unknown host)
  Step write_all(const std::string& head, const std::string& body, std::chrono::steady_clock::time_point deadline);
  Step read_response(httplib::Response* response, std::chrono::steady_clock::time_point deadline);
  // After the head: the chunks into *body, then the trailers.
  Step read_chunked_body(std::chrono::steady_clock::time_point deadline, std::string* body);
  // Until in_ holds a whole line (*end: where its CRLF starts), at most `limit` bytes.
  Step read_line(std::chrono::steady_clock::time_point deadline, size_t limit, size_t* end);
  void close_if_idle();  // idle longer than servers keep a connection open: not worth a try
  // Reads more into in_; kOk, kClosedEarly at EOF (`eof` set), or a failure.
  Step read_more(std::chrono::steady_clock::time_point deadline, bool* eof);
  bool wait_for(short events, std::chrono::steady_clock::time_point deadline);

  const std::string host_;
  const int port_;
  const std::string host_header_;  // "host:port"
  const std::chrono::milliseconds timeout_;
  sockaddr_storage address_{};
  socklen_t address_len_ = 0;
  int fd_ = -1;
  bool reused_ = false;  // fd_ was opened ahead or has carried a request: it may be stale
  std::chrono::steady_clock::time_point last_active_{};  // opened, or an answer read
  std::string in_;  // bytes read from fd_ not yet consumed
  uint64_t connections_opened_ = 0;
};

}  // namespace bridge
