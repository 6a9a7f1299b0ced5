// InvalidationStore: the "Cache Invalidated At" table (sql/cache_invalidation.sql) and
// the bridge's catch-up cursor, read over a connection the caller owns.
// Stateless: every function runs its SQL on the given connection.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "invalidation.h"
#include "pg_connection.h"
#include "status.h"

namespace bridge::store {

// Whether sql/cache_invalidation.sql is installed in the connected database.
Status check_installed(PGconn* conn, bool* installed);

// The cursor named `name`: rows written by transactions with an id >= *resume_xid may not
// have been published. A new cursor starts at the current snapshot (nothing older replays).
Status load_cursor(PGconn* conn, const std::string& name, std::string* resume_xid);
Status save_cursor(PGconn* conn, const std::string& name, const std::string& resume_xid);

// The oldest transaction id still running (pg_snapshot_xmin of the current snapshot):
// every transaction that commits from now on has an id >= this.
Status current_xmin(PGconn* conn, std::string* xmin);

// Streams every key written since resume_xid (one row at a time: bounded memory) and
// sets *snapshot_xmin to the xmin of the snapshot that read them. `each` may block.
Status read_since(PGconn* conn, const std::string& resume_xid,
                  const std::function<void(Invalidation)>& each, std::string* snapshot_xmin);

// Keys whose channel (BRIDGE_CHANNEL expanded as expand_channel() does) is `channel`,
// invalidated within max_age: the newest max_keys of them, oldest first (so the last event a
// channel sees, the one Soketi caches on cache- channels, is the newest).
Status read_for_channel(PGconn* conn, const std::string& channel_template,
                        const std::string& channel, std::chrono::seconds max_age, int max_keys,
                        const std::function<void(Invalidation)>& each);

}  // namespace bridge::store
