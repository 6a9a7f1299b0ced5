// SoketiClient: Soketi's (Pusher's) HTTP API, signed, with explicit timeouts.
// Not thread-safe: each thread that talks to Soketi owns its own client.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config.h"
#include "event_encoder.h"
#include "sink.h"
#include "status.h"

namespace httplib {
class Client;
}

namespace bridge {

class SoketiClient {
 public:
  explicit SoketiClient(const Config& config);
  ~SoketiClient();
  SoketiClient(const SoketiClient&) = delete;
  SoketiClient& operator=(const SoketiClient&) = delete;

  // POST /apps/<id>/batch_events (a single event goes to /events). REQUIRES: 1 <= size <= batch limit.
  PublishOutcome publish(std::span<const PusherEvent> events);

  // GET /apps/<id>/channels: the occupied channels.
  Status occupied_channels(std::vector<std::string>* channels);

 private:
  std::string signed_target(const char* method, const std::string& api_path, const std::string& body) const;

  const Config& config_;
  std::unique_ptr<httplib::Client> http_;
};

}  // namespace bridge
