#include "http_outcome.h"

#include <httplib.h>

#include <cstdlib>

#include "log.h"

namespace bridge {

std::string describe_http_error(httplib::Error error, std::string_view peer) {
  switch (error) {
    case httplib::Error::Connection:
      return fmt::format("cannot connect (refused, or no route: is {} running there?)", peer);
    case httplib::Error::ConnectionTimeout:
      return "connecting timed out";
    case httplib::Error::Read:
      return "no answer (the read failed or timed out)";
    case httplib::Error::Write:
      return "sending the request failed";
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLServerVerification:
      return "the TLS handshake failed (https where the peer speaks http, or its certificate)";
    default:
      return "HTTP error: " + httplib::to_string(error);
  }
}

PublishOutcome classify_http_result(const httplib::Result& result, int status, std::string_view peer) {
  PublishOutcome outcome;
  if (!result) {
    outcome.kind = PublishOutcome::Kind::kTimeout;
    outcome.detail = describe_http_error(result.error(), peer);
    return outcome;
  }
  outcome.http_status = status;
  if (status >= 200 && status < 300) return outcome;
  outcome.detail = log::excerpt(result->body, 200);
  if (status == 429) {
    outcome.kind = PublishOutcome::Kind::kThrottled;
    if (result->has_header("Retry-After")) {
      outcome.retry_after = std::chrono::seconds(std::atoi(result->get_header_value("Retry-After").c_str()));
    }
  } else if (status >= 300 && status < 400) {
    outcome.kind = PublishOutcome::Kind::kServerError;
    outcome.detail = fmt::format("redirected to \"{}\": configure the final URL",
                                 log::excerpt(result->get_header_value("Location"), 120));
  } else if (status >= 500 || status < 200) {
    outcome.kind = PublishOutcome::Kind::kServerError;
  } else {
    outcome.kind = PublishOutcome::Kind::kRejected;
  }
  return outcome;
}

}  // namespace bridge
