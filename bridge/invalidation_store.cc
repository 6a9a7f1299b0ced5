#include "invalidation_store.h"

#include <fmt/format.h>

#include <cstdlib>

namespace bridge::store {
namespace {

Invalidation row_to_invalidation(const PGresult* row) {
  Invalidation inv;
  inv.cache_key = PQgetvalue(row, 0, 0);
  inv.table = PQgetvalue(row, 0, 1);
  inv.invalidated_at_ms = std::strtoll(PQgetvalue(row, 0, 2), nullptr, 10);
  return inv;
}

// Runs a query in single-row mode, handing each row to `each`.
Status stream_rows(PGconn* conn, const std::string& sql, const std::vector<std::string>& params,
                   const std::function<void(const PGresult*)>& each) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  if (!PQsendQueryParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                         values.data(), nullptr, nullptr, 0) ||
      !PQsetSingleRowMode(conn)) {
    return Status::error(pg_error(conn));
  }
  Status status;
  while (PGresult* raw = PQgetResult(conn)) {
    PgResultPtr result(raw);
    switch (PQresultStatus(raw)) {
      case PGRES_SINGLE_TUPLE:
        if (status) each(raw);
        break;
      case PGRES_TUPLES_OK:
        break;
      default:
        if (status) status = Status::error(PQresultErrorMessage(raw));
    }
  }
  return status;
}

// The SQL twin of expand_channel(): the same substitutions and the same sanitising.
constexpr const char* kChannelOfRow =
    "replace(replace($1, '{table}', regexp_replace(table_name, '[^A-Za-z0-9_=@,.;-]', '-', 'g')),"
    " '{key}', regexp_replace(cache_key, '[^A-Za-z0-9_=@,.;-]', '-', 'g'))";

constexpr const char* kEpochMs = "floor(extract(epoch FROM invalidated_at) * 1000)::bigint";

}  // namespace

Status check_installed(PGconn* conn, bool* installed) {
  PgResultPtr result;
  if (auto s = pg_exec(conn,
                       "SELECT to_regclass('cache_invalidated_at') IS NOT NULL AND "
                       "to_regclass('cache_bridge_cursor') IS NOT NULL",
                       &result);
      !s) {
    return s;
  }
  *installed = PQgetvalue(result.get(), 0, 0)[0] == 't';
  return Status::ok();
}

Status load_cursor(PGconn* conn, const std::string& name, std::string* resume_xid) {
  PgResultPtr result;
  if (auto s = pg_exec_params(conn,
                              "INSERT INTO cache_bridge_cursor (name, resume_xid) "
                              "VALUES ($1, pg_snapshot_xmin(pg_current_snapshot())) "
                              "ON CONFLICT (name) DO NOTHING",
                              {name});
      !s) {
    return s;
  }
  if (auto s = pg_exec_params(conn, "SELECT resume_xid::text FROM cache_bridge_cursor WHERE name = $1",
                              {name}, &result);
      !s) {
    return s;
  }
  if (PQntuples(result.get()) != 1) return Status::error("cursor row vanished");
  *resume_xid = PQgetvalue(result.get(), 0, 0);
  return Status::ok();
}

Status save_cursor(PGconn* conn, const std::string& name, const std::string& resume_xid) {
  // greatest(): the cursor only moves forward, even if two bridges share a name.
  return pg_exec_params(conn,
                        "UPDATE cache_bridge_cursor SET resume_xid = greatest(resume_xid, $2::xid8), "
                        "updated_at = now() WHERE name = $1",
                        {name, resume_xid});
}

Status current_xmin(PGconn* conn, std::string* xmin) {
  PgResultPtr result;
  if (auto s = pg_exec(conn, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &result); !s) {
    return s;
  }
  *xmin = PQgetvalue(result.get(), 0, 0);
  return Status::ok();
}

Status read_since(PGconn* conn, const std::string& resume_xid,
                  const std::function<void(Invalidation)>& each, std::string* snapshot_xmin) {
  // One REPEATABLE READ transaction: the xmin and the rows come from the same snapshot.
  if (auto s = pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); !s) return s;
  Status status = current_xmin(conn, snapshot_xmin);
  if (status) {
    status = stream_rows(conn,
                         fmt::format("SELECT cache_key, table_name, {} FROM cache_invalidated_at "
                                     "WHERE writer_xid >= $1::xid8",
                                     kEpochMs),
                         {resume_xid}, [&](const PGresult* row) { each(row_to_invalidation(row)); });
  }
  Status end = pg_exec(conn, status ? "COMMIT" : "ROLLBACK");
  return status ? end : status;
}

Status read_for_channel(PGconn* conn, const std::string& channel_template,
                        const std::string& channel, std::chrono::seconds max_age, int max_keys,
                        const std::function<void(Invalidation)>& each) {
  std::string sql = fmt::format(
      "SELECT * FROM (SELECT cache_key, table_name, {} AS at_ms FROM cache_invalidated_at "
      "WHERE invalidated_at > now() - make_interval(secs => $3::double precision) "
      "AND {} = $2 ORDER BY invalidated_at DESC LIMIT $4::int) newest ORDER BY at_ms",
      kEpochMs, kChannelOfRow);
  return stream_rows(conn, sql,
                     {channel_template, channel, std::to_string(max_age.count()),
                      std::to_string(max_keys)},
                     [&](const PGresult* row) { each(row_to_invalidation(row)); });
}

}  // namespace bridge::store
