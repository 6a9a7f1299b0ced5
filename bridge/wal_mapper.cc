#include "wal_mapper.h"

#include <fmt/format.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <optional>

#include "notification_mapper.h"

namespace bridge {
namespace {

using pgoutput::RowChange;
using pgoutput::Tuple;
using pgoutput::Value;

// Type OIDs from pg_type.dat; stable across PostgreSQL versions.
constexpr uint32_t kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kJson = 114,
                   kFloat4 = 700, kFloat8 = 701, kNumeric = 1700, kJsonb = 3802;

// True when `text` is one JSON number (PostgreSQL also prints NaN and Infinity).
bool is_json_number(std::string_view text) {
  size_t i = 0, n = text.size();
  auto digits = [&] {
    size_t start = i;
    while (i < n && text[i] >= '0' && text[i] <= '9') ++i;
    return i > start;
  };
  if (i < n && text[i] == '-') ++i;
  if (i < n && text[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < n && text[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

std::string json_string(std::string_view text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  return {buffer.GetString(), buffer.GetSize()};
}

// The row as a JSON object of the columns the tuple carries. `identity_only`: an old tuple
// of the replica identity, whose other columns are unknown rather than NULL.
std::string row_json(const pgoutput::Relation& relation, const Tuple& tuple, bool identity_only) {
  std::string out = "{";
  for (size_t i = 0; i < tuple.size() && i < relation.columns.size(); ++i) {
    const auto& column = relation.columns[i];
    const Value& value = tuple[i];
    if (value.kind == Value::Kind::kUnchangedToast || (identity_only && !column.in_identity)) continue;
    if (out.size() > 1) out += ',';
    out += json_string(column.name);
    out += ':';
    out += value.kind == Value::Kind::kNull ? "null" : json_of_value(column.type_oid, value.text);
  }
  out += '}';
  return out;
}

const char* action_of(RowChange::Kind kind) {
  switch (kind) {
    case RowChange::Kind::kInsert:
      return "insert";
    case RowChange::Kind::kUpdate:
      return "update";
    case RowChange::Kind::kDelete:
      return "delete";
  }
  return "";
}

// The key column's value in `tuple`: its text, or nullopt when NULL or not carried.
std::optional<std::string_view> key_in(const std::optional<Tuple>& tuple, size_t key_index) {
  if (!tuple || key_index >= tuple->size()) return std::nullopt;
  const Value& value = (*tuple)[key_index];
  if (value.kind != Value::Kind::kText) return std::nullopt;
  return std::string_view(value.text);
}

// Keys go out in JSON: one that is not UTF-8 (a database in another encoding) is refused.
WalMapping checked(WalMapping mapping) {
  for (const auto& inv : mapping.invalidations) {
    if (!is_valid_utf8(inv.cache_key)) {
      mapping.invalidations.clear();
      mapping.error = "the key is not valid UTF-8";
      break;
    }
  }
  return mapping;
}

}  // namespace

std::string json_of_value(uint32_t type_oid, std::string_view text) {
  switch (type_oid) {
    case kBool:
      if (text == "t") return "true";
      if (text == "f") return "false";
      break;
    case kInt2:
    case kInt4:
    case kInt8:
    case kOid:
    case kFloat4:
    case kFloat8:
    case kNumeric:
      if (is_json_number(text)) return std::string(text);
      break;
    case kJson:
    case kJsonb: {
      // The server only stores valid JSON; checked anyway, since it goes out verbatim.
      rapidjson::Reader reader;
      rapidjson::BaseReaderHandler<> ignore;
      rapidjson::MemoryStream stream(text.data(), text.size());
      if (reader.Parse<rapidjson::kParseStopWhenDoneFlag>(stream, ignore) && stream.Tell() == text.size()) {
        return std::string(text);
      }
      break;
    }
    default:
      break;
  }
  return json_string(text);
}

WalMapping map_row_change(const pgoutput::Relation& relation, const WalTable& table,
                          const RowChange& change) {
  WalMapping out;
  size_t key_index = relation.columns.size();
  for (size_t i = 0; i < relation.columns.size(); ++i) {
    if (relation.columns[i].name == table.key_column) key_index = i;
  }
  if (key_index == relation.columns.size()) {
    out.error = fmt::format("table {} has no column {} in the publication", table.table_name, table.key_column);
    return out;
  }
  const uint32_t key_type = relation.columns[key_index].type_oid;
  auto make = [&](std::string_view key, const char* action) {
    Invalidation inv;
    inv.cache_key = fmt::format("{}:{}", table.table_name, key);
    inv.table = table.table_name;
    inv.action = action;
    inv.id_json = json_of_value(key_type, key);
    return inv;
  };

  std::optional<std::string_view> new_key = key_in(change.new_tuple, key_index);
  std::optional<std::string_view> old_key = key_in(change.old_tuple, key_index);
  // An UPDATE whose key is an unchanged TOASTed value: the key did not change.
  bool new_key_unchanged = change.new_tuple && key_index < change.new_tuple->size() &&
                           (*change.new_tuple)[key_index].kind == Value::Kind::kUnchangedToast;
  if (new_key_unchanged && old_key) new_key = old_key;

  if (change.kind == RowChange::Kind::kUpdate && old_key && new_key != old_key) {
    out.invalidations.push_back(make(*old_key, "delete"));  // the old key is stale too
  }
  std::optional<std::string_view> key = change.kind == RowChange::Kind::kDelete ? old_key : new_key;
  if (!key) {
    if (change.kind == RowChange::Kind::kDelete) {
      out.error = fmt::format("a DELETE on {} does not carry column {} (give the table a replica "
                              "identity that covers it, e.g. REPLICA IDENTITY FULL)",
                              table.table_name, table.key_column);
    } else if (new_key_unchanged) {
      out.error = fmt::format("an UPDATE on {} does not carry its key {} (an unchanged TOASTed value)",
                              table.table_name, table.key_column);
    }
    return checked(std::move(out));  // a NULL key has no cache entry
  }
  Invalidation inv = make(*key, action_of(change.kind));
  if (table.row_data) {
    bool deleted = change.kind == RowChange::Kind::kDelete;
    const Tuple& row = deleted ? *change.old_tuple : *change.new_tuple;
    std::string data = row_json(relation, row, deleted && !change.old_is_full);
    if (data.size() > kMaxRowDataBytes) {
      inv.data_omitted = true;
    } else {
      inv.data_json = std::move(data);
    }
  }
  out.invalidations.push_back(std::move(inv));
  return checked(std::move(out));
}

Invalidation map_truncate(const WalTable& table) {
  Invalidation inv;
  inv.cache_key = table.table_name;
  inv.table = table.table_name;
  inv.action = "truncate";
  return inv;
}

}  // namespace bridge
