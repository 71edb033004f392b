// Fuzz: one StatsD / DogStatsD datagram (after a first byte choosing the dialect and clock) ->
// parse_statsd_packet. Every line is either a sample or a
// counted error, never both, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "ingest/statsd_parser.h"

using namespace tally::collector;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the dialect and whether "|T" is checked against a clock.
  StatsdParseOptions options;
  options.dialect = (data[0] & 1) ? StatsdDialect::kEtsy : StatsdDialect::kDogStatsd;
  if (data[0] & 2) {
    options.now_s = 1'800'000'000;
    options.max_age_s = 3600;
    options.max_future_s = 600;
  }
  std::string_view packet(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<StatsdSample> samples;
  std::vector<StatsdLineError> errors;
  StatsdPacketCounts c = parse_statsd_packet(packet, options, samples, errors);
  if (c.lines_rejected != errors.size()) std::abort();
  if (c.lines_ok == 0 && !samples.empty()) std::abort();
  return 0;
}
