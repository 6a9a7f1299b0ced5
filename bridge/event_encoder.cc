#include "event_encoder.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "change_clock.h"

namespace bridge {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void write_string(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// What events and snapshot entries share: the key, its stamp, and the table when known.
void write_stamp_fields(JsonWriter& w, const Invalidation& inv) {
  w.Key("cacheKey");
  write_string(w, inv.cache_key);
  w.Key("invalidatedAt");
  w.Int64(invalidated_at_of(inv.seq));
  w.Key("seq");
  w.Int64(inv.seq);
  if (!inv.table.empty()) {
    w.Key("table");
    write_string(w, inv.table);
  }
}

// The stamp fields plus what changed: the action and the row id, when known.
void write_change_fields(JsonWriter& w, const Invalidation& inv) {
  write_stamp_fields(w, inv);
  if (!inv.action.empty()) {
    w.Key("action");
    write_string(w, inv.action);
  }
  if (!inv.id_json.empty()) {
    w.Key("id");
    w.RawValue(inv.id_json.data(), inv.id_json.size(), rapidjson::kObjectType);
  }
}

std::string encode(const Invalidation& inv, bool with_data) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  write_change_fields(w, inv);
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

std::string encode_event_data(const Invalidation& inv, size_t max_bytes) {
  std::string data = encode(inv, true);
  if (data.size() > max_bytes && !inv.data_json.empty()) data = encode(inv, false);
  return data;
}

std::string encode_batch_body(std::span<const PusherEvent> events) {
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

std::string encode_http_sink_body(std::span<const QueuedInvalidation> items) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("invalidations");
  w.StartArray();
  for (const auto& item : items) {
    w.StartObject();
    write_change_fields(w, item.invalidation);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::string encode_snapshot(std::string_view channel, const std::vector<Invalidation>& invalidations,
                            bool truncated) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("channel");
  write_string(w, channel);
  w.Key("invalidations");
  w.StartArray();
  for (const auto& inv : invalidations) {
    w.StartObject();
    write_stamp_fields(w, inv);
    w.EndObject();
  }
  w.EndArray();
  w.Key("truncated");
  w.Bool(truncated);
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace bridge
