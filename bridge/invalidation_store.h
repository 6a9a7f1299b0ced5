// InvalidationStore: the catch-up log cache_invalidation_log (sql/cache_invalidation.sql) and
// the bridge's catch-up cursor, read over a connection the caller owns.
// Stateless: every function runs its SQL on the given connection.
#pragma once

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "invalidation.h"
#include "pg_connection.h"
#include "status.h"

namespace bridge::store {

// Whether sql/cache_invalidation.sql is installed in the connected database.
Status check_installed(PGconn* conn, bool* installed);

// The cursor named `name`: rows written by transactions with an id >= resume_xid, and stamps
// with a seq > resume_seq, may not have been published. A new cursor starts at the current
// snapshot (nothing older replays) and the newest stamp.
struct Cursor {
  std::string resume_xid;
  int64_t resume_seq = 0;
};
Status load_cursor(PGconn* conn, const std::string& name, Cursor* cursor);
// Both only move forward, even if two bridges share a name.
Status save_cursor(PGconn* conn, const std::string& name, const Cursor& cursor);

// The oldest transaction id still running (pg_snapshot_xmin of the current snapshot):
// every transaction that commits from now on has an id >= this.
Status current_xmin(PGconn* conn, std::string* xmin);

// Streams every key the log holds from transactions with an id >= resume_xid, each once (one
// row at a time: bounded memory; cache_key and table only, not stamped) and sets
// *snapshot_xmin to the xmin of the snapshot that read them. `each` may block.
Status read_since(PGconn* conn, const std::string& resume_xid,
                  const std::function<void(Invalidation)>& each, std::string* snapshot_xmin);

// Deletes at most `limit` of the log rows every cursor has passed (writer_xid below the
// smallest resume_xid), the oldest first: no bridge will read them again. Sets *deleted to
// how many (== limit: there may be more).
Status trim_log(PGconn* conn, int limit, int64_t* deleted);

// What the bridge named `bridge_name` stamped (cache_bridge_stamp): one row per key.
struct StampRow {
  std::string cache_key;
  std::string channel;
  std::string table;
  int64_t seq = 0;
};

// Whether cache_bridge_stamp exists (sql/cache_invalidation.sql of this version or later).
Status check_stamps_installed(PGconn* conn, bool* installed);

// The largest seq stored for bridge_name (0 if none): where its ChangeClock resumes.
Status max_stamp_seq(PGconn* conn, const std::string& bridge_name, int64_t* seq);

// Upserts the rows in one statement; a row never replaces one with a larger seq.
Status write_stamps(PGconn* conn, const std::string& bridge_name, std::span<const StampRow> rows);

// The stamps with from_seq <= seq <= to_seq, oldest first, at most `limit`: what the bridge
// held back.
Status read_stamps_between(PGconn* conn, const std::string& bridge_name, int64_t from_seq,
                           int64_t to_seq, int limit, std::vector<StampRow>* rows);

// Sets the channel of each row's stamp (seq untouched), for a changed BRIDGE_CHANNEL.
Status reroute_stamps(PGconn* conn, const std::string& bridge_name, std::span<const StampRow> rows);

// The stamps of `channel` with seq > min_seq, at most max_keys of them (the newest), oldest
// first (so the last event a channel sees, the one Soketi caches on cache- channels, is the
// newest). Sets *truncated when more matched. Invalidations come with seq
// and table set. Uses the (bridge_name, channel, seq) index: no per-row expressions.
Status read_channel_stamps(PGconn* conn, const std::string& bridge_name, const std::string& channel,
                           int64_t min_seq, int max_keys,
                           const std::function<void(Invalidation)>& each, bool* truncated = nullptr);

}  // namespace bridge::store
