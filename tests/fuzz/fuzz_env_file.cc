// libFuzzer: the text of a .env file through parse_env_text.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "env_file.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  bridge::EnvFileResult result = bridge::parse_env_text(text);
  size_t lines = 1;
  for (char c : text) lines += c == '\n';
  FUZZ_CHECK(result.values.size() + result.errors.size() <= lines);
  for (const auto& [key, value] : result.values) {
    FUZZ_CHECK(!key.empty() && !std::isdigit(static_cast<unsigned char>(key[0])));
    for (char c : key) FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  }
  for (const auto& error : result.errors) FUZZ_CHECK(error.rfind("line ", 0) == 0);
  return 0;
}
