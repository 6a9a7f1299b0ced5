#include "pgoutput.h"

#include <fmt/format.h>

#include <charconv>

namespace bridge::pgoutput {
namespace {

// 2000-01-01 minus 1970-01-01, in microseconds.
constexpr int64_t kPgEpochOffsetUs = 946684800LL * 1000000;

// Reads big-endian fields; a read past the end fails and the reader stays failed.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == bytes_.size(); }
  std::string_view rest() const { return bytes_.substr(pos_); }

  uint64_t uint(size_t width) {
    if (!need(width)) return 0;
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) value = (value << 8) | static_cast<unsigned char>(bytes_[pos_ + i]);
    pos_ += width;
    return value;
  }
  uint8_t u8() { return static_cast<uint8_t>(uint(1)); }
  uint16_t u16() { return static_cast<uint16_t>(uint(2)); }
  uint32_t u32() { return static_cast<uint32_t>(uint(4)); }
  int32_t i32() { return static_cast<int32_t>(u32()); }
  uint64_t u64() { return uint(8); }
  int64_t i64() { return static_cast<int64_t>(u64()); }

  std::string_view bytes(size_t count) {
    if (!need(count)) return {};
    std::string_view out = bytes_.substr(pos_, count);
    pos_ += count;
    return out;
  }
  // A NUL-terminated string.
  std::string cstring() {
    size_t end = ok_ ? bytes_.find('\0', pos_) : std::string_view::npos;
    if (end == std::string_view::npos) {
      ok_ = false;
      return {};
    }
    std::string out(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return out;
  }

 private:
  bool need(size_t count) {
    if (!ok_ || bytes_.size() - pos_ < count) ok_ = false;
    return ok_;
  }
  std::string_view bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
};

Status truncated(const char* what) { return Status::error(fmt::format("pgoutput: truncated {} message", what)); }

bool read_tuple(Reader& in, Tuple* tuple) {
  uint16_t count = in.u16();
  if (!in.ok()) return false;
  tuple->clear();
  tuple->reserve(count);
  for (uint16_t i = 0; i < count && in.ok(); ++i) {
    Value value;
    switch (in.u8()) {
      case 'n':
        value.kind = Value::Kind::kNull;
        break;
      case 'u':
        value.kind = Value::Kind::kUnchangedToast;
        break;
      case 't':
      case 'b': {  // binary only if asked for (never by the bridge); kept as bytes
        int32_t length = in.i32();
        if (length < 0) return false;
        value.kind = Value::Kind::kText;
        value.text = std::string(in.bytes(static_cast<size_t>(length)));
        break;
      }
      default:
        return false;
    }
    tuple->push_back(std::move(value));
  }
  return in.ok();
}

Status decode_relation(Reader& in, Message* message) {
  Relation relation;
  relation.id = in.u32();
  relation.schema = in.cstring();
  if (relation.schema.empty()) relation.schema = "pg_catalog";
  relation.name = in.cstring();
  relation.replica_identity = static_cast<char>(in.u8());
  uint16_t count = in.u16();
  for (uint16_t i = 0; i < count && in.ok(); ++i) {
    Column column;
    column.in_identity = (in.u8() & 1) != 0;
    column.name = in.cstring();
    column.type_oid = in.u32();
    in.u32();  // typmod
    relation.columns.push_back(std::move(column));
  }
  if (!in.ok()) return truncated("Relation");
  *message = std::move(relation);
  return Status::ok();
}

Status decode_row_change(Reader& in, char type, Message* message) {
  RowChange change;
  change.kind = static_cast<RowChange::Kind>(type);
  change.relation_id = in.u32();
  char part = static_cast<char>(in.u8());
  if (type != 'I' && (part == 'K' || part == 'O')) {
    change.old_is_full = part == 'O';
    change.old_tuple.emplace();
    if (!read_tuple(in, &*change.old_tuple)) return truncated("row");
    if (type == 'U') part = static_cast<char>(in.u8());
  }
  if (type != 'D') {
    if (part != 'N') return Status::error(fmt::format("pgoutput: {} message without a new tuple", type));
    change.new_tuple.emplace();
    if (!read_tuple(in, &*change.new_tuple)) return truncated("row");
  } else if (!change.old_tuple) {
    return Status::error("pgoutput: Delete message without an old tuple");
  }
  if (!in.ok()) return truncated("row");
  *message = std::move(change);
  return Status::ok();
}

}  // namespace

