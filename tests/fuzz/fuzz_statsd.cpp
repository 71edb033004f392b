// Fuzz: one StatsD / DogStatsD datagram (after a first byte choosing the dialect and clock) ->
// parse_statsd_packet. Every line is either a sample or a counted error, never both, never a
// crash. And the line cache (statsd_line_cache.h) reads as the parser does: the datagram parsed
// twice through a cache (the second time its counter lines hit) gives the same counts, the same
// errors, the same non-counter samples and, per series, the same counter sum over the same
// number of lines as parsed twice without one.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/statsd_line_cache.h"
#include "ingest/statsd_parser.h"

using namespace tally::collector;

namespace {

struct Outcome {
  StatsdPacketCounts counts;
  std::vector<std::pair<size_t, StatsdReject>> errors;
  struct Counter {
    double sum = 0;
    uint64_t lines = 0;
    double magnitude = 0;  // the sum of the increments' absolute values
  };
  std::map<std::string, Counter> counters;  // by series
  std::vector<StatsdSample> others;
};

Outcome twice(std::string_view packet, const StatsdParseOptions& options, StatsdLineCache* cache) {
  Outcome out;
  std::vector<StatsdSample> samples;
  for (int round = 0; round < 2; ++round) {
    std::vector<StatsdLineError> errors;
    StatsdPacketCounts c = parse_statsd_packet(packet, options, samples, errors, cache);
    if (c.lines_rejected != errors.size()) std::abort();
    out.counts.lines_ok += c.lines_ok;
    out.counts.lines_rejected += c.lines_rejected;
    out.counts.events += c.events;
    out.counts.service_checks += c.service_checks;
    out.counts.tags_dropped += c.tags_dropped;
    out.counts.names_mapped += c.names_mapped;
    for (const auto& e : errors) out.errors.emplace_back(e.line_number, e.reason);
  }
  if (cache) cache->take(options.now_s, samples);
  for (auto& s : samples) {
    if (s.type == StatsdType::kCounter) {
      std::string key = s.metric;
      for (const auto& t : s.tags) key += "\x1f" + t.key + "=" + t.value;
      auto& c = out.counters[key];
      c.sum += s.value;
      c.lines += s.count;
      c.magnitude += std::fabs(s.value);
    } else {
      out.others.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace

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
  // With events asked for: one per counted event, each with a title and tags the store takes;
  // what the lines are (samples, errors) does not change.
  {
    std::vector<StatsdSample> s2;
    std::vector<StatsdLineError> e2;
    std::vector<StatsdEvent> events;
    StatsdPacketCounts c2 = parse_statsd_packet(packet, options, s2, e2, nullptr, &events);
    if (events.size() != c2.events || c2.events != c.events || c2.lines_ok != c.lines_ok ||
        c2.lines_rejected != c.lines_rejected || !(s2 == samples))
      std::abort();
    for (const StatsdEvent& ev : events)
      if (ev.title.empty() || !validate_tags(ev.tags) || ev.time_ms < 0) std::abort();
  }

  const Outcome want = twice(packet, options, nullptr);
  StatsdLineCache cache;
  const Outcome got = twice(packet, options, &cache);
  if (got.counts.lines_ok != want.counts.lines_ok ||
      got.counts.lines_rejected != want.counts.lines_rejected ||
      got.counts.events != want.counts.events ||
      got.counts.service_checks != want.counts.service_checks ||
      got.counts.tags_dropped != want.counts.tags_dropped ||
      got.counts.names_mapped != want.counts.names_mapped || got.errors != want.errors ||
      !(got.others == want.others) || got.counters.size() != want.counters.size())
    std::abort();
  for (const auto& [key, w] : want.counters) {
    auto it = got.counters.find(key);
    if (it == got.counters.end() || it->second.lines != w.lines) std::abort();
    // The cache adds a key's increments before the router adds them to the rest: the same sum,
    // up to rounding of the order. Where the increments' magnitudes pass the largest double, the
    // order decides whether a partial sum overflows to infinity: only the line count is compared.
    const double a = it->second.sum, b = w.sum;
    if (a == b || !std::isfinite(w.magnitude)) continue;
    if (!(std::fabs(a - b) <= 1e-9 * std::fmax(1.0, std::fmax(std::fabs(a), std::fabs(b)))))
      std::abort();
  }
  return 0;
}
