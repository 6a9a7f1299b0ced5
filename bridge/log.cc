#include "log.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "clock.h"
#include "secret_redactor.h"

namespace bridge::log {
namespace {

std::atomic<Level> g_min_level{Level::kInfo};
std::atomic<Format> g_format{Format::kText};
std::mutex g_write_mutex;
std::vector<std::string> g_secrets;  // set once at startup, before other threads run
Problem g_last_problem;               // protected by g_write_mutex

std::string utc_timestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t seconds = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, millis);
}

}  // namespace

const char* level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

Problem last_problem() {
  std::lock_guard lock(g_write_mutex);
  return g_last_problem;
}

void configure(Level min_level, Format format) {
  g_min_level = min_level;
  g_format = format;
}

void hide_secrets(std::vector<std::string> secrets) {
  // Messages are made one line (pg_error): a secret with a line break or tab appears there
  // with spaces instead.
  size_t count = secrets.size();
  for (size_t i = 0; i < count; ++i) {
    std::string flat = secrets[i];
    std::replace_if(flat.begin(), flat.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
    if (flat != secrets[i]) secrets.push_back(std::move(flat));
  }
  g_secrets = std::move(secrets);
}

std::string redacted(std::string_view text) { return redact(text, g_secrets); }

bool enabled(Level level) { return level >= g_min_level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view raw_message) {
  std::string safe = redacted(raw_message);
  std::string_view message = safe;
  std::string line;
  if (g_format == Format::kJson) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.StartObject();
    w.Key("time");
    std::string ts = utc_timestamp();
    w.String(ts.c_str(), static_cast<rapidjson::SizeType>(ts.size()));
    w.Key("level");
    w.String(level_name(level));
    w.Key("msg");
    w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
    w.EndObject();
    line.assign(buffer.GetString(), buffer.GetSize());
  } else {
    line = fmt::format("{} {:<5} {}", utc_timestamp(), level_name(level), message);
  }
  line.push_back('\n');
  std::lock_guard lock(g_write_mutex);
  if (level >= Level::kWarn) g_last_problem = {epoch_ms(), level, std::string(message)};
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

std::string excerpt(std::string_view text, size_t max_len) {
  std::string out;
  for (unsigned char c : text.substr(0, max_len)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (text.size() > max_len) out += "...";
  return out;
}

}  // namespace bridge::log
