// What an HTTP answer (or the lack of one) means for a delivery: the rules every sink shares.
// The answers come through an HttpTransport (http_transport.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "sink.h"

namespace httplib {
class Result;
enum class Error;
}  // namespace httplib

namespace bridge {

// A transport error in a sentence ("cannot connect (refused, or no route: is <peer> running
// there?)"), not httplib's one word.
std::string describe_http_error(httplib::Error error, std::string_view peer);

// 2xx ok; 429 throttled (with Retry-After); 5xx, and 3xx (a redirect is a URL to fix, not a
// reason to drop anything), a server error; other 4xx rejected. `status` is the answer's
// status as the receiver means it (Soketi may wrap an error in a 200).
PublishOutcome classify_http_result(const httplib::Result& result, int status, std::string_view peer);

}  // namespace bridge
