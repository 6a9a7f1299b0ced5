#include "secret_redactor.h"

#include <algorithm>
#include <cctype>

namespace bridge {
namespace {

constexpr size_t kMinSecretBytes = 3;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes what decodes; a malformed escape is kept as written.
std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

void add(std::vector<std::string>* out, std::string_view raw) {
  if (raw.empty()) return;
  out->emplace_back(raw);
  std::string decoded = percent_decode(raw);
  if (decoded != raw) out->push_back(std::move(decoded));
}

// password=VALUE in the query part of a URI (VALUE up to '&').
void add_query_passwords(std::vector<std::string>* out, std::string_view query) {
  size_t pos = 0;
  while (pos < query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    std::string_view param = query.substr(pos, end - pos);
    if (param.rfind("password=", 0) == 0) add(out, param.substr(9));
    pos = end + 1;
  }
}

void add_uri_secrets(std::vector<std::string>* out, std::string_view uri) {
  std::string_view rest = uri.substr(uri.find("://") + 3);
  size_t query = rest.find('?');
  std::string_view before_query = rest.substr(0, query);
  // The userinfo ends at the last '@' before the path (a password may contain '@' when malformed).
  size_t path = before_query.find('/');
  std::string_view authority = before_query.substr(0, path);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    if (size_t colon = userinfo.find(':'); colon != std::string_view::npos) add(out, userinfo.substr(colon + 1));
  }
  if (query != std::string_view::npos) add_query_passwords(out, rest.substr(query + 1));
}

// password = 'quoted \' value' or password=bare in key=value conninfo.
void add_keyword_secrets(std::vector<std::string>* out, std::string_view conninfo) {
  size_t pos = 0;
  while ((pos = conninfo.find("password", pos)) != std::string_view::npos) {
    bool at_word_start = pos == 0 || std::isspace(static_cast<unsigned char>(conninfo[pos - 1]));
    size_t i = pos + 8;
    pos = i;
    if (!at_word_start) continue;
    while (i < conninfo.size() && std::isspace(static_cast<unsigned char>(conninfo[i]))) ++i;
    if (i >= conninfo.size() || conninfo[i] != '=') continue;
    ++i;
    while (i < conninfo.size() && std::isspace(static_cast<unsigned char>(conninfo[i]))) ++i;
    std::string value;
    std::string raw;
    if (i < conninfo.size() && conninfo[i] == '\'') {
      size_t start = ++i;
      while (i < conninfo.size() && conninfo[i] != '\'') {
        if (conninfo[i] == '\\' && i + 1 < conninfo.size()) ++i;
        value.push_back(conninfo[i++]);
      }
      raw = std::string(conninfo.substr(start, i - start));
    } else {
      size_t start = i;
      while (i < conninfo.size() && !std::isspace(static_cast<unsigned char>(conninfo[i]))) ++i;
      value = raw = std::string(conninfo.substr(start, i - start));
    }
    if (!raw.empty()) out->push_back(raw);
    if (value != raw && !value.empty()) out->push_back(value);
    pos = i;
  }
}

}  // namespace

std::vector<std::string> conninfo_secrets(std::string_view conninfo) {
  std::vector<std::string> out;
  if (conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0) {
    add_uri_secrets(&out, conninfo);
  } else {
    add_keyword_secrets(&out, conninfo);
  }
  return out;
}

std::string redact(std::string_view text, const std::vector<std::string>& secrets) {
  std::string out(text);
  // Longest first: a secret that contains another is blanked whole.
  std::vector<const std::string*> order;
  for (const auto& s : secrets) {
    if (s.size() >= kMinSecretBytes) order.push_back(&s);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->size() > b->size(); });
  for (const std::string* secret : order) {
    for (size_t pos = out.find(*secret); pos != std::string::npos; pos = out.find(*secret, pos)) {
      out.replace(pos, secret->size(), "[redacted]");
      pos += 10;
    }
  }
  return out;
}

}  // namespace bridge
