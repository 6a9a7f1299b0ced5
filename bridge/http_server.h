// HttpServer: the bridge's own HTTP endpoint, on the port of SOKETI_WEBHOOK_URL.
//   POST <webhook path>  Soketi's webhooks: verified, answered at once, replays queued.
//   GET  /healthz        the process is alive.
//   GET  /readyz         LISTEN connection up and recently verified, Soketi accepts our credentials.
//   GET  /metrics        Prometheus text format.
//   GET  /snapshot       one channel's current stamps for a new subscriber (snapshot.h), with CORS.
// Handlers run on cpp-httplib's thread pool; everything they touch is thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "coalescing_queue.h"
#include "config.h"
#include "metrics.h"
#include "pg_listener.h"
#include "replayer.h"
#include "snapshot.h"
#include "status.h"

namespace httplib {
class Server;
}

namespace bridge {

class HttpServer {
 public:
  HttpServer(const Config& config, Metrics& metrics, const CoalescingQueue& queue,
             PgListener& listener, Replayer& replayer, SnapshotService& snapshots, std::string version);
  ~HttpServer();  // stops and joins
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds BRIDGE_HTTP_BIND:<port> and serves on a thread of its own.
  [[nodiscard]] Status start();
  void stop();

 private:
  bool soketi_ready(std::string* reason);

  const Config& config_;
  Metrics& metrics_;
  const CoalescingQueue& queue_;
  PgListener& listener_;
  Replayer& replayer_;
  SnapshotService& snapshots_;
  const std::string version_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;

  std::mutex probe_mutex_;
  // State below is protected by probe_mutex_: Soketi's last readiness probe, reused briefly
  // so a busy prober does not turn into load on Soketi.
  std::chrono::steady_clock::time_point probed_at_{};
  bool probe_ok_ = false;
  std::string probe_reason_;
};

}  // namespace bridge
