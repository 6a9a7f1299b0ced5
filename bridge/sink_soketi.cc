#include "sink_soketi.h"

#include <vector>

#include "event_encoder.h"
#include "soketi_client.h"

namespace bridge {
namespace {

class SoketiSinkClient : public SinkClient {
 public:
  SoketiSinkClient(const Config& config, Metrics& metrics) : config_(config), client_(config, &metrics) {}

  PublishOutcome send(std::span<const QueuedInvalidation> items) override {
    events_.clear();
    for (const auto& item : items) {
      events_.push_back({item.channel, config_.event_name,
                         encode_event_data(item.invalidation, config_.max_event_bytes)});
    }
    return client_.publish(events_);
  }
  void prepare() override { client_.prepare(); }

 private:
  const Config& config_;
  SoketiClient client_;
  std::vector<PusherEvent> events_;  // reused: one request's events
};

}  // namespace

SoketiSink::SoketiSink(const Config& config, Metrics& metrics)
    : config_(config), metrics_(metrics), rate_limiter_(config.max_events_per_second) {}

std::unique_ptr<SinkClient> SoketiSink::connect() const {
  return std::make_unique<SoketiSinkClient>(config_, metrics_);
}

}  // namespace bridge
