// OpsServer: what operators reach, apart from what Soketi and browsers reach (HttpServer), on
// BRIDGE_OPS_LISTEN (127.0.0.1:3002 by default; never exposed by the deploy files).
//   GET /healthz   the process is alive.
//   GET /readyz    the change source connected and recently verified, Soketi accepts our credentials;
//                  the body says the role: "ready: active" or "ready: standby (...)". A standby
//                  is ready (200): it serves webhooks and snapshots like the active one, so it
//                  belongs behind the same Service; not ready means it cannot do that (its
//                  PostgreSQL session is down or Soketi refuses it). Which one is active is
//                  /metrics' cache_bridge_role (and the log).
//   GET /metrics   Prometheus text format.
//   GET /status    one HTML page for a person (status_page.h), polling
//   GET /status.json  the same state as JSON: readiness, queue, lag, errors, recent invalidations.
//                  It shows cache keys: one more reason this port stays private.
// Probes are cheap: Soketi is probed every 2 s by a thread of this server's own, and /readyz
// only reads the last result, so no prober can slow anything down or reach Soketi through it.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "coalescing_queue.h"
#include "config.h"
#include "metrics.h"
#include "change_source.h"
#include "leadership.h"
#include "status.h"

namespace httplib {
class Server;
}

namespace bridge {

class OpsServer {
 public:
  OpsServer(const Config& config, Metrics& metrics, const CoalescingQueue& queue,
            const ChangeSource& source, const Leadership& leadership, std::string version);
  ~OpsServer();  // stops and joins
  OpsServer(const OpsServer&) = delete;
  OpsServer& operator=(const OpsServer&) = delete;

  [[nodiscard]] Status start();
  void stop();

 private:
  void probe_soketi_until_stopped();
  bool soketi_ready(std::string* reason);
  bool ready(std::string* reason);  // what /readyz answers
  void refresh_scraped_gauges();    // the values read per request rather than per change
  std::string status_json();

  const Config& config_;
  Metrics& metrics_;
  const CoalescingQueue& queue_;
  const ChangeSource& source_;
  const Leadership& leadership_;
  const std::string version_;
  const int64_t started_ms_;  // epoch
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::thread prober_;

  std::mutex probe_mutex_;
  std::condition_variable stop_probing_;
  // State below is protected by probe_mutex_.
  bool probed_ = false;  // a first result exists
  bool probe_ok_ = false;
  std::string probe_reason_;
  bool stopping_ = false;
};

}  // namespace bridge
