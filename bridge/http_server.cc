#include "http_server.h"

#include <httplib.h>

#include "clock.h"
#include "http_listen.h"
#include "log.h"
#include "webhook.h"

namespace bridge {
namespace {

constexpr size_t kMaxWebhookBytes = 1024 * 1024;
constexpr int kWorkers = 4;

std::optional<std::string_view> header(const httplib::Request& request, const char* name) {
  if (!request.has_header(name)) return std::nullopt;
  // cpp-httplib owns the string for the request's lifetime.
  auto range = request.headers.find(name);
  return std::string_view(range->second);
}

}  // namespace

HttpServer::HttpServer(const Config& config, Metrics& metrics, Replayer& replayer,
                       SnapshotService& snapshots)
    : config_(config),
      metrics_(metrics),
      replayer_(replayer),
      snapshots_(snapshots),
      server_(make_http_server(kWorkers)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  server_->set_payload_max_length(kMaxWebhookBytes);

  server_->Post(config_.webhook_path, [this](const httplib::Request& request, httplib::Response& response) {
    WebhookVerdict verdict =
        verify_webhook(config_.app_key, config_.app_secret, header(request, "X-Pusher-Key"),
                       header(request, "X-Pusher-Signature"), request.body, config_.webhook_event_types,
                       epoch_ms());
    response.status = verdict.status;
    if (verdict.status != 200) {
      switch (verdict.rejection) {
        case WebhookRejection::kStale: ++metrics_.webhooks_rejected_stale; break;
        case WebhookRejection::kMalformed: ++metrics_.webhooks_rejected_malformed; break;
        default: ++metrics_.webhooks_rejected_signature; break;
      }
      log::warn("webhook from {} rejected ({}): {}", request.remote_addr, verdict.status, verdict.reason);
      response.set_content(verdict.reason + "\n", "text/plain");
      return;
    }
    for (const auto& event : verdict.events) {
      log::debug("webhook {} for {}", event.name, event.channel);
      if (!replayer_.request(event.channel)) log::warn("replay queue full: skipped {}", event.channel);
    }
    response.set_content("{\"ok\":true}", "application/json");
  });

  server_->Get("/snapshot", [this](const httplib::Request& request, httplib::Response& response) {
    SnapshotQuery query{request.get_param_value("channel"), request.get_param_value("since"),
                        request.get_param_value("socket_id"), request.get_param_value("auth"),
                        request.get_param_value("channel_data")};
    SnapshotAnswer answer = snapshots_.answer(query);
    response.status = answer.status;
    response.set_header("Access-Control-Allow-Origin", config_.snapshot_cors_origin);
    response.set_header("Cache-Control", "no-store");
    if (answer.retry_after_s > 0) response.set_header("Retry-After", std::to_string(answer.retry_after_s));
    // Not "application/json": cpp-httplib would compress that, with brotli whenever a browser
    // offers it, at ~0.7 s of CPU for a 10,000-key answer. Compress in the proxy if at all.
    response.set_content(answer.body, answer.status == 200 ? "application/json; charset=utf-8"
                                                           : "text/plain; charset=utf-8");
  });

  // 413 for oversized bodies comes from set_payload_max_length; count it as a rejection.
  server_->set_error_handler([this](const httplib::Request&, httplib::Response& response) {
    if (response.status == 413) ++metrics_.webhooks_rejected_oversized;
  });

  if (auto s = listen_in_background(*server_, config_.http_bind, config_.http_port, "http",
                                    "from BRIDGE_HTTP_BIND and SOKETI_WEBHOOK_URL", &thread_);
      !s) {
    return s;
  }
  log::info("HTTP: webhooks on http://{}:{}{}, also /snapshot", config_.http_bind, config_.http_port,
            config_.webhook_path);
  return Status::ok();
}

void HttpServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace bridge
