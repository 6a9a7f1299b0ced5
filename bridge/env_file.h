// Reads a .env file (KEY=VALUE lines) as Soketi and docker compose understand it.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace bridge {

using EnvMap = std::map<std::string, std::string>;

struct EnvFileResult {
  EnvMap values;
  std::vector<std::string> errors;  // "line N: ..." per line that is not KEY=VALUE
};

// Pure: parses the text of a .env file. Accepts comments (#), blank lines, an optional
// `export ` prefix, and values in single quotes (literal) or double quotes (\n, \", \\ escapes).
// Unquoted values end at " #" (an inline comment) and are trimmed.
EnvFileResult parse_env_text(std::string_view text);

// Reads and parses a file. A missing file is an error only when `required`.
EnvFileResult read_env_file(const std::string& path, bool required);

// The file's values with the process environment laid over them (real variables win).
EnvMap overlay_process_environment(EnvMap values);

}  // namespace bridge
