#include <doctest/doctest.h>

#include <string>

#include "pgoutput.h"

using namespace bridge;
using namespace bridge::pgoutput;

namespace {

// Builds messages the way the server writes them: big-endian integers, NUL-terminated names.
struct Bytes {
  std::string out;
  Bytes& u8(uint8_t v) {
    out.push_back(static_cast<char>(v));
    return *this;
  }
  Bytes& be(uint64_t v, int width) {
    for (int shift = (width - 1) * 8; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
    return *this;
  }
  Bytes& u16(uint16_t v) { return be(v, 2); }
  Bytes& u32(uint32_t v) { return be(v, 4); }
  Bytes& u64(uint64_t v) { return be(v, 8); }
  Bytes& str(std::string_view s) {
    out += s;
    out.push_back('\0');
    return *this;
  }
  Bytes& text(std::string_view s) {
    u8('t').u32(static_cast<uint32_t>(s.size()));
    out += s;
    return *this;
  }
};

}  // namespace

TEST_CASE("LSNs print and parse as PostgreSQL writes them") {
  CHECK(format_lsn(0x16B374D848ULL) == "16/B374D848");
  Lsn lsn = 0;
  REQUIRE(parse_lsn("16/B374D848", &lsn));
  CHECK(lsn == 0x16B374D848ULL);
  CHECK_FALSE(parse_lsn("16B374D848", &lsn));
  CHECK_FALSE(parse_lsn("/1", &lsn));
  CHECK_FALSE(parse_lsn("1/", &lsn));
  CHECK_FALSE(parse_lsn("1/G", &lsn));
}

TEST_CASE("Begin and Commit carry the transaction and its end position") {
  Message m;
  REQUIRE(decode_message(Bytes{}.u8('B').u64(0x100).u64(5).u32(742).out, &m));
  auto begin = std::get<Begin>(m);
  CHECK(begin.final_lsn == 0x100);
  CHECK(begin.xid == 742);
  REQUIRE(decode_message(Bytes{}.u8('C').u8(0).u64(0x100).u64(0x130).u64(5).out, &m));
  auto commit = std::get<Commit>(m);
  CHECK(commit.commit_lsn == 0x100);
  CHECK(commit.end_lsn == 0x130);
  CHECK(unix_us_of_pg_time(0) == 946684800LL * 1000000);
}

TEST_CASE("a Relation names its columns, types and identity") {
  Message m;
  auto bytes = Bytes{}.u8('R').u32(16384).str("public").str("posts").u8('d').u16(2)
                   .u8(1).str("id").u32(23).u32(0xffffffff)
                   .u8(0).str("title").u32(25).u32(0xffffffff).out;
  REQUIRE(decode_message(bytes, &m));
  auto relation = std::get<Relation>(m);
  CHECK(relation.id == 16384);
  CHECK(relation.schema == "public");
  CHECK(relation.name == "posts");
  REQUIRE(relation.columns.size() == 2);
  CHECK(relation.columns[0].in_identity);
  CHECK(relation.columns[0].type_oid == 23);
  CHECK_FALSE(relation.columns[1].in_identity);
  CHECK(relation.columns[1].name == "title");

  // pg_catalog is sent as an empty namespace.
  REQUIRE(decode_message(Bytes{}.u8('R').u32(1).str("").str("t").u8('n').u16(0).out, &m));
  CHECK(std::get<Relation>(m).schema == "pg_catalog");
}

TEST_CASE("row changes carry new and old tuples with null, unchanged TOAST and text values") {
  Message m;
  REQUIRE(decode_message(Bytes{}.u8('I').u32(7).u8('N').u16(2).text("1").u8('n').out, &m));
  auto insert = std::get<RowChange>(m);
  CHECK(insert.kind == RowChange::Kind::kInsert);
  REQUIRE(insert.new_tuple);
  CHECK((*insert.new_tuple)[0].text == "1");
  CHECK((*insert.new_tuple)[1].kind == Value::Kind::kNull);
  CHECK_FALSE(insert.old_tuple);

  // An UPDATE that changed the key: the old identity first ('K'), then the new row.
  REQUIRE(decode_message(Bytes{}.u8('U').u32(7).u8('K').u16(2).text("1").u8('n')
                             .u8('N').u16(2).text("2").u8('u').out, &m));
  auto update = std::get<RowChange>(m);
  REQUIRE(update.old_tuple);
  CHECK_FALSE(update.old_is_full);
  CHECK((*update.old_tuple)[0].text == "1");
  CHECK((*update.new_tuple)[1].kind == Value::Kind::kUnchangedToast);

  REQUIRE(decode_message(Bytes{}.u8('D').u32(7).u8('O').u16(1).text("2").out, &m));
  auto deleted = std::get<RowChange>(m);
  CHECK(deleted.old_is_full);
  CHECK_FALSE(deleted.new_tuple);
}

TEST_CASE("Truncate lists its tables; Message carries prefix and content; others are ignored") {
  Message m;
  REQUIRE(decode_message(Bytes{}.u8('T').u32(2).u8(0).u32(7).u32(8).out, &m));
  CHECK(std::get<Truncate>(m).relation_ids == std::vector<uint32_t>{7, 8});

  auto message = Bytes{}.u8('M').u8(1).u64(0x200).str("cache_invalidation").u32(7).out + "posts:1";
  REQUIRE(decode_message(message, &m));
  auto logical = std::get<LogicalMessage>(m);
  CHECK(logical.transactional);
  CHECK(logical.prefix == "cache_invalidation");
  CHECK(logical.content == "posts:1");

  REQUIRE(decode_message(Bytes{}.u8('Y').u32(1).str("public").str("t").out, &m));
  CHECK(std::get<Ignored>(m).type == 'Y');
}

TEST_CASE("short or malformed messages are errors, never reads past the end") {
  Message m;
  CHECK_FALSE(decode_message("", &m));
  CHECK_FALSE(decode_message(Bytes{}.u8('B').u64(1).out, &m));
  CHECK_FALSE(decode_message(Bytes{}.u8('R').u32(1).str("public").out, &m));  // no relname
  CHECK_FALSE(decode_message(Bytes{}.u8('I').u32(7).u8('N').u16(1).u8('t').u32(100).out + "short", &m));
  CHECK_FALSE(decode_message(Bytes{}.u8('I').u32(7).u8('N').u16(1).u8('x').out, &m));  // unknown kind
  CHECK_FALSE(decode_message(Bytes{}.u8('I').u32(7).u8('K').u16(0).out, &m));  // INSERT has no old row
  CHECK_FALSE(decode_message(Bytes{}.u8('D').u32(7).u8('N').u16(0).out, &m));  // DELETE needs one
  CHECK_FALSE(decode_message(Bytes{}.u8('T').u32(1000000).u8(0).u32(1).out, &m));
  CHECK_FALSE(decode_message(Bytes{}.u8('M').u8(1).u64(1).str("p").u32(0x7fffffff).out, &m));
}

TEST_CASE("frames: XLogData wraps a message, keepalives may ask for an answer") {
  Frame f;
  auto data = Bytes{}.u8('w').u64(0x10).u64(0x20).u64(0).out + "B...";
  REQUIRE(decode_frame(data, &f));
  auto x = std::get<XLogData>(f);
  CHECK(x.start == 0x10);
  CHECK(x.end == 0x20);
  CHECK(x.payload == "B...");
  REQUIRE(decode_frame(Bytes{}.u8('k').u64(0x30).u64(0).u8(1).out, &f));
  CHECK(std::get<Keepalive>(f).end == 0x30);
  CHECK(std::get<Keepalive>(f).reply_requested);
  CHECK_FALSE(decode_frame(Bytes{}.u8('k').u64(0x30).out, &f));
  CHECK_FALSE(decode_frame("z", &f));
}

TEST_CASE("a status update reports received, flushed and applied positions") {
  std::string update = encode_status_update(0x30, 0x20, unix_us_of_pg_time(0) + 5, true);
  CHECK(update == Bytes{}.u8('r').u64(0x30).u64(0x20).u64(0x20).u64(5).u8(1).out);
}
