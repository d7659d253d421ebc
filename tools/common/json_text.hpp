// JSON output of the tools. Strings in it may come from a peer or a file (model ids, tensor names,
// error messages) and need not be valid UTF-8: such bytes print as U+FFFD instead of throwing.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace agp::tools {

inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace agp::tools
