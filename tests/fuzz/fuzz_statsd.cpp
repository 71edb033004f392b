// Fuzz: one StatsD / DogStatsD datagram -> parse_statsd_packet. Every line is either a sample or a
// counted error, never both, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "ingest/statsd_parser.h"

using namespace tally::collector;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view packet(reinterpret_cast<const char*>(data), size);
  std::vector<StatsdSample> samples;
  std::vector<StatsdLineError> errors;
  StatsdPacketCounts c = parse_statsd_packet(packet, samples, errors);
  if (c.lines_rejected != errors.size()) std::abort();
  if (c.lines_ok == 0 && !samples.empty()) std::abort();
  return 0;
}
