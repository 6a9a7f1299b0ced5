// HttpServer: what Soketi and browsers reach, on the port of SOKETI_WEBHOOK_URL
// (BRIDGE_HTTP_BIND). Operators' endpoints (probes, metrics) listen apart (OpsServer).
//   POST <webhook path>  Soketi's webhooks: verified, answered at once, replays queued.
//   GET  /snapshot       one channel's current stamps for a new subscriber (snapshot.h), with CORS.
// Handlers run on cpp-httplib's thread pool; everything they touch is thread-safe.
#pragma once

#include <memory>
#include <thread>

#include "config.h"
#include "metrics.h"
#include "replayer.h"
#include "snapshot.h"
#include "status.h"

namespace httplib {
class Server;
}

namespace bridge {

class HttpServer {
 public:
  HttpServer(const Config& config, Metrics& metrics, Replayer& replayer, SnapshotService& snapshots);
  ~HttpServer();  // stops and joins
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds BRIDGE_HTTP_BIND:<port> and serves on a thread of its own.
  [[nodiscard]] Status start();
  void stop();

 private:
  const Config& config_;
  Metrics& metrics_;
  Replayer& replayer_;
  SnapshotService& snapshots_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace bridge
