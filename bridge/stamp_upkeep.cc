#include "stamp_upkeep.h"

#include <fmt/format.h>

#include <vector>

#include "channel_name.h"
#include "invalidation_store.h"

namespace bridge {
namespace {

constexpr int kPageRows = 1000;

// Pages through (cache_key, table_name) rows of `sql` ($1: the last key seen, then `params`),
// handing each page to `each`.
Status for_each_page(PGconn* conn, const std::string& sql, const std::string& param,
                     const std::function<Status(std::vector<store::StampRow>&)>& each) {
  std::string after;
  while (true) {
    PgResultPtr result;
    if (auto s = pg_exec_params(conn, sql, {after, param, std::to_string(kPageRows)}, &result); !s) return s;
    int n = PQntuples(result.get());
    if (n == 0) return Status::ok();
    std::vector<store::StampRow> page(n);
    for (int i = 0; i < n; ++i) {
      page[i].cache_key = PQgetvalue(result.get(), i, 0);
      page[i].table = PQgetvalue(result.get(), i, 1);
    }
    after = page.back().cache_key;
    if (auto s = each(page); !s) return s;
    if (n < kPageRows) return Status::ok();
  }
}

// Stamps the keys the log holds within max_age, each once, with the table of its newest row:
// one sorted query read through a cursor, a page at a time (one sort however many keys), and
// the stamps written in the same transaction.
Status seed_from_log(PGconn* conn, const std::string& bridge_name, const std::string& channel_template,
                     std::chrono::seconds max_age, ChangeClock& clock, StampUpkeepResult* result) {
  if (auto s = pg_exec(conn, "BEGIN"); !s) return s;
  Status s = pg_exec_params(
      conn,
      "DECLARE cache_bridge_seed NO SCROLL CURSOR FOR "
      "SELECT DISTINCT ON (k.cache_key) k.cache_key, l.table_name "
      "FROM cache_invalidation_log l CROSS JOIN LATERAL unnest(l.cache_keys) AS k(cache_key) "
      "WHERE l.logged_at > now() - make_interval(secs => $1::double precision) "
      "ORDER BY k.cache_key, l.logged_at DESC, l.writer_xid DESC",
      {std::to_string(max_age.count())});
  while (s) {
    PgResultPtr rows;
    s = pg_exec(conn, fmt::format("FETCH {} FROM cache_bridge_seed", kPageRows), &rows);
    if (!s) break;
    int n = PQntuples(rows.get());
    if (n == 0) break;
    std::vector<store::StampRow> page(n);
    for (int i = 0; i < n; ++i) {
      page[i].cache_key = PQgetvalue(rows.get(), i, 0);
      page[i].table = PQgetvalue(rows.get(), i, 1);
      page[i].channel = expand_channel(channel_template, page[i].table, page[i].cache_key);
      page[i].seq = clock.next();
    }
    result->seeded += page.size();
    s = store::write_stamps(conn, bridge_name, page);
    if (n < kPageRows) break;
  }
  Status end = pg_exec(conn, s ? "COMMIT" : "ROLLBACK");
  return s ? end : s;
}

}  // namespace

Status upkeep_stamps(PGconn* conn, const std::string& bridge_name, const std::string& channel_template,
                     std::chrono::seconds max_age, ChangeClock& clock, StampUpkeepResult* result) {
  PgResultPtr routed;
  if (auto s = pg_exec_params(conn,
                              "SELECT channel_template IS NOT DISTINCT FROM $2, channel_template IS NULL, "
                              "EXISTS (SELECT 1 FROM cache_bridge_stamp WHERE bridge_name = $1) "
                              "FROM cache_bridge_cursor WHERE name = $1",
                              {bridge_name, channel_template}, &routed);
      !s) {
    return s;
  }
  if (PQntuples(routed.get()) != 1) return Status::error("cursor row vanished");
  auto flag = [&](int column) { return PQgetvalue(routed.get(), 0, column)[0] == 't'; };
  if (flag(0)) return Status::ok();
  bool first_start = flag(1);
  bool has_stamps = flag(2);

  Status s;
  if (has_stamps) {
    s = for_each_page(
        conn,
        "SELECT cache_key, table_name FROM cache_bridge_stamp WHERE bridge_name = $2 AND cache_key > $1 "
        "ORDER BY cache_key LIMIT $3::int",
        bridge_name, [&](std::vector<store::StampRow>& page) {
          for (auto& row : page) row.channel = expand_channel(channel_template, row.table, row.cache_key);
          result->rerouted += page.size();
          return store::reroute_stamps(conn, bridge_name, page);
        });
  } else if (first_start) {
    s = seed_from_log(conn, bridge_name, channel_template, max_age, clock, result);
  }
  if (!s) return s;
  return pg_exec_params(conn, "UPDATE cache_bridge_cursor SET channel_template = $2 WHERE name = $1",
                        {bridge_name, channel_template});
}

}  // namespace bridge
