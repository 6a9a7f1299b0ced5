#include "env_file.h"

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <sstream>

extern char** environ;

namespace bridge {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool valid_key(std::string_view key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// Returns false when a quoted value is not closed.
bool parse_value(std::string_view raw, std::string* out) {
  raw = trim(raw);
  if (!raw.empty() && (raw[0] == '"' || raw[0] == '\'')) {
    char quote = raw[0];
    out->clear();
    for (size_t i = 1; i < raw.size(); ++i) {
      char c = raw[i];
      if (c == quote) return true;
      if (quote == '"' && c == '\\' && i + 1 < raw.size()) {
        char next = raw[++i];
        out->push_back(next == 'n' ? '\n' : next);
      } else {
        out->push_back(c);
      }
    }
    return false;
  }
  size_t comment = raw.find(" #");
  if (comment != std::string_view::npos) raw = raw.substr(0, comment);
  *out = std::string(trim(raw));
  return true;
}

}  // namespace

EnvFileResult parse_env_text(std::string_view text) {
  EnvFileResult result;
  size_t line_number = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_number;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line.substr(0, 7) == "export ") line = trim(line.substr(7));
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      result.errors.push_back(fmt::format("line {}: expected KEY=VALUE", line_number));
      continue;
    }
    std::string_view key = trim(line.substr(0, eq));
    if (!valid_key(key)) {
      result.errors.push_back(fmt::format("line {}: invalid key name", line_number));
      continue;
    }
    std::string value;
    if (!parse_value(line.substr(eq + 1), &value)) {
      // The value is not echoed: it may be a secret.
      result.errors.push_back(fmt::format("line {}: {} has an unterminated quote", line_number, key));
      continue;
    }
    result.values[std::string(key)] = std::move(value);
  }
  return result;
}

EnvFileResult read_env_file(const std::string& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    EnvFileResult result;
    if (required) result.errors.push_back(fmt::format("cannot read env file {}", path));
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  EnvFileResult result = parse_env_text(text.str());
  for (auto& e : result.errors) e = fmt::format("{}: {}", path, e);
  return result;
}

EnvMap overlay_process_environment(EnvMap values) {
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view kv(*entry);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    values[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  return values;
}

}  // namespace bridge
