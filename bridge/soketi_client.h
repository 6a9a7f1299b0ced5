// SoketiClient: Soketi's (Pusher's) HTTP API, signed, with explicit timeouts, over every address
// of SOKETI_HOST (the nodes of one Soketi cluster; any node's API reaches every subscriber).
//
// Failover rule. A call goes to the current address (at first, the first one listed). When it
// gets no answer there (cannot connect, timed out, connection reset) or a 5xx, the client moves
// to the next address (after the last: the first) and sends the call again there, each address
// at most once per call; the address that answers (2xx, 4xx, 429: Soketi is up, whatever it
// thinks of the request) becomes current and stays current. A healthy address is stuck to: the
// client never moves back on its own, only past an address that fails. A call therefore takes at
// most one HTTP timeout per address. A call that fails everywhere returns the last address's
// failure, with every address's reason in the detail, and leaves the current address as it was
// (the outage shows in the caller's errors, not as failovers). An event sent again after a
// timeout may reach subscribers twice (invalidations are idempotent). Every move to another
// address counts once in Metrics::soketi_failovers (when the client was given metrics) and is
// logged once, with why the addresses before it failed.
// Not thread-safe: each thread that talks to Soketi owns its own client.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config.h"
#include "event_encoder.h"
#include "http_transport.h"
#include "metrics.h"
#include "sink.h"
#include "status.h"

namespace httplib {
class Result;
}

namespace bridge {

class SoketiClient {
 public:
  // `metrics` (optional) counts the failovers; it must outlive the client.
  explicit SoketiClient(const Config& config, Metrics* metrics = nullptr);
  ~SoketiClient();
  SoketiClient(const SoketiClient&) = delete;
  SoketiClient& operator=(const SoketiClient&) = delete;

  // POST /apps/<id>/batch_events (a single event goes to /events). REQUIRES: 1 <= size <= batch limit.
  [[nodiscard]] PublishOutcome publish(std::span<const PusherEvent> events);

  // GET /apps/<id>/channels: the occupied channels (of the whole cluster, with the Redis adapter).
  [[nodiscard]] Status occupied_channels(std::vector<std::string>* channels);

  // Between calls: opens the next connection to the current address ahead (HttpTransport::prepare).
  void prepare();

  // The base URL of the current address (no secret).
  const std::string& current_url() const { return urls_[current_]; }
  // Whether the last call got an answer other than a 5xx from some address.
  bool answered() const { return answered_; }

 private:
  std::string signed_target(const char* method, const std::string& api_path, const std::string& body) const;
  // Applies the failover rule to one request; `failures` gets "<url>: <why>" for every address
  // that failed. The result is the current address's (the last one tried when all failed).
  httplib::Result send_with_failover(const std::function<httplib::Result(HttpTransport&)>& send,
                                     std::string* failures);

  const Config& config_;
  Metrics* metrics_;
  std::vector<std::string> urls_;                        // base URL per address, as in config
  std::vector<std::unique_ptr<HttpTransport>> http_;  // one per address, same order
  size_t current_ = 0;                                   // index into urls_ and http_
  bool answered_ = false;
};

}  // namespace bridge
