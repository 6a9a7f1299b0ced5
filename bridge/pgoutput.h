// pgoutput: decodes what a logical replication slot streams with PostgreSQL's built-in
// `pgoutput` plugin (protocol version 1, with logical decoding messages), and encodes the
// client's status updates. Pure: no I/O.
//
// Two layers, as the server sends them in CopyData messages:
//   frames:   'w' XLogData (a pgoutput message and its WAL position), 'k' primary keepalive;
//   messages: Begin, Commit, Relation, Insert/Update/Delete, Truncate, Message; Type and
//             Origin are read and ignored.
// Every decoder checks each length against the bytes it has: a short or malformed message is
// an error, never a read past the end.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "status.h"

namespace bridge::pgoutput {

using Lsn = uint64_t;

std::string format_lsn(Lsn lsn);                   // "16/B374D848"
bool parse_lsn(std::string_view text, Lsn* lsn);  // the same form back

// PostgreSQL's timestamps count microseconds since 2000-01-01 UTC.
int64_t unix_us_of_pg_time(int64_t pg_us);
int64_t pg_time_of_unix_us(int64_t unix_us);

struct Column {
  std::string name;
  uint32_t type_oid = 0;
  bool in_identity = false;  // part of the replica identity (what old tuples of DELETE carry)
};

struct Relation {
  uint32_t id = 0;
  std::string schema;  // "pg_catalog" when the server sends an empty namespace
  std::string name;
  char replica_identity = 'd';  // d(efault), n(othing), f(ull), i(ndex)
  std::vector<Column> columns;
};

struct Value {
  enum class Kind : char { kNull = 'n', kUnchangedToast = 'u', kText = 't' };
  Kind kind = Kind::kNull;
  std::string text;  // the type's text output, when kText
};
using Tuple = std::vector<Value>;

struct Begin {
  Lsn final_lsn = 0;  // the commit record's position
  int64_t commit_time = 0;  // PostgreSQL time
  uint32_t xid = 0;
};

struct Commit {
  Lsn commit_lsn = 0;
  Lsn end_lsn = 0;  // confirming this position means: this transaction is done
  int64_t commit_time = 0;
};

struct RowChange {
  enum class Kind : char { kInsert = 'I', kUpdate = 'U', kDelete = 'D' };
  Kind kind = Kind::kInsert;
  uint32_t relation_id = 0;
  // UPDATE: sent when the replica identity changed (or with REPLICA IDENTITY FULL);
  // DELETE: always. Only the identity's columns are non-null unless old_is_full.
  std::optional<Tuple> old_tuple;
  bool old_is_full = false;
  std::optional<Tuple> new_tuple;  // INSERT and UPDATE
};

struct Truncate {
  std::vector<uint32_t> relation_ids;
};

// pg_logical_emit_message(transactional, prefix, content).
struct LogicalMessage {
  bool transactional = false;
  std::string prefix;
  std::string content;
};

struct Ignored {
  char type = 0;
};

using Message = std::variant<Begin, Commit, Relation, RowChange, Truncate, LogicalMessage, Ignored>;

// Decodes one pgoutput message (the payload of an XLogData frame). Unknown message types
// decode as Ignored, so a newer server's additions do not stop the stream.
Status decode_message(std::string_view bytes, Message* message);

struct XLogData {
  Lsn start = 0;
  Lsn end = 0;  // the server's WAL end when it sent this
  std::string_view payload;  // points into the frame's bytes
};

struct Keepalive {
  Lsn end = 0;
  bool reply_requested = false;
};

using Frame = std::variant<XLogData, Keepalive>;

Status decode_frame(std::string_view bytes, Frame* frame);

// A standby status update ('r'): what the client received, and up to where the server may
// forget (flushed; also reported as applied). `now_unix_us` is the sending time.
std::string encode_status_update(Lsn received, Lsn flushed, int64_t now_unix_us, bool reply_requested);

}  // namespace bridge::pgoutput
