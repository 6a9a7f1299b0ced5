#include "plain_http.h"

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

namespace bridge {
namespace {

using Clock = std::chrono::steady_clock;

// A connection idle (opened ahead, or kept alive) longer than this is replaced before use: servers drop
// idle connections (uWebSockets, under Soketi, after 10 s), and a request sent into one that is
// being closed costs a retry.
constexpr std::chrono::seconds kMaxIdle{4};
constexpr size_t kMaxHead = 64u << 10;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return (x | 0x20) == (y | 0x20); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

httplib::Result failure(httplib::Error error) { return httplib::Result(nullptr, error); }

}  // namespace

PlainHttpClient::PlainHttpClient(std::string host, int port, std::chrono::milliseconds timeout)
    : host_(std::move(host)),
      port_(port),
      host_header_(host_.find(':') != std::string::npos ? fmt::format("[{}]:{}", host_, port_)
                                                        : fmt::format("{}:{}", host_, port_)),
      timeout_(timeout) {}

PlainHttpClient::~PlainHttpClient() { close(); }

httplib::Result PlainHttpClient::post(const std::string& target, const httplib::Headers& headers,
                                      const std::string& body, const std::string& content_type) {
  std::string head = fmt::format("POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
                                 target, host_header_, content_type, body.size());
  for (const auto& [name, value] : headers) fmt::format_to(std::back_inserter(head), "{}: {}\r\n", name, value);
  head += "\r\n";
  return request(head, body);
}

httplib::Result PlainHttpClient::get(const std::string& target) {
  return request(fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", target, host_header_), "");
}

void PlainHttpClient::prepare() {
  close_if_idle();
  if (fd_ < 0 && open()) reused_ = true;  // its handshake runs while the worker waits
}

void PlainHttpClient::close_if_idle() {
  if (fd_ >= 0 && Clock::now() - last_active_ > kMaxIdle) close();
}

httplib::Result PlainHttpClient::request(const std::string& head, const std::string& body) {
  close_if_idle();
  for (int attempt = 1;; ++attempt) {
    bool was_reused = fd_ >= 0 && reused_;
    auto response = std::make_unique<httplib::Response>();
    Step step = exchange(head, body, response.get());
    if (step == Step::kOk) return httplib::Result(std::move(response), httplib::Error::Success);
    close();
    // A stale connection (opened ahead, or kept alive) fails before the answer starts: once more
    // on a fresh one. A fresh connection's failure is the answer.
    if ((step == Step::kClosedEarly || step == Step::kWriteFailed) && was_reused && attempt == 1) continue;
    switch (step) {
      case Step::kRefused: return failure(httplib::Error::Connection);
      case Step::kConnectTimeout: return failure(httplib::Error::ConnectionTimeout);
      case Step::kWriteFailed: return failure(httplib::Error::Write);
      default: return failure(httplib::Error::Read);
    }
  }
}

PlainHttpClient::Step PlainHttpClient::exchange(const std::string& head, const std::string& body,
                                                httplib::Response* response) {
  if (fd_ < 0 && !open()) return Step::kRefused;
  auto deadline = Clock::now() + timeout_;
  if (Step step = write_all(head, body, deadline); step != Step::kOk) return step;
  reused_ = true;  // from now on, a failure of this connection may be its staleness
  Step step = read_response(response, Clock::now() + timeout_);
  last_active_ = Clock::now();
  return step;
}

bool PlainHttpClient::resolve() {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port = std::to_string(port_);
  if (getaddrinfo(host_.c_str(), port.c_str(), &hints, &found) != 0 || !found) return false;
  std::memcpy(&address_, found->ai_addr, found->ai_addrlen);
  address_len_ = found->ai_addrlen;
  freeaddrinfo(found);
  return true;
}

bool PlainHttpClient::open() {
  // Resolved once; again after a failed connect (the name may point elsewhere by now).
  if (address_len_ == 0 && !resolve()) return false;
  fd_ = ::socket(address_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address_), address_len_) != 0 && errno != EINPROGRESS) {
    close();
    address_len_ = 0;
    return false;
  }
  ++connections_opened_;
  last_active_ = Clock::now();
  reused_ = false;
  in_.clear();
  return true;
}

void PlainHttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  in_.clear();
}

bool PlainHttpClient::wait_for(short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd fd{fd_, events, 0};
    int ready = ::poll(&fd, 1, static_cast<int>(std::min<int64_t>(left, 60000)));
    if (ready > 0) return true;  // readable/writable, or an error the next call reports
    if (ready < 0 && errno != EINTR) return false;
  }
}

PlainHttpClient::Step PlainHttpClient::write_all(const std::string& head, const std::string& body,
                                                 Clock::time_point deadline) {
  size_t done = 0;
  const size_t total = head.size() + body.size();
  bool connected = false;  // known once something was written
  while (done < total) {
    iovec parts[2];
    int n = 0;
    if (done < head.size()) parts[n++] = {const_cast<char*>(head.data() + done), head.size() - done};
    size_t body_done = done > head.size() ? done - head.size() : 0;
    if (body_done < body.size()) parts[n++] = {const_cast<char*>(body.data() + body_done), body.size() - body_done};
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = n;
    ssize_t wrote = ::sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (wrote > 0) {
      done += static_cast<size_t>(wrote);
      connected = true;
      continue;
    }
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Still connecting (or the send buffer is full): wait until it can take more.
      if (!wait_for(POLLOUT, deadline)) return connected ? Step::kWriteFailed : Step::kConnectTimeout;
      continue;
    }
    if (!connected && (errno == ECONNREFUSED || errno == ENETUNREACH || errno == EHOSTUNREACH || errno == ETIMEDOUT)) {
      address_len_ = 0;  // resolve again next time
      return Step::kRefused;
    }
    return Step::kWriteFailed;  // EPIPE, ECONNRESET: the peer closed it
  }
  return Step::kOk;
}

