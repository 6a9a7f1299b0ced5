#include <pthread.h>

#include "ops_server.h"

#include <httplib.h>

#include <algorithm>

#include "clock.h"
#include "http_listen.h"
#include "log.h"
#include "soketi_client.h"
#include "status_page.h"

namespace bridge {
namespace {

constexpr int kWorkers = 2;
constexpr std::chrono::milliseconds kProbeInterval{2000};
constexpr std::chrono::milliseconds kProbeTimeout{700};

}  // namespace

OpsServer::OpsServer(const Config& config, Metrics& metrics, const CoalescingQueue& queue,
                     const ChangeSource& source, const Leadership& leadership, std::string version)
    : config_(config),
      metrics_(metrics),
      queue_(queue),
      source_(source),
      leadership_(leadership),
      version_(std::move(version)),
      started_ms_(epoch_ms()),
      server_(make_http_server(kWorkers)) {}

OpsServer::~OpsServer() { stop(); }

Status OpsServer::start() {
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });

  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& response) {
    std::string reason;
    if (!ready(&reason)) {
      response.status = 503;
      response.set_content(reason + "\n", "text/plain");
      return;
    }
    response.set_content("ready: " + leadership_.describe() + "\n", "text/plain");
  });

  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    refresh_scraped_gauges();
    response.set_content(metrics_.render(version_), "text/plain; version=0.0.4");
  });

  // For a person: one page that polls the JSON (see status_page.h). No CORS header: another
  // origin's page cannot read the JSON, and a Host that is not ours (DNS rebinding) is refused.
  auto host_refused = [this](const httplib::Request& request, httplib::Response& response) {
    if (status_host_allowed(request.get_header_value("Host"), config_.ops_host)) return false;
    response.status = 403;
    response.set_content("the status is served to an IP address, localhost or BRIDGE_OPS_LISTEN's host only\n",
                         "text/plain");
    return true;
  };
  server_->Get("/status", [host_refused](const httplib::Request& request, httplib::Response& response) {
    if (host_refused(request, response)) return;
    response.set_header("Content-Security-Policy", status_page_csp());
    response.set_header("X-Content-Type-Options", "nosniff");
    response.set_header("Cache-Control", "no-store");
    response.set_content(status_page_html(), "text/html; charset=utf-8");
  });
  server_->Get("/status.json", [this, host_refused](const httplib::Request& request, httplib::Response& response) {
    if (host_refused(request, response)) return;
    response.set_header("X-Content-Type-Options", "nosniff");
    response.set_header("Cache-Control", "no-store");
    response.set_content(status_json(), "application/json");
  });

  if (auto s = listen_in_background(*server_, config_.ops_host, config_.ops_port, "ops-http",
                                    "from BRIDGE_OPS_LISTEN", &thread_);
      !s) {
    return s;
  }
  prober_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "soketi-probe");
    probe_soketi_until_stopped();
  });
  log::info("HTTP: /healthz /readyz /metrics /status on http://{}:{}", config_.ops_host, config_.ops_port);
  return Status::ok();
}

void OpsServer::stop() {
  {
    std::lock_guard lock(probe_mutex_);
    stopping_ = true;
  }
  stop_probing_.notify_all();
  if (prober_.joinable()) prober_.join();
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void OpsServer::probe_soketi_until_stopped() {
  Config probe_config = config_;
  probe_config.http_timeout = kProbeTimeout;
  SoketiClient client(probe_config);
  std::unique_lock lock(probe_mutex_);
  while (!stopping_) {
    lock.unlock();
    std::vector<std::string> channels;
    Status s = client.occupied_channels(&channels);
    lock.lock();
    probed_ = true;
    probe_ok_ = s.is_ok();
    probe_reason_ = s.message();
    stop_probing_.wait_for(lock, kProbeInterval, [&] { return stopping_; });
  }
}

bool OpsServer::ready(std::string* reason) { return source_.ready(reason) && soketi_ready(reason); }

void OpsServer::refresh_scraped_gauges() {
  // The queue's own counters, read per scrape rather than per publish.
  metrics_.queue_depth = static_cast<int64_t>(queue_.pending_keys());
  metrics_.queue_bytes = static_cast<int64_t>(queue_.bytes());
  metrics_.coalesced = queue_.coalesced_count();
  int64_t pending = metrics_.cursor_pending_since_us;
  metrics_.cursor_lag_seconds = pending > 0 ? std::max<double>(0, (epoch_us() - pending) / 1e6) : 0.0;
  std::string reason;
  metrics_.ready = ready(&reason) ? 1 : 0;
}

std::string OpsServer::status_json() {
  refresh_scraped_gauges();
  StatusSnapshot s;
  s.version = version_;
  s.source = config_.source == Config::Source::kWal ? "wal" : "notify";
  s.role = leadership_.is_active() ? "active" : "standby";
  s.now_ms = epoch_ms();
  s.started_ms = started_ms_;
  s.ready = ready(&s.ready_reason);
  s.pg_connected = metrics_.listen_connected != 0;
  s.pg_reconnects = metrics_.pg_reconnects;
  s.notify_queue_usage = metrics_.notify_queue_usage;
  s.queue_depth = metrics_.queue_depth;
  s.queue_max_keys = config_.queue_max_keys;
  if (config_.source == Config::Source::kWal) {
    s.changes_received = metrics_.wal_changes_received;
  } else {
    for (const auto& [channel, count] : metrics_.notifications_received) s.changes_received += count;
  }
  s.held_back = metrics_.notifications_held_back;
  s.events_published = metrics_.soketi.delivered;
  s.batches_published = metrics_.soketi.requests;
  s.publish_retries = metrics_.soketi.retries;
  s.errors_timeout = metrics_.soketi.errors_timeout;
  s.errors_server = metrics_.soketi.errors_server;
  s.errors_rejected = metrics_.soketi.errors_rejected;
  s.errors_throttled = metrics_.soketi.errors_throttled;
  s.events_dropped = metrics_.soketi.dropped_rejected;
  if (log::Problem p = log::last_problem(); p.time_ms != 0) {
    s.last_problem = StatusSnapshot::Problem{p.time_ms, log::level_name(p.level), std::move(p.message)};
  }
  s.slot_lag_bytes = metrics_.wal_lag_bytes;
  s.slot_lag_seconds = metrics_.wal_lag_seconds;
  s.cursor_lag_seconds = metrics_.cursor_lag_seconds;
  s.recent = metrics_.soketi.recent.newest_first();
  if (metrics_.http_sink_enabled) {
    const SinkCounters& c = metrics_.http_sink;
    s.http_sink = StatusSnapshot::HttpSinkStatus{
        .url = url_for_display(config_.http_sink_url),
        .delivered = c.delivered,
        .requests = c.requests,
        .retries = c.retries,
        .dropped = c.dropped_rejected,
        .errors = c.errors_timeout + c.errors_server + c.errors_rejected + c.errors_throttled};
  }
  return render_status_json(s);
}

bool OpsServer::soketi_ready(std::string* reason) {
  std::lock_guard lock(probe_mutex_);
  if (!probed_) {
    *reason = "Soketi not probed yet";
    return false;
  }
  if (!probe_ok_) *reason = probe_reason_;
  return probe_ok_;
}

}  // namespace bridge
