#include <pthread.h>

#include "http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"
#include "soketi_client.h"
#include "webhook.h"

namespace bridge {
namespace {

constexpr size_t kMaxWebhookBytes = 1024 * 1024;
constexpr std::chrono::milliseconds kProbeReuse{2000};
constexpr std::chrono::milliseconds kProbeTimeout{700};
constexpr int kListenBacklog = 1024;

std::optional<std::string_view> header(const httplib::Request& request, const char* name) {
  if (!request.has_header(name)) return std::nullopt;
  // cpp-httplib owns the string for the request's lifetime.
  auto range = request.headers.find(name);
  return std::string_view(range->second);
}

}  // namespace

HttpServer::HttpServer(const Config& config, Metrics& metrics, const CoalescingQueue& queue,
                       PgListener& listener, Replayer& replayer, SnapshotService& snapshots,
                       std::string version)
    : config_(config),
      metrics_(metrics),
      queue_(queue),
      listener_(listener),
      replayer_(replayer),
      snapshots_(snapshots),
      version_(std::move(version)),
      server_(std::make_unique<httplib::Server>()) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  server_->new_task_queue = [] { return new httplib::ThreadPool(4); };
  server_->set_payload_max_length(kMaxWebhookBytes);
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(5, 0);
  // An idle keep-alive connection holds one of the four workers until it closes: a handful
  // of clients that keep theirs open (Soketi's webhook client does, so do browsers) would
  // starve the rest, and stop() would wait for them. One request per connection.
  server_->set_keep_alive_max_count(1);
  server_->set_keep_alive_timeout(1);

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

  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });

  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& response) {
    std::string reason;
    if (!listener_.ready(&reason) || !soketi_ready(&reason)) {
      response.status = 503;
      response.set_content(reason + "\n", "text/plain");
      return;
    }
    response.set_content("ready\n", "text/plain");
  });

  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    // The queue's own counters, read per scrape rather than per publish.
    metrics_.queue_depth = static_cast<int64_t>(queue_.pending_keys());
    metrics_.coalesced = queue_.coalesced_count();
    response.set_content(metrics_.render(version_), "text/plain; version=0.0.4");
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

  // The packaged cpp-httplib listens with a backlog of 5: in a burst of webhooks or snapshot
  // requests the kernel drops the rest of the SYNs and each such client waits a second to
  // retry. Keep the listening socket and raise its backlog once bound.
  int listening = -1;
  server_->set_socket_options([&listening](socket_t sock) {
    httplib::default_socket_options(sock);
    listening = sock;
  });
  if (!server_->bind_to_port(config_.http_bind.c_str(), config_.http_port)) {
    return Status::error(fmt::format("cannot listen on {}:{} (from BRIDGE_HTTP_BIND and SOKETI_WEBHOOK_URL)",
                                     config_.http_bind, config_.http_port));
  }
  if (listening >= 0) ::listen(listening, kListenBacklog);
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "http");
    server_->listen_after_bind();
  });
  log::info("HTTP: webhooks on http://{}:{}{}, also /healthz /readyz /metrics", config_.http_bind,
            config_.http_port, config_.webhook_path);
  return Status::ok();
}

void HttpServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

bool HttpServer::soketi_ready(std::string* reason) {
  std::lock_guard lock(probe_mutex_);
  auto now = std::chrono::steady_clock::now();
  if (now - probed_at_ > kProbeReuse) {
    Config probe_config = config_;
    probe_config.http_timeout = kProbeTimeout;
    SoketiClient client(probe_config);
    std::vector<std::string> channels;
    Status s = client.occupied_channels(&channels);
    probe_ok_ = s.is_ok();
    probe_reason_ = s.message();
    probed_at_ = now;
  }
  if (!probe_ok_) *reason = probe_reason_;
  return probe_ok_;
}

}  // namespace bridge
