// The channel-name rule: expansion, escaping and the hashed form of over-long names.
#include "channel_name.h"

#include <openssl/evp.h>

#include <utility>
#include <vector>

namespace bridge {
namespace {

constexpr std::string_view kTablePlaceholder = "{table}";
constexpr std::string_view kKeyPlaceholder = "{key}";
constexpr std::string_view kHashMarker = "=h";
constexpr size_t kHashHexDigits = 16;
constexpr size_t kHashedPrefixLength =
    kMaxChannelNameLength - kHashMarker.size() - kHashHexDigits;  // 182
static_assert(kHashedPrefixLength == 182);

bool copied_unescaped(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '@' || c == ',' || c == '.' || c == ';';
}

bool allowed_in_template(unsigned char c) { return copied_unescaped(c) || c == '='; }

void append_escaped(std::string* out, std::string_view text) {
  static constexpr char kUpperDigits[] = "0123456789ABCDEF";
  for (unsigned char c : text) {
    if (copied_unescaped(c)) {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('=');
      out->push_back(kUpperDigits[c >> 4]);
      out->push_back(kUpperDigits[c & 0x0f]);
    }
  }
}

std::string sha256_hex_prefix(std::string_view data, size_t hex_digits) {
  static constexpr char kLowerDigits[] = "0123456789abcdef";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < length && out.size() < hex_digits; ++i) {
    out.push_back(kLowerDigits[digest[i] >> 4]);
    out.push_back(kLowerDigits[digest[i] & 0x0f]);
  }
  out.resize(hex_digits);
  return out;
}

// The longest prefix of at most kHashedPrefixLength characters with no '=' in its last two
// positions, so that it cannot end inside an "=XX" escape.
size_t hashed_prefix_length(std::string_view name) {
  size_t cut = kHashedPrefixLength < name.size() ? kHashedPrefixLength : name.size();
  while (cut > 0) {
    if (name[cut - 1] == '=') {
      cut -= 1;
    } else if (cut >= 2 && name[cut - 2] == '=') {
      cut -= 2;
    } else {
      break;
    }
  }
  return cut;
}

}  // namespace

std::string expand_channel(std::string_view channel_template, std::string_view table,
                           std::string_view cache_key) {
  std::string name;
  size_t pos = 0;
  while (pos < channel_template.size()) {
    std::string_view rest = channel_template.substr(pos);
    if (rest.starts_with(kTablePlaceholder)) {
      append_escaped(&name, table);
      pos += kTablePlaceholder.size();
    } else if (rest.starts_with(kKeyPlaceholder)) {
      append_escaped(&name, cache_key);
      pos += kKeyPlaceholder.size();
    } else {
      name.push_back(channel_template[pos++]);
    }
  }
  if (name.size() <= kMaxChannelNameLength) return name;

  std::string hashed = name.substr(0, hashed_prefix_length(name));
  hashed += kHashMarker;
  hashed += sha256_hex_prefix(name, kHashHexDigits);
  return hashed;
}

bool is_valid_channel_name(std::string_view channel) {
  if (channel.empty() || channel.size() > kMaxChannelNameLength) return false;
  for (unsigned char c : channel) {
    if (!allowed_in_template(c)) return false;
  }
  return true;
}

bool could_be_expanded_from(std::string_view channel_template, std::string_view channel) {
  if (!is_valid_channel_name(channel)) return false;
  // The literal pieces between placeholders must appear in order: the first at the start,
  // the last at the end (unless the name was cut and hashed, which may drop the end).
  std::vector<std::string_view> literals;
  bool has_placeholder = false;
  size_t start = 0, pos = 0;
  while (pos < channel_template.size()) {
    std::string_view rest = channel_template.substr(pos);
    size_t skip = rest.starts_with(kTablePlaceholder) ? kTablePlaceholder.size()
                  : rest.starts_with(kKeyPlaceholder) ? kKeyPlaceholder.size()
                                                      : 0;
    if (skip == 0) {
      ++pos;
      continue;
    }
    literals.push_back(channel_template.substr(start, pos - start));
    has_placeholder = true;
    pos += skip;
    start = pos;
  }
  literals.push_back(channel_template.substr(start));
  if (!has_placeholder) return channel == channel_template;

  bool hashed = channel.size() > kHashMarker.size() + kHashHexDigits &&
                channel.substr(channel.size() - kHashHexDigits - kHashMarker.size(), kHashMarker.size()) == kHashMarker;
  if (hashed) return channel.starts_with(literals.front().substr(0, hashed_prefix_length(literals.front())));
  if (!channel.starts_with(literals.front()) || !channel.ends_with(literals.back())) return false;
  if (literals.front().size() + literals.back().size() > channel.size()) return false;
  size_t at = literals.front().size();
  size_t end = channel.size() - literals.back().size();
  for (size_t i = 1; i + 1 < literals.size(); ++i) {
    size_t found = channel.substr(0, end).find(literals[i], at);
    if (found == std::string_view::npos) return false;
    at = found + literals[i].size();
  }
  return true;
}

bool is_valid_channel_template(std::string_view channel_template, std::string* why) {
  auto fail = [why](std::string message) {
    if (why != nullptr) *why = std::move(message);
    return false;
  };
  if (channel_template.empty()) return fail("is empty");
  size_t literal_length = 0;
  size_t pos = 0;
  while (pos < channel_template.size()) {
    std::string_view rest = channel_template.substr(pos);
    if (rest.starts_with(kTablePlaceholder)) {
      pos += kTablePlaceholder.size();
    } else if (rest.starts_with(kKeyPlaceholder)) {
      pos += kKeyPlaceholder.size();
    } else {
      unsigned char c = static_cast<unsigned char>(channel_template[pos]);
      if (!allowed_in_template(c)) {
        std::string shown = (c >= 0x21 && c <= 0x7e) ? std::string("'") + static_cast<char>(c) + "'"
                                                      : "byte " + std::to_string(c);
        return fail("has " + shown + " at offset " + std::to_string(pos) +
                    "; outside {table} and {key} only A-Z a-z 0-9 _ - = @ , . ; are allowed");
      }
      ++literal_length;
      ++pos;
    }
  }
  if (literal_length > kMaxChannelNameLength) {
    return fail("has " + std::to_string(literal_length) + " characters besides {table} and {key}; " +
                "at most " + std::to_string(kMaxChannelNameLength) + " are allowed");
  }
  return true;
}

}  // namespace bridge
