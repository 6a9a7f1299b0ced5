// Secret redaction: finds the secrets in a connection string and blanks them out of text.
// Pure: no I/O. libpq echoes parts of a malformed conninfo in its messages (a password with a
// stray '%' came back whole), so the bridge redacts every line it writes, not only the ones
// that are meant to hold a connection string.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bridge {

// The password of a libpq URI (postgres[ql]://user:PASSWORD@host..., also ?password=...) or
// key=value conninfo (password=... or password='...'), as written and, where it is
// percent-encoded, as decoded. Works on malformed input too: no libpq parsing involved.
std::vector<std::string> conninfo_secrets(std::string_view conninfo);

// `text` with every occurrence of each secret (of at least 3 bytes; shorter ones would blank
// out ordinary words) replaced by "[redacted]".
std::string redact(std::string_view text, const std::vector<std::string>& secrets);

}  // namespace bridge
