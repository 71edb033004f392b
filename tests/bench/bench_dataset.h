// The standard benchmark dataset (../shared/bench-data/gen_counters.c: 10,000 counters, one value a
// second) generated with gcc into a temporary directory and parsed into a matrix, for the
// storage and disk benchmarks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tally/common/series_key.h"

namespace tally::bench {

struct Dataset {
  int64_t start_s = 0;
  int64_t seconds = 0;
  std::vector<std::pair<std::string, Tags>> series;  // metric, tags; index = column
  std::vector<uint32_t> values;                      // [second * series + column]
  uint64_t points = 0;
  double parse_cpu_s = 0;
};

// Generates `seconds` of data from unix second `start_s` (gen_counters' default seed) in `tmp` and
// parses it into `d`; the generator's text files are removed as they are read. False when the
// generator does not build or run, or its output is not the 10,000 x seconds points expected.
bool load_dataset(const std::string& gen_src, int64_t start_s, int64_t seconds,
                  const std::filesystem::path& tmp, Dataset* d);

}  // namespace tally::bench
