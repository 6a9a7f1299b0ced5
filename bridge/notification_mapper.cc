#include "notification_mapper.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>

namespace bridge {
namespace {

constexpr size_t kMaxCacheKeyBytes = 1024;

// The value as JSON text, or nothing when it has none (RapidJSON parses 2e308 as infinity,
// which its Writer refuses, leaving half a document behind).
std::optional<std::string> to_json(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  if (!value.Accept(writer)) return std::nullopt;
  return std::string(buffer.GetString(), buffer.GetSize());
}

// The whole string: it may hold NUL bytes, which key_error() must get to see.
std::string string_of(const rapidjson::Value& value) {
  return {value.GetString(), value.GetStringLength()};
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<std::string> key_error(std::string_view key) {
  if (key.empty()) return "empty cache key";
  if (key.size() > kMaxCacheKeyBytes) return "cache key longer than 1024 bytes";
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f) return "cache key contains control characters";
  }
  return std::nullopt;
}

MappingResult fail(std::string why) { return {{}, std::move(why), std::nullopt}; }

bool known_action(std::string_view action) {
  return action == "insert" || action == "update" || action == "delete" || action == "truncate";
}

// The ids of {"table","action","ids":[...]}, one invalidation each, sharing `base` (table,
// action). `raw` is the payload parsed with numbers as strings: a number's key is its text as
// written, not as RapidJSON would print the double it reads.
MappingResult map_ids(const rapidjson::Value& ids, const rapidjson::Value& raw, const Invalidation& base) {
  if (!ids.IsArray()) return fail("\"ids\" is not an array");
  if (ids.Empty()) return fail("\"ids\" is empty");
  if (base.table.empty()) return fail("\"ids\" without \"table\"");
  MappingResult out;
  out.invalidations.reserve(ids.Size());
  size_t skipped = 0;
  for (rapidjson::SizeType i = 0; i < ids.Size(); ++i) {
    const auto& id = ids[i];
    std::string where = "\"ids\"[" + std::to_string(i) + "]";
    if (!id.IsString() && !id.IsNumber()) return fail(where + " is not a string or number");
    if (id.IsNumber() && !to_json(id)) return fail(where + " is not a finite number");
    Invalidation inv = base;
    std::string text = string_of(raw[i]);
    if (id.IsString()) {
      auto quoted = to_json(id);
      if (!quoted) return fail(where + " is not a string or number");
      inv.id_json = std::move(*quoted);
    } else {
      inv.id_json = text;
    }
    inv.cache_key = base.table + ":" + text;
    if (auto error = key_error(inv.cache_key)) {
      if (skipped++ == 0) out.error = where + ": " + *error;
      continue;
    }
    out.invalidations.push_back(std::move(inv));
  }
  if (skipped > 1) out.error += " (and " + std::to_string(skipped - 1) + " more ids skipped)";
  return out;
}

MappingResult map_json(std::string_view payload) {
  rapidjson::Document doc;
  doc.Parse(payload.data(), payload.size());
  if (doc.HasParseError()) return fail("malformed JSON");
  if (!doc.IsObject()) return fail("JSON payload is not an object");

  Invalidation inv;
  std::optional<int64_t> claimed_at_ms;
  if (auto it = doc.FindMember("table"); it != doc.MemberEnd()) {
    if (!it->value.IsString()) return fail("\"table\" is not a string");
    inv.table = string_of(it->value);
  }
  if (auto it = doc.FindMember("id"); it != doc.MemberEnd()) {
    if (!it->value.IsString() && !it->value.IsNumber()) return fail("\"id\" is not a string or number");
    auto id = to_json(it->value);
    if (!id) return fail("\"id\" is not a finite number");
    inv.id_json = std::move(*id);
  }
  if (auto it = doc.FindMember("action"); it != doc.MemberEnd()) {
    if (!it->value.IsString()) return fail("\"action\" is not a string");
    std::string action = string_of(it->value);
    std::transform(action.begin(), action.end(), action.begin(), ::tolower);
    if (!known_action(action)) return fail("unknown action \"" + action.substr(0, 20) + "\"");
    inv.action = action;
  }
  // Only reported (see MappingResult): a malformed one costs nothing, the change still goes out.
  if (auto it = doc.FindMember("invalidated_at"); it != doc.MemberEnd() && it->value.IsInt64()) {
    claimed_at_ms = it->value.GetInt64();
  }
  if (auto ids = doc.FindMember("ids"); ids != doc.MemberEnd()) {
    for (const char* other : {"id", "cache_key", "data"}) {
      if (doc.HasMember(other)) return fail(std::string("\"ids\" with \"") + other + "\"");
    }
    rapidjson::Document raw;
    raw.Parse<rapidjson::kParseNumbersAsStringsFlag>(payload.data(), payload.size());
    // The same text parsed alike; checked anyway, since RapidJSON asserts on a mismatch.
    const rapidjson::Value* raw_ids = nullptr;
    if (!raw.HasParseError() && raw.IsObject()) {
      if (auto it = raw.FindMember("ids"); it != raw.MemberEnd()) raw_ids = &it->value;
    }
    if (!raw_ids || (ids->value.IsArray() && (!raw_ids->IsArray() || raw_ids->Size() != ids->value.Size()))) {
      return fail("malformed JSON");
    }
    MappingResult out = map_ids(ids->value, *raw_ids, inv);
    out.claimed_at_ms = claimed_at_ms;
    return out;
  }
  if (auto it = doc.FindMember("cache_key"); it != doc.MemberEnd()) {
    if (!it->value.IsString()) return fail("\"cache_key\" is not a string");
    inv.cache_key = string_of(it->value);
  } else if (!inv.table.empty() && !inv.id_json.empty()) {
    const auto& id = doc["id"];
    inv.cache_key = inv.table + ":" + (id.IsString() ? string_of(id) : inv.id_json);
  } else {
    return fail("JSON payload has neither \"cache_key\" nor \"table\" and \"id\" or \"ids\"");
  }
  if (auto error = key_error(inv.cache_key)) return fail(*error);
  if (auto it = doc.FindMember("data"); it != doc.MemberEnd() && !it->value.IsNull()) {
    // Row data JSON cannot carry (a number out of range) is left out; the change still goes.
    if (auto data = to_json(it->value)) {
      inv.data_json = std::move(*data);
    } else {
      inv.data_omitted = true;
    }
  }
  if (auto it = doc.FindMember("data_omitted"); it != doc.MemberEnd()) {
    inv.data_omitted = inv.data_omitted || (it->value.IsBool() && it->value.GetBool());
  }
  MappingResult out;
  out.invalidations.push_back(std::move(inv));
  out.claimed_at_ms = claimed_at_ms;
  return out;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t extra;
    uint32_t code;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1;
      code = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
      code = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= extra; ++k) {
      unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      code = (code << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (code < kMinForLength[extra] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

MappingResult map_notification(std::string_view payload) {
  if (trim(payload).empty()) return fail("empty payload");
  if (!is_valid_utf8(payload)) return fail("payload is not valid UTF-8");
  std::string_view trimmed = trim(payload);
  if (trimmed.front() == '{' || trimmed.front() == '[') return map_json(trimmed);
  if (auto error = key_error(trimmed)) return fail(*error);
  Invalidation inv;
  inv.cache_key = std::string(trimmed);
  // Keys written by the project's text trigger are "<table>:<id>"; knowing the table lets
  // {table} routing treat both payload styles alike.
  if (size_t colon = inv.cache_key.find(':'); colon != std::string::npos && colon > 0) {
    inv.table = inv.cache_key.substr(0, colon);
  }
  MappingResult out;
  out.invalidations.push_back(std::move(inv));
  return out;
}

}  // namespace bridge
