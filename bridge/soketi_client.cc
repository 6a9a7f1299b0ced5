#include "soketi_client.h"

#include <httplib.h>
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>

#include "http_outcome.h"
#include "log.h"
#include "pusher_signer.h"

namespace bridge {
namespace {

std::string body_excerpt(const std::string& body) { return log::excerpt(body, 200); }

// Soketi 1.6.1 on this uWebSockets build answers errors with HTTP 200 and a body of
// {"error": "...", "code": 401}: the code in the body is the real status.
int effective_status(const httplib::Response& response) {
  if (response.status < 200 || response.status >= 300) return response.status;
  if (response.body.find("\"error\"") == std::string::npos) return response.status;
  rapidjson::Document doc;
  doc.Parse(response.body.c_str());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("error")) return response.status;
  auto code = doc.FindMember("code");
  if (code != doc.MemberEnd() && code->value.IsInt() && code->value.GetInt() >= 400) {
    return code->value.GetInt();
  }
  return 500;  // an error without a usable code: treat as a server error
}

// No answer, or an answer that says this node is in trouble: another node may do better.
bool worth_another_address(const httplib::Result& result) {
  return !result || effective_status(*result) >= 500;
}

std::string failure_of(const httplib::Result& result) {
  if (!result) return describe_http_error(result.error(), "Soketi");
  return fmt::format("HTTP {}: {}", effective_status(*result), body_excerpt(result->body));
}

PublishOutcome classify(const httplib::Result& result) {
  return classify_http_result(result, result ? effective_status(*result) : 0, "Soketi");
}

}  // namespace

SoketiClient::SoketiClient(const Config& config, Metrics* metrics) : config_(config), metrics_(metrics) {
  for (size_t i = 0; i < config.soketi_addresses.size(); ++i) {
    urls_.push_back(config.soketi_base_url(i));
    const SoketiAddress& address = config.soketi_addresses[i];
    http_.push_back(make_http_transport(config.soketi_use_tls ? "https" : "http", address.host, address.port,
                                        config.http_timeout));
  }
}

SoketiClient::~SoketiClient() = default;

std::string SoketiClient::signed_target(const char* method, const std::string& api_path,
                                        const std::string& body) const {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  return config_.soketi_path_prefix + api_path + "?" +
         signed_query(method, api_path, {}, body, config_.app_key, config_.app_secret, now);
}

PublishOutcome SoketiClient::publish(std::span<const PusherEvent> events) {
  std::string api_path;
  std::string body;
  if (events.size() == 1) {
    api_path = "/apps/" + config_.app_id + "/events";
    const auto& e = events.front();
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.StartObject();
    w.Key("name");
    w.String(e.name.data(), static_cast<rapidjson::SizeType>(e.name.size()));
    w.Key("channels");
    w.StartArray();
    w.String(e.channel.data(), static_cast<rapidjson::SizeType>(e.channel.size()));
    w.EndArray();
    w.Key("data");
    w.String(e.data.data(), static_cast<rapidjson::SizeType>(e.data.size()));
    w.EndObject();
    body.assign(buffer.GetString(), buffer.GetSize());
  } else {
    api_path = "/apps/" + config_.app_id + "/batch_events";
    body = encode_batch_body(events);
  }
  std::string failures;
  auto result = send_with_failover(
      [&](HttpTransport& http) { return http.post(signed_target("POST", api_path, body), {}, body, "application/json"); },
      &failures);
  PublishOutcome outcome = classify(result);
  if (urls_.size() > 1 && worth_another_address(result)) outcome.detail = "every address failed: " + failures;
  return outcome;
}

void SoketiClient::prepare() { http_[current_]->prepare(); }

httplib::Result SoketiClient::send_with_failover(const std::function<httplib::Result(HttpTransport&)>& send,
                                                 std::string* failures) {
  const size_t first = current_;
  size_t at = first;
  for (size_t tried = 1;; ++tried) {
    httplib::Result result = send(*http_[at]);
    answered_ = !worth_another_address(result);
    if (answered_) {
      if (at != first) {
        current_ = at;
        if (metrics_) ++metrics_->soketi_failovers;
        log::warn("Soketi: now using {} ({})", urls_[at], *failures);
      }
      return result;
    }
    *failures += fmt::format("{}{}: {}", failures->empty() ? "" : "; ", urls_[at], failure_of(result));
    if (tried == urls_.size()) return result;  // every address failed: current_ stays
    at = (at + 1) % urls_.size();
  }
}

Status SoketiClient::occupied_channels(std::vector<std::string>* channels) {
  std::string api_path = "/apps/" + config_.app_id + "/channels";
  std::string failures;
  auto result = send_with_failover(
      [&](HttpTransport& http) { return http.get(signed_target("GET", api_path, "")); }, &failures);
  if (!result || (!answered_ && urls_.size() > 1)) {
    // With several addresses, each one's reason (no answer or a 5xx) is in `failures`.
    return Status::error(urls_.size() == 1 ? "Soketi unreachable at " + failures
                                           : "Soketi unreachable at every address: " + failures);
  }
  int status = effective_status(*result);
  if (status == 401 || status == 403 || status == 404) {
    return Status::error(fmt::format(
        "Soketi rejected the credentials ({}): check SOKETI_APP_ID, SOKETI_APP_KEY and SOKETI_APP_SECRET: {}",
        status, body_excerpt(result->body)));
  }
  if (status != 200) {
    return Status::error(fmt::format("Soketi at {} answered {} to GET {}: {}", urls_[current_], status,
                                     api_path, body_excerpt(result->body)));
  }
  rapidjson::Document doc;
  doc.Parse(result->body.c_str());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("channels") ||
      !doc["channels"].IsObject()) {
    return Status::error("Soketi's channel list is not the expected JSON");
  }
  channels->clear();
  for (const auto& member : doc["channels"].GetObject()) channels->push_back(member.name.GetString());
  return Status::ok();
}

}  // namespace bridge
