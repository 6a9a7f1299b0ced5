#include "sink_http.h"

#include <httplib.h>

#include <chrono>

#include "event_encoder.h"
#include "http_outcome.h"
#include "http_transport.h"
#include "pusher_signer.h"

namespace bridge {
namespace {

class HttpSinkClient : public SinkClient {
 public:
  HttpSinkClient(const Config& config, const ParsedUrl& url)
      : secret_(config.http_sink_secret),
        path_(url.path),
        http_(make_http_transport(url.scheme, url.host, url.port, config.http_timeout)) {}

  PublishOutcome send(std::span<const QueuedInvalidation> items) override {
    std::string body = encode_http_sink_body(items);
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    httplib::Headers headers = {
        {"X-Cache-Bridge-Timestamp", std::to_string(now)},
        {"X-Cache-Bridge-Signature", http_sink_signature(secret_, now, body)},
    };
    auto result = http_->post(path_, headers, body, "application/json");
    return classify_http_result(result, result ? result->status : 0, "the receiver");
  }

 private:
  const std::string& secret_;
  const std::string& path_;
  std::unique_ptr<HttpTransport> http_;
};

}  // namespace

std::string http_sink_signature(std::string_view secret, int64_t unix_seconds, std::string_view body) {
  std::string signed_text = std::to_string(unix_seconds);
  signed_text += '.';
  signed_text += body;
  return "v1=" + hmac_sha256_hex(secret, signed_text);
}

HttpSink::HttpSink(const Config& config, Metrics& metrics)
    : config_(config),
      metrics_(metrics),
      url_(parse_http_url(config.http_sink_url).value_or(ParsedUrl{})),
      display_url_(url_for_display(config.http_sink_url)) {}

std::unique_ptr<SinkClient> HttpSink::connect() const {
  return std::make_unique<HttpSinkClient>(config_, url_);
}

}  // namespace bridge
