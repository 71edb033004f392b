// Fuzz: a collector configuration file (TOML) -> load_config_file. Errors are Status values naming
// the line; what loads validates.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config.h"

using namespace tally;
using namespace tally::collector;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  static const std::string path = (std::filesystem::temp_directory_path() /
                                   ("tally-fuzz-" + std::to_string(::getpid()) + ".toml"))
                                      .string();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  auto c = load_config_file(path, CollectorConfig{});
  if (c) {
    // The printed configuration loads back.
    std::ofstream(path, std::ios::trunc) << config_to_toml(*c);
    if (!load_config_file(path, CollectorConfig{})) std::abort();
  }
  return 0;
}
