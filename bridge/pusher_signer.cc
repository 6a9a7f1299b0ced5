#include "pusher_signer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>

namespace bridge {
namespace {

std::string to_hex(const unsigned char* bytes, size_t length) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(length * 2, '0');
  for (size_t i = 0; i < length; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0x0f];
  }
  return out;
}

}  // namespace

std::string md5_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr);
  return to_hex(digest, length);
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length);
  return to_hex(digest, length);
}

bool signatures_match(std::string_view expected_hex, std::string_view provided_hex) {
  if (expected_hex.size() != provided_hex.size()) return false;
  std::string provided(provided_hex);
  for (auto& c : provided) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return CRYPTO_memcmp(expected_hex.data(), provided.data(), expected_hex.size()) == 0;
}

std::string signed_query(std::string_view method, std::string_view path,
                         std::map<std::string, std::string> params, std::string_view body,
                         std::string_view app_key, std::string_view app_secret,
                         int64_t unix_seconds) {
  params["auth_key"] = std::string(app_key);
  params["auth_timestamp"] = std::to_string(unix_seconds);
  params["auth_version"] = "1.0";
  if (!body.empty()) params["body_md5"] = md5_hex(body);
  std::string query;
  for (const auto& [name, value] : params) {  // std::map: sorted by name, as Pusher requires
    if (!query.empty()) query.push_back('&');
    query += name + "=" + value;
  }
  std::string to_sign = std::string(method) + "\n" + std::string(path) + "\n" + query;
  return query + "&auth_signature=" + hmac_sha256_hex(app_secret, to_sign);
}

bool channel_auth_valid(std::string_view app_key, std::string_view app_secret,
                        std::string_view socket_id, std::string_view channel,
                        std::string_view channel_data, std::string_view auth) {
  size_t colon = auth.find(':');
  if (colon == std::string_view::npos || auth.substr(0, colon) != app_key) return false;
  std::string signed_text = std::string(socket_id) + ":" + std::string(channel);
  if (!channel_data.empty()) signed_text += ":" + std::string(channel_data);
  return signatures_match(hmac_sha256_hex(app_secret, signed_text), auth.substr(colon + 1));
}

}  // namespace bridge
