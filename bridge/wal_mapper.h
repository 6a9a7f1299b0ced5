// Turns the row changes of a logical replication stream (pgoutput) into Invalidations, the
// way the notify source's JSON-style triggers name them. Pure: no I/O.
//
// The cache key is "<table>:<key column's text value>", <table> being the attached table's
// name as attach recorded it (cache_invalidation_table.table_name). An UPDATE that changes
// the key makes the old key stale as well (action "delete"), a TRUNCATE makes the whole
// table stale: one invalidation whose key is the table's name (action "truncate").
//
// `id` and `data` carry typed JSON where the type says how: integers, floats and numeric as
// numbers, bool as true/false, json/jsonb as themselves, everything else as the type's text
// output in a string. `data` (only for tables attached with row_data) is the new row for
// INSERT and UPDATE, the old row for DELETE: with REPLICA IDENTITY FULL the whole row,
// otherwise only the identity's columns. Columns that pgoutput leaves out (unchanged TOASTed
// values of an UPDATE) are left out of `data` too; a row of more than kMaxRowDataBytes is
// left out (data_omitted), as NOTIFY's limit makes the notify source do.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "invalidation.h"
#include "pgoutput.h"

namespace bridge {

inline constexpr size_t kMaxRowDataBytes = 8000;

// An attached table, as cache_invalidation_table describes it.
struct WalTable {
  std::string table_name;  // in keys and events
  std::string key_column;
  bool row_data = false;
};

struct WalMapping {
  std::vector<Invalidation> invalidations;  // not yet stamped: seq is 0
  std::string error;  // why (part of) the change yields no invalidation; empty when none
};

// REQUIRES: `change` belongs to `relation` (same id).
WalMapping map_row_change(const pgoutput::Relation& relation, const WalTable& table,
                          const pgoutput::RowChange& change);

Invalidation map_truncate(const WalTable& table);

// A column's text value as JSON, by its type (see above).
std::string json_of_value(uint32_t type_oid, std::string_view text);

}  // namespace bridge
