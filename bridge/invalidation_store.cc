#include "invalidation_store.h"

#include <fmt/format.h>

#include <cstdlib>

#include "change_clock.h"

namespace bridge::store {
namespace {

Invalidation row_to_invalidation(const PGresult* row) {
  Invalidation inv;
  inv.cache_key = PQgetvalue(row, 0, 0);
  inv.table = PQgetvalue(row, 0, 1);
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
  while (true) {
    if (auto s = pg_await_result(conn); !s) return s;  // the connection is given up
    PGresult* raw = PQgetResult(conn);
    if (!raw) break;
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

// A PostgreSQL array literal of text values: {"a","b\"c"}.
std::string text_array(std::span<const StampRow> rows, std::string StampRow::*field) {
  std::string out = "{";
  for (const auto& row : rows) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : row.*field) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace

Status check_installed(PGconn* conn, bool* installed) {
  PgResultPtr result;
  if (auto s = pg_exec(conn,
                       "SELECT to_regclass('cache_invalidation_log') IS NOT NULL AND "
                       "to_regclass('cache_bridge_cursor') IS NOT NULL",
                       &result);
      !s) {
    return s;
  }
  *installed = PQgetvalue(result.get(), 0, 0)[0] == 't';
  return Status::ok();
}

Status load_cursor(PGconn* conn, const std::string& name, Cursor* cursor) {
  PgResultPtr result;
  if (auto s = pg_exec_params(conn,
                              "INSERT INTO cache_bridge_cursor (name, resume_xid, resume_seq) "
                              "VALUES ($1, pg_snapshot_xmin(pg_current_snapshot()), "
                              "(SELECT coalesce(max(seq), 0) FROM cache_bridge_stamp WHERE bridge_name = $1)) "
                              "ON CONFLICT (name) DO NOTHING",
                              {name});
      !s) {
    return s;
  }
  if (auto s = pg_exec_params(conn, "SELECT resume_xid::text, resume_seq FROM cache_bridge_cursor WHERE name = $1",
                              {name}, &result);
      !s) {
    return s;
  }
  if (PQntuples(result.get()) != 1) return Status::error("cursor row vanished");
  cursor->resume_xid = PQgetvalue(result.get(), 0, 0);
  cursor->resume_seq = std::strtoll(PQgetvalue(result.get(), 0, 1), nullptr, 10);
  return Status::ok();
}

Status save_cursor(PGconn* conn, const std::string& name, const Cursor& cursor) {
  return pg_exec_params(conn,
                        "UPDATE cache_bridge_cursor SET resume_xid = greatest(resume_xid, $2::xid8), "
                        "resume_seq = greatest(resume_seq, $3::bigint), updated_at = now() WHERE name = $1",
                        {name, cursor.resume_xid, std::to_string(cursor.resume_seq)});
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
  // Streaming waits for `each` (backpressure from the queue): no statement deadline here.
  Status status = pg_exec(conn, "SET LOCAL statement_timeout = 0");
  if (status) status = current_xmin(conn, snapshot_xmin);
  if (status) {
    // The log's rows since the cursor (its writer_xid index), each key once, with the table of
    // its newest row. The server sorts (spilling to disk past work_mem); the rows stream.
    status = stream_rows(conn,
                         "SELECT DISTINCT ON (k.cache_key) k.cache_key, l.table_name "
                         "FROM cache_invalidation_log l CROSS JOIN LATERAL unnest(l.cache_keys) AS k(cache_key) "
                         "WHERE l.writer_xid >= $1::xid8 "
                         "ORDER BY k.cache_key, l.writer_xid DESC, l.logged_at DESC",
                         {resume_xid}, [&](const PGresult* row) { each(row_to_invalidation(row)); });
  }
  Status end = pg_exec(conn, status ? "COMMIT" : "ROLLBACK");
  return status ? end : status;
}

Status trim_log(PGconn* conn, int limit, int64_t* deleted) {
  PgResultPtr result;
  // The oldest rows first, through the writer_xid index.
  if (auto s = pg_exec_params(conn,
                              "WITH gone AS (DELETE FROM cache_invalidation_log WHERE ctid = ANY (ARRAY("
                              "SELECT ctid FROM cache_invalidation_log "
                              "WHERE writer_xid < (SELECT min(resume_xid) FROM cache_bridge_cursor) "
                              "ORDER BY writer_xid LIMIT $1::int)) RETURNING 1) "
                              "SELECT count(*) FROM gone",
                              {std::to_string(limit)}, &result);
      !s) {
    return s;
  }
  *deleted = std::strtoll(PQgetvalue(result.get(), 0, 0), nullptr, 10);
  return Status::ok();
}

Status check_stamps_installed(PGconn* conn, bool* installed) {
  PgResultPtr result;
  if (auto s = pg_exec(conn, "SELECT to_regclass('cache_bridge_stamp') IS NOT NULL", &result); !s) {
    return s;
  }
  *installed = PQgetvalue(result.get(), 0, 0)[0] == 't';
  return Status::ok();
}

Status max_stamp_seq(PGconn* conn, const std::string& bridge_name, int64_t* seq) {
  PgResultPtr result;
  if (auto s = pg_exec_params(conn,
                              "SELECT coalesce(max(seq), 0) FROM cache_bridge_stamp WHERE bridge_name = $1",
                              {bridge_name}, &result);
      !s) {
    return s;
  }
  *seq = std::strtoll(PQgetvalue(result.get(), 0, 0), nullptr, 10);
  return Status::ok();
}

Status write_stamps(PGconn* conn, const std::string& bridge_name, std::span<const StampRow> rows) {
  if (rows.empty()) return Status::ok();
  std::string seqs = "{";
  for (const auto& row : rows) {
    if (seqs.size() > 1) seqs += ',';
    seqs += std::to_string(row.seq);
  }
  seqs += '}';
  return pg_exec_params(
      conn,
      "INSERT INTO cache_bridge_stamp AS s (bridge_name, cache_key, channel, table_name, seq) "
      "SELECT $1, k, c, t, q FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) AS u(k, c, t, q) "
      "ON CONFLICT (bridge_name, cache_key) DO UPDATE "
      "SET channel = excluded.channel, table_name = excluded.table_name, seq = excluded.seq "
      "WHERE s.seq < excluded.seq",
      {bridge_name, text_array(rows, &StampRow::cache_key), text_array(rows, &StampRow::channel),
       text_array(rows, &StampRow::table), seqs});
}

Status read_stamps_between(PGconn* conn, const std::string& bridge_name, int64_t from_seq,
                           int64_t to_seq, int limit, std::vector<StampRow>* rows) {
  PgResultPtr result;
  if (auto s = pg_exec_params(conn,
                              "SELECT cache_key, channel, table_name, seq FROM cache_bridge_stamp "
                              "WHERE bridge_name = $1 AND seq BETWEEN $2::bigint AND $3::bigint "
                              "ORDER BY seq LIMIT $4::int",
                              {bridge_name, std::to_string(from_seq), std::to_string(to_seq),
                               std::to_string(limit)},
                              &result);
      !s) {
    return s;
  }
  rows->clear();
  for (int i = 0; i < PQntuples(result.get()); ++i) {
    rows->push_back({PQgetvalue(result.get(), i, 0), PQgetvalue(result.get(), i, 1),
                     PQgetvalue(result.get(), i, 2), std::strtoll(PQgetvalue(result.get(), i, 3), nullptr, 10)});
  }
  return Status::ok();
}

Status reroute_stamps(PGconn* conn, const std::string& bridge_name, std::span<const StampRow> rows) {
  if (rows.empty()) return Status::ok();
  return pg_exec_params(conn,
                        "UPDATE cache_bridge_stamp s SET channel = u.c "
                        "FROM unnest($2::text[], $3::text[]) AS u(k, c) "
                        "WHERE s.bridge_name = $1 AND s.cache_key = u.k",
                        {bridge_name, text_array(rows, &StampRow::cache_key), text_array(rows, &StampRow::channel)});
}

Status read_channel_stamps(PGconn* conn, const std::string& bridge_name, const std::string& channel,
                           int64_t min_seq, int max_keys,
                           const std::function<void(Invalidation)>& each, bool* truncated) {
  // Newest first, one row more than asked for (it tells whether the answer is complete);
  // handed out oldest first. One result of at most max_keys + 1 rows: bounded, and far
  // cheaper than a result per row.
  PgResultPtr result;
  if (auto s = pg_exec_params(
          conn,
          "SELECT cache_key, table_name, seq FROM cache_bridge_stamp "
          "WHERE bridge_name = $1 AND channel = $2 AND seq > $3::bigint ORDER BY seq DESC LIMIT $4::int + 1",
          {bridge_name, channel, std::to_string(min_seq), std::to_string(max_keys)}, &result);
      !s) {
    return s;
  }
  int rows = PQntuples(result.get());
  bool more = rows > max_keys;
  if (truncated) *truncated = more;
  for (int i = more ? rows - 2 : rows - 1; i >= 0; --i) {
    Invalidation inv;
    inv.cache_key.assign(PQgetvalue(result.get(), i, 0), PQgetlength(result.get(), i, 0));
    inv.table.assign(PQgetvalue(result.get(), i, 1), PQgetlength(result.get(), i, 1));
    inv.seq = std::strtoll(PQgetvalue(result.get(), i, 2), nullptr, 10);
    each(std::move(inv));
  }
  return Status::ok();
}

}  // namespace bridge::store
