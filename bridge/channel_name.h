// The one channel-name rule: BRIDGE_CHANNEL template + table + cache key -> Pusher channel.
// Pure: no I/O. deploy/clients/channel-name.mjs is its JavaScript twin; both are pinned to the
// same vectors (tests/unit/channel_name_test.cc, tests/integration/channel-name.test.mjs).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bridge {

// Soketi refuses channel names longer than this (its default channel-name limit).
inline constexpr size_t kMaxChannelNameLength = 200;

// The rule, in full:
//
// 1. Expansion. Literal template text is copied unchanged; each "{table}" is replaced by the
//    escaped table, each "{key}" by the escaped cache key. Anything else, "{other}" included,
//    is literal text.
//
// 2. Escaping (injective, byte-wise over UTF-8). The bytes A-Z a-z 0-9 and _ - @ , . ; are
//    copied; every other byte -- '=' itself, ':', spaces, and each byte of a multi-byte UTF-8
//    character -- becomes '=' followed by two UPPERCASE hex digits of the byte:
//      "posts:1" -> "posts=3A1"    "posts-1" -> "posts-1"    "a=b" -> "a=3Db"
//      "café"    -> "caf=C3=A9"    U+1F600   -> "=F0=9F=98=80"
//
// 3. Length. When the expanded name is longer than kMaxChannelNameLength (200), the result is
//    a prefix of the expanded name, then "=h", then the first 16 lowercase hex digits of
//    SHA-256 over the FULL untruncated expanded name. The prefix is the first 182 characters,
//    shortened while a '=' stands in one of its last two positions (every '=' is treated as
//    the start of an "=XX" escape), so it never ends inside an escape. The result is then
//    <= 200 characters. An escape is '=' plus uppercase hex, so "=h" never comes from an
//    escaped value: a hashed name differs from every unhashed one (given a template whose
//    literal text contains no "=h").
//
// Never fails and always returns <= kMaxChannelNameLength characters. The template should
// pass is_valid_channel_template(); if it does not, its literal bytes are still copied as is.
std::string expand_channel(std::string_view channel_template, std::string_view table,
                           std::string_view cache_key);

// A name Pusher (Soketi) accepts: 1 to 200 of A-Z a-z 0-9 _ - = @ , . ;
bool is_valid_channel_name(std::string_view channel);

// False when no table and key can make expand_channel(channel_template, ...) give `channel`
// (a cheap check on its literal parts and characters; true does not promise that one does).
// Webhooks for impossible channels are refused before they cost a database query.
bool could_be_expanded_from(std::string_view channel_template, std::string_view channel);

// True when `channel_template` can serve as BRIDGE_CHANNEL: it is non-empty, every character
// outside the "{table}" and "{key}" placeholders is one of A-Z a-z 0-9 _ - = @ , . ; and that
// literal text (the template without its placeholders) is at most kMaxChannelNameLength
// characters. On false, `*why` (when not null) says why, naming the first offending
// character; on true it is left alone.
[[nodiscard]] bool is_valid_channel_template(std::string_view channel_template, std::string* why);

}  // namespace bridge
