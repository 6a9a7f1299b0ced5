#include "soketi_client.h"

#include <httplib.h>
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>

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

// httplib names its errors in one word ("Connection"): say what happened in a sentence.
std::string describe(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect (refused, or no route: is Soketi running there?)";
    case httplib::Error::ConnectionTimeout:
      return "connecting timed out";
    case httplib::Error::Read:
      return "no answer (the read failed or timed out)";
    case httplib::Error::Write:
      return "sending the request failed";
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLServerVerification:
      return "the TLS handshake failed (SOKETI_USE_TLS, certificates)";
    default:
      return "HTTP error: " + httplib::to_string(error);
  }
}

PublishOutcome classify(const httplib::Result& result) {
  PublishOutcome outcome;
  if (!result) {
    outcome.kind = PublishOutcome::Kind::kTimeout;
    outcome.detail = describe(result.error());
    return outcome;
  }
  outcome.http_status = effective_status(*result);
  if (outcome.http_status >= 200 && outcome.http_status < 300) return outcome;
  outcome.detail = body_excerpt(result->body);
  if (outcome.http_status == 429) {
    outcome.kind = PublishOutcome::Kind::kThrottled;
    if (result->has_header("Retry-After")) {
      outcome.retry_after = std::chrono::seconds(std::atoi(result->get_header_value("Retry-After").c_str()));
    }
  } else if (outcome.http_status >= 500) {
    outcome.kind = PublishOutcome::Kind::kServerError;
  } else {
    outcome.kind = PublishOutcome::Kind::kRejected;
  }
  return outcome;
}

}  // namespace

SoketiClient::SoketiClient(const Config& config)
    : config_(config), http_(std::make_unique<httplib::Client>(config.soketi_base_url())) {
  auto timeout = config.http_timeout;
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout - seconds);
  http_->set_connection_timeout(seconds.count(), micros.count());
  http_->set_read_timeout(seconds.count(), micros.count());
  http_->set_write_timeout(seconds.count(), micros.count());
  // Soketi closes after every response; a proxy in front (or Pusher) may keep it open.
  http_->set_keep_alive(true);
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
  return classify(http_->Post(signed_target("POST", api_path, body), body, "application/json"));
}

Status SoketiClient::occupied_channels(std::vector<std::string>* channels) {
  std::string api_path = "/apps/" + config_.app_id + "/channels";
  auto result = http_->Get(signed_target("GET", api_path, ""));
  if (!result) {
    return Status::error("Soketi unreachable at " + config_.soketi_base_url() + ": " + describe(result.error()));
  }
  int status = effective_status(*result);
  if (status == 401 || status == 403 || status == 404) {
    return Status::error(fmt::format(
        "Soketi rejected the credentials ({}): check SOKETI_APP_ID, SOKETI_APP_KEY and SOKETI_APP_SECRET: {}",
        status, body_excerpt(result->body)));
  }
  if (status != 200) {
    return Status::error(fmt::format("Soketi answered {} to GET {}: {}", status, api_path,
                                     body_excerpt(result->body)));
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
