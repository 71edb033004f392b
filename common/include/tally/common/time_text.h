// Dates and times as text, once for the whole project: RFC 3339 (the Prometheus API's times, the
// CLI's --from/--to) and the civil-date arithmetic behind it.
//
//   parse_rfc3339_ms("2024-05-01T12:00:00.250+02:00")   // 1714557600250
//   days_from_civil(1970, 1, 2)                          // 1
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tally {

// Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
void civil_from_days(int64_t days, int64_t* y, unsigned* m, unsigned* d);

// "2024-05-01T12:00:00Z", "2024-05-01t12:00:00.250+02:00" -> unix milliseconds; nullopt for
// anything else (a zone, Z or +hh:mm, is required).
std::optional<int64_t> parse_rfc3339_ms(std::string_view s);

}  // namespace tally
