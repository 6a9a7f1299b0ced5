// Pusher HTTP API request signing and webhook verification. Pure: no I/O.
// https://pusher.com/docs/channels/library_auth_reference/rest-api/#authentication
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace bridge {

std::string md5_hex(std::string_view data);
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// Constant-time comparison of two hex signatures (case-insensitive on the provided side).
bool signatures_match(std::string_view expected_hex, std::string_view provided_hex);

// The full query string of a signed request: the given parameters plus auth_key,
// auth_timestamp, auth_version=1.0, body_md5 (when body is non-empty) and auth_signature,
// which is HMAC-SHA256 over "METHOD\nPATH\nsorted_query". `path` is the path Soketi sees
// (/apps/<id>/...), without any proxy prefix. Parameter values must not need URL escaping.
std::string signed_query(std::string_view method, std::string_view path,
                         std::map<std::string, std::string> params, std::string_view body,
                         std::string_view app_key, std::string_view app_secret,
                         int64_t unix_seconds);

// Whether `auth` is the channel authorization Pusher's auth endpoints hand a client for
// `socket_id` on `channel`: "<app key>:<hex HMAC-SHA256 of socket_id:channel>", with
// ":channel_data" appended to the signed text for presence channels. Constant-time.
bool channel_auth_valid(std::string_view app_key, std::string_view app_secret,
                        std::string_view socket_id, std::string_view channel,
                        std::string_view channel_data, std::string_view auth);

}  // namespace bridge
