// Logging set-up: one line per event, "time level=... event=... key=value", to stderr (under
// systemd that is the journal) or to a file that rotates by size: past max_bytes it becomes
// file.1 (file.1 becomes file.2, ...) and at most max_files rotated files are kept.
#pragma once

#include <cstdint>
#include <string>

#include "tally/common/status.h"

namespace tally::collector {

// max_bytes 0: the file never rotates.
Status setup_logging(const std::string& level, const std::string& file, uint64_t max_bytes = 0,
                     uint64_t max_files = 5);

}  // namespace tally::collector