std::string format_lsn(Lsn lsn) {
  return fmt::format("{:X}/{:X}", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
}

bool parse_lsn(std::string_view text, Lsn* lsn) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) return false;
  uint32_t high = 0, low = 0;
  auto parse = [](std::string_view part, uint32_t* out) {
    auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), *out, 16);
    return error == std::errc() && end == part.data() + part.size();
  };
  if (!parse(text.substr(0, slash), &high) || !parse(text.substr(slash + 1), &low)) return false;
  *lsn = (static_cast<Lsn>(high) << 32) | low;
  return true;
}

int64_t unix_us_of_pg_time(int64_t pg_us) { return pg_us + kPgEpochOffsetUs; }
int64_t pg_time_of_unix_us(int64_t unix_us) { return unix_us - kPgEpochOffsetUs; }

Status decode_message(std::string_view bytes, Message* message) {
  Reader in(bytes);
  char type = static_cast<char>(in.u8());
  if (!in.ok()) return Status::error("pgoutput: empty message");
  switch (type) {
    case 'B': {
      Begin begin;
      begin.final_lsn = in.u64();
      begin.commit_time = in.i64();
      begin.xid = in.u32();
      if (!in.ok()) return truncated("Begin");
      *message = begin;
      return Status::ok();
    }
    case 'C': {
      Commit commit;
      in.u8();  // flags, unused
      commit.commit_lsn = in.u64();
      commit.end_lsn = in.u64();
      commit.commit_time = in.i64();
      if (!in.ok()) return truncated("Commit");
      *message = commit;
      return Status::ok();
    }
    case 'R':
      return decode_relation(in, message);
    case 'I':
    case 'U':
    case 'D':
      return decode_row_change(in, type, message);
    case 'T': {
      Truncate truncate;
      int32_t count = in.i32();
      in.u8();  // options: CASCADE, RESTART IDENTITY
      if (count < 0 || static_cast<size_t>(count) > in.rest().size() / 4) return truncated("Truncate");
      for (int32_t i = 0; i < count; ++i) truncate.relation_ids.push_back(in.u32());
      if (!in.ok()) return truncated("Truncate");
      *message = std::move(truncate);
      return Status::ok();
    }
    case 'M': {
      LogicalMessage logical;
      logical.transactional = (in.u8() & 1) != 0;
      in.u64();  // the message's LSN
      logical.prefix = in.cstring();
      int32_t length = in.i32();
      if (length < 0) return truncated("Message");
      logical.content = std::string(in.bytes(static_cast<size_t>(length)));
      if (!in.ok()) return truncated("Message");
      *message = std::move(logical);
      return Status::ok();
    }
    default:  // Type ('Y'), Origin ('O'), and whatever a newer server adds
      *message = Ignored{type};
      return Status::ok();
  }
}

Status decode_frame(std::string_view bytes, Frame* frame) {
  Reader in(bytes);
  char type = static_cast<char>(in.u8());
  if (type == 'w') {
    XLogData data;
    data.start = in.u64();
    data.end = in.u64();
    in.i64();  // the server's send time
    if (!in.ok()) return Status::error("replication: truncated XLogData frame");
    data.payload = in.rest();
    *frame = data;
    return Status::ok();
  }
  if (type == 'k') {
    Keepalive keepalive;
    keepalive.end = in.u64();
    in.i64();
    keepalive.reply_requested = in.u8() != 0;
    if (!in.ok()) return Status::error("replication: truncated keepalive frame");
    *frame = keepalive;
    return Status::ok();
  }
  return Status::error(fmt::format("replication: unknown frame type 0x{:02x}", static_cast<unsigned char>(type)));
}

std::string encode_status_update(Lsn received, Lsn flushed, int64_t now_unix_us, bool reply_requested) {
  std::string out;
  out.reserve(34);
  out.push_back('r');
  auto put = [&out](uint64_t value) {
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
  };
  put(received);
  put(flushed);
  put(flushed);  // applied: the bridge applies what it flushes
  put(static_cast<uint64_t>(pg_time_of_unix_us(now_unix_us)));
  out.push_back(reply_requested ? 1 : 0);
  return out;
}

}  // namespace bridge::pgoutput
