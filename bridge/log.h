// Logging: one line per event worth knowing, to stderr, as plain text or JSON lines.
// Thread-safe. Callers never pass secrets on purpose; every line is still redacted of the
// secrets given to hide_secrets() (libpq echoes parts of a malformed connection string).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bridge::log {

enum class Level { kDebug, kInfo, kWarn, kError };
enum class Format { kText, kJson };

void configure(Level min_level, Format format);
// Secrets blanked out of every line from now on. Call before other threads log.
void hide_secrets(std::vector<std::string> secrets);
// `text` without them: for output that does not go through the log (--check).
std::string redacted(std::string_view text);
bool enabled(Level level);
void write(Level level, std::string_view message);

// The last line written at warn or error (redacted like every line), for the operators'
// status page: one look shows the latest problem without reading the log.
struct Problem {
  int64_t time_ms = 0;  // epoch ms; 0: none logged since the start
  Level level = Level::kWarn;
  std::string message;
};
Problem last_problem();
const char* level_name(Level level);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kDebug)) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kInfo)) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kWarn)) write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

// A short, printable excerpt of untrusted text for log lines (at most max_len bytes).
std::string excerpt(std::string_view text, size_t max_len = 80);

}  // namespace bridge::log
