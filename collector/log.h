// Logging set-up: one line per event, "time level=... event=... key=value", to stderr or a file.
#pragma once

#include <string>

#include "tally/common/status.h"

namespace tally::collector {

Status setup_logging(const std::string& level, const std::string& file);

}  // namespace tally::collector
