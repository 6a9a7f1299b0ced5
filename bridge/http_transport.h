// HttpTransport: how a sink's client sends its requests to one base URL. http:// goes through
// PlainHttpClient (plain_http.h: the lean path of the publisher), https:// through cpp-httplib's
// client (TLS, with the system's certificate store). Both answer with cpp-httplib's Result, so
// the rules of http_outcome.h apply to either. Not thread-safe: one per worker.
#pragma once

#include <httplib.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace bridge {

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual httplib::Result post(const std::string& target, const httplib::Headers& headers,
                               const std::string& body, const std::string& content_type) = 0;
  virtual httplib::Result get(const std::string& target) = 0;
  // Between requests, while the worker waits for work: opens the next connection ahead when
  // none is open, so the next request need not wait for a handshake. Never blocks for long.
  virtual void prepare() {}
};

// For `scheme` ("http" or "https"), `host` (a name, an IPv4 or a bare IPv6 address) and `port`;
// connect, write and read each end after `timeout`.
std::unique_ptr<HttpTransport> make_http_transport(std::string_view scheme, const std::string& host, int port,
                                                   std::chrono::milliseconds timeout);

}  // namespace bridge
