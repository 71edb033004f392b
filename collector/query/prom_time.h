// Numbers and times as Prometheus writes and reads them in its HTTP API.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tally::collector::prom {

// Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest fixed notation that reads back exactly;
// "NaN", "+Inf", "-Inf".
std::string prom_float(double v);

// Unix seconds (with a fraction) or RFC 3339, as Prometheus's parseTime.
std::optional<int64_t> parse_time_ms(const std::string& s);

// Seconds (with a fraction) or a duration ("15s", "1m"), as Prometheus's parseDuration.
std::optional<int64_t> parse_step_ms(const std::string& s);

}  // namespace tally::collector::prom
