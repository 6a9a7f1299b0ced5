#include <pthread.h>

#include "ops_server.h"

#include <httplib.h>

#include "http_listen.h"
#include "log.h"
#include "soketi_client.h"

namespace bridge {
namespace {

constexpr int kWorkers = 2;
constexpr std::chrono::milliseconds kProbeInterval{2000};
constexpr std::chrono::milliseconds kProbeTimeout{700};

}  // namespace

OpsServer::OpsServer(const Config& config, Metrics& metrics, const CoalescingQueue& queue,
                     const ChangeSource& source, std::string version)
    : config_(config),
      metrics_(metrics),
      queue_(queue),
      source_(source),
      version_(std::move(version)),
      server_(make_http_server(kWorkers)) {}

OpsServer::~OpsServer() { stop(); }

Status OpsServer::start() {
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });

  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& response) {
    std::string reason;
    if (!source_.ready(&reason) || !soketi_ready(&reason)) {
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

  if (auto s = listen_in_background(*server_, config_.ops_host, config_.ops_port, "ops-http",
                                    "from BRIDGE_OPS_LISTEN", &thread_);
      !s) {
    return s;
  }
  prober_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "soketi-probe");
    probe_soketi_until_stopped();
  });
  log::info("HTTP: /healthz /readyz /metrics on http://{}:{}", config_.ops_host, config_.ops_port);
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
