// libFuzzer: conninfo_secrets over a connection string (the input's first line), then redact
// over the rest of the input and over the connection string itself, as log lines are redacted.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "secret_redactor.h"

namespace {

constexpr std::string_view kMarker = "[redacted]";

// Whether redact() promises `secret` is gone from its output: it blanks secrets of at least
// 3 bytes, and one that shares a byte with the marker could be re-formed across it.
bool must_vanish(const std::string& secret) {
  return secret.size() >= 3 && secret.find_first_of(kMarker) == std::string::npos;
}

void check_redacted(std::string_view text, const std::vector<std::string>& secrets) {
  std::string out = bridge::redact(text, secrets);
  for (const auto& secret : secrets) {
    if (must_vanish(secret)) FUZZ_CHECK(out.find(secret) == std::string::npos);
  }
  if (secrets.empty()) FUZZ_CHECK(out == text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t newline = input.find('\n');
  std::string_view conninfo = input.substr(0, newline);
  std::string_view text = newline == std::string_view::npos ? input : input.substr(newline + 1);

  std::vector<std::string> secrets = bridge::conninfo_secrets(conninfo);
  for (const auto& secret : secrets) FUZZ_CHECK(!secret.empty());
  check_redacted(conninfo, secrets);
  check_redacted(text, secrets);
  check_redacted("connection to \"" + std::string(conninfo) + "\" failed", secrets);
  return 0;
}
