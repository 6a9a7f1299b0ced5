// Preflight checks for `cache-bridge --check`: configuration already parsed, then
// PostgreSQL, LISTEN/NOTIFY end to end, the store, and Soketi's credentials.
#pragma once

#include "config.h"

namespace bridge {

// Prints one line per check to stdout; returns the process exit code (0 all good, 1 otherwise).
int run_preflight(const Config& config);

}  // namespace bridge
