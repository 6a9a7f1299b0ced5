#include "http_transport.h"

#include <fmt/format.h>

#include "plain_http.h"

namespace bridge {
namespace {

// https: cpp-httplib's client, which speaks TLS through OpenSSL and verifies the server's
// certificate against the system's store (SSL_CERT_FILE / SSL_CERT_DIR point elsewhere).
class HttplibTransport final : public HttpTransport {
 public:
  HttplibTransport(const std::string& base_url, std::chrono::milliseconds timeout) : http_(base_url) {
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout - seconds);
    http_.set_connection_timeout(seconds.count(), micros.count());
    http_.set_read_timeout(seconds.count(), micros.count());
    http_.set_write_timeout(seconds.count(), micros.count());
    // Soketi closes after every response; a proxy in front of it, or an app behind a CDN, may
    // keep the connection open: then there is no handshake per request.
    http_.set_keep_alive(true);
  }

  httplib::Result post(const std::string& target, const httplib::Headers& headers, const std::string& body,
                       const std::string& content_type) override {
    return http_.Post(target, headers, body, content_type);
  }
  httplib::Result get(const std::string& target) override { return http_.Get(target); }

 private:
  httplib::Client http_;
};

}  // namespace

std::unique_ptr<HttpTransport> make_http_transport(std::string_view scheme, const std::string& host, int port,
                                                   std::chrono::milliseconds timeout) {
  if (scheme == "http") return std::make_unique<PlainHttpClient>(host, port, timeout);
  bool v6 = host.find(':') != std::string::npos;
  return std::make_unique<HttplibTransport>(
      fmt::format("{}://{}{}{}:{}", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port), timeout);
}

}  // namespace bridge
