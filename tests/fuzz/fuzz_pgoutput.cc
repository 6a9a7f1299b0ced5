// libFuzzer: a replication stream as the WAL source reads it. The input is a sequence of
// CopyData frames, each prefixed by a 2-byte big-endian length; every XLogData payload goes
// through the pgoutput decoder, and every row change of the last Relation through the WAL
// mapper (keyed by the relation's first column, with row data). Invariants: nothing reads
// out of bounds (ASan), and every id and row the mapper produces is valid JSON.
#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "pgoutput.h"
#include "wal_mapper.h"

namespace {

bool is_json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  return !d.HasParseError();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bridge;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::optional<pgoutput::Relation> relation;
  while (input.size() >= 2) {
    size_t length = (static_cast<unsigned char>(input[0]) << 8) | static_cast<unsigned char>(input[1]);
    input.remove_prefix(2);
    std::string_view bytes = input.substr(0, length);
    input.remove_prefix(bytes.size());

    pgoutput::Frame frame;
    if (!pgoutput::decode_frame(bytes, &frame)) continue;
    auto* xlog = std::get_if<pgoutput::XLogData>(&frame);
    if (!xlog) continue;
    pgoutput::Message message;
    if (!pgoutput::decode_message(xlog->payload, &message)) continue;
    if (auto* r = std::get_if<pgoutput::Relation>(&message)) {
      relation = *r;
      continue;
    }
    auto* change = std::get_if<pgoutput::RowChange>(&message);
    if (!change || !relation || relation->columns.empty()) continue;
    WalTable table{relation->name, relation->columns[0].name, true};
    WalMapping mapped = map_row_change(*relation, table, *change);
    FUZZ_CHECK(mapped.invalidations.size() <= 2);
    for (const auto& inv : mapped.invalidations) {
      FUZZ_CHECK(inv.cache_key.rfind(table.table_name + ":", 0) == 0);
      FUZZ_CHECK(is_json(inv.id_json));
      FUZZ_CHECK(inv.data_json.empty() || is_json(inv.data_json));
      FUZZ_CHECK(inv.data_json.size() <= kMaxRowDataBytes);
    }
  }
  return 0;
}
