// The transport's log calls (internal): cheap when nobody listens.
#pragma once

#include <string>

#include "agp/transport/log.hpp"

namespace agp::transport::detail {

bool log_enabled(LogLevel level);
void log(LogLevel level, std::string_view event, const std::string& message);

}  // namespace agp::transport::detail
