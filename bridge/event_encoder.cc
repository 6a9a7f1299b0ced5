#include "event_encoder.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace bridge {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

bool allowed_in_channel(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '=' || c == '@' || c == ',' || c == '.' || c == ';';
}

void append_sanitized(std::string* out, std::string_view text) {
  for (unsigned char c : text) out->push_back(allowed_in_channel(c) ? static_cast<char>(c) : '-');
}

void write_string(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

std::string encode(const Invalidation& inv, bool with_data) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("cacheKey");
  write_string(w, inv.cache_key);
  w.Key("invalidatedAt");
  w.Int64(inv.invalidated_at_ms);
  if (!inv.table.empty()) {
    w.Key("table");
    write_string(w, inv.table);
  }
  if (!inv.action.empty()) {
    w.Key("action");
    write_string(w, inv.action);
  }
  if (!inv.id_json.empty()) {
    w.Key("id");
    w.RawValue(inv.id_json.data(), inv.id_json.size(), rapidjson::kObjectType);
  }
  if (with_data && !inv.data_json.empty()) {
    w.Key("data");
    w.RawValue(inv.data_json.data(), inv.data_json.size(), rapidjson::kObjectType);
  } else if (inv.data_omitted || !inv.data_json.empty()) {
    w.Key("dataOmitted");
    w.Bool(true);
  }
  if (inv.replay) {
    w.Key("replay");
    w.Bool(true);
  }
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace

std::string expand_channel(std::string_view channel_template, std::string_view table,
                           std::string_view cache_key) {
  std::string out;
  size_t pos = 0;
  while (pos < channel_template.size()) {
    if (channel_template.substr(pos, 7) == "{table}") {
      append_sanitized(&out, table);
      pos += 7;
    } else if (channel_template.substr(pos, 5) == "{key}") {
      append_sanitized(&out, cache_key);
      pos += 5;
    } else {
      out.push_back(channel_template[pos++]);
    }
  }
  return out;
}

std::string encode_event_data(const Invalidation& inv, size_t max_bytes) {
  std::string data = encode(inv, true);
  if (data.size() > max_bytes && !inv.data_json.empty()) data = encode(inv, false);
  return data;
}

std::string encode_batch_body(const std::vector<PusherEvent>& events) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("batch");
  w.StartArray();
  for (const auto& e : events) {
    w.StartObject();
    w.Key("channel");
    write_string(w, e.channel);
    w.Key("name");
    write_string(w, e.name);
    w.Key("data");
    write_string(w, e.data);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace bridge