PlainHttpClient::Step PlainHttpClient::read_more(Clock::time_point deadline, bool* eof) {
  char buffer[16384];
  while (true) {
    ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
    if (got > 0) {
      in_.append(buffer, static_cast<size_t>(got));
      return Step::kOk;
    }
    if (got == 0) {
      *eof = true;
      return Step::kClosedEarly;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_for(POLLIN, deadline)) return Step::kReadFailed;
      continue;
    }
    *eof = true;  // ECONNRESET and the like: nothing more comes
    return Step::kClosedEarly;
  }
}

PlainHttpClient::Step PlainHttpClient::read_response(httplib::Response* response, Clock::time_point deadline) {
  bool eof = false;
  size_t head_end;
  while ((head_end = in_.find("\r\n\r\n")) == std::string::npos) {
    if (in_.size() > kMaxHead) return Step::kMalformed;
    if (Step step = read_more(deadline, &eof); step != Step::kOk) {
      // Closed before a complete head: stale if nothing came, else a broken answer.
      return in_.empty() ? step : Step::kReadFailed;
    }
  }
  std::string_view head(in_.data(), head_end);
  // Status line: HTTP/1.x NNN reason
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ') return Step::kMalformed;
  int status = 0;
  for (char c : status_line.substr(9, 3)) {
    if (c < '0' || c > '9') return Step::kMalformed;
    status = status * 10 + (c - '0');
  }
  response->status = status;
  bool keep_alive = status_line[7] == '1';  // HTTP/1.1 keeps the connection unless told otherwise
  bool chunked = false;
  bool has_length = false;
  size_t length = 0;
  size_t at = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (at < head.size()) {
    size_t end = head.find("\r\n", at);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(at, end - at);
    at = end + 2;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      length = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || length > kMaxBody) return Step::kMalformed;
        length = length * 10 + static_cast<size_t>(c - '0');
      }
      has_length = true;
    } else if (iequals(name, "Transfer-Encoding")) {
      chunked = value.find("chunked") != std::string_view::npos;
    } else if (iequals(name, "Connection")) {
      if (iequals(value, "close")) keep_alive = false;
      if (iequals(value, "keep-alive")) keep_alive = true;
    }
    response->headers.emplace(std::string(name), std::string(value));
  }
  in_.erase(0, head_end + 4);
  if (length > kMaxBody) return Step::kMalformed;

  if (chunked) {
    if (Step step = read_chunked_body(deadline, &response->body); step != Step::kOk) return step;
  } else if (has_length) {
    while (in_.size() < length) {
      if (read_more(deadline, &eof) != Step::kOk) return Step::kReadFailed;
    }
    response->body.assign(in_, 0, length);
    in_.erase(0, length);
  } else {
    // Neither: the body ends with the connection.
    while (!eof) {
      if (in_.size() > kMaxBody) return Step::kMalformed;
      Step step = read_more(deadline, &eof);
      if (step == Step::kReadFailed) return step;
    }
    response->body = std::move(in_);
    in_.clear();
    keep_alive = false;
  }
  if (!keep_alive || !in_.empty()) close();  // bytes beyond the answer: not a connection to trust
  return Step::kOk;
}

PlainHttpClient::Step PlainHttpClient::read_line(Clock::time_point deadline, size_t limit, size_t* end) {
  bool eof = false;
  while ((*end = in_.find("\r\n")) == std::string::npos) {
    if (in_.size() > limit || read_more(deadline, &eof) != Step::kOk) return Step::kReadFailed;
  }
  return Step::kOk;
}

PlainHttpClient::Step PlainHttpClient::read_chunked_body(Clock::time_point deadline, std::string* body) {
  bool eof = false;
  while (true) {
    size_t size_end;
    if (Step step = read_line(deadline, 1024, &size_end); step != Step::kOk) return step;
    size_t size = 0;
    size_t digits = 0;
    for (char c : std::string_view(in_).substr(0, size_end)) {
      int v = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
      if (v < 0) break;  // a chunk extension
      size = size * 16 + static_cast<size_t>(v);
      if (++digits > 8 || body->size() + size > kMaxBody) return Step::kMalformed;
    }
    if (digits == 0) return Step::kMalformed;
    in_.erase(0, size_end + 2);
    if (size == 0) break;
    while (in_.size() < size + 2) {
      if (read_more(deadline, &eof) != Step::kOk) return Step::kReadFailed;
    }
    body->append(in_, 0, size);
    in_.erase(0, size + 2);
  }
  // Trailers, up to the empty line.
  while (true) {
    size_t end;
    if (Step step = read_line(deadline, kMaxHead, &end); step != Step::kOk) return step;
    in_.erase(0, end + 2);
    if (end == 0) return Step::kOk;
  }
}

}  // namespace bridge
