// CSV export of what a panel shows (RFC 4180: comma separated, CRLF-free "\n" line ends, fields
// with a comma, quote or line break quoted with doubled quotes). Numbers are tally::csv_number
// (tally/common/csv.h): the shortest exact form, so a value read back equals the value shown, and
// an empty cell for NaN (no value), as the CLI writes them.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "api.h"
#include "tally/common/csv.h"

namespace tally::dash {

// One text field, quoted when needed; a field starting with = + - @ (a spreadsheet formula) is
// written as text: "'=..." (tally/common/csv.h, docs/SECURITY.md).
inline std::string csvField(std::string_view s) {
  return tally::csv_text(s);
}
std::string formatIsoUtc(int64_t t);  // 2026-11-27T21:00:00Z

// One row per point: timestamp,time,metric,fn,<group-by keys...>,value; `fn` is the function's
// name (fn_name) or "promql" for an expression. Points outside [from, to) are left out, as the
// chart does not show them.
std::string seriesToCsv(const std::string& metric, const std::string& fn,
                        const std::vector<Series>& series, int64_t from, int64_t to);
// lower,upper,count per bin.
std::string histogramToCsv(const HistogramResult& h);
// timestamp,time,count,p50,p90,p99,lower,upper,bin_count: one row per bin of each column in
// [from, to).
std::string heatmapToCsv(const HeatmapResult& h, int64_t from, int64_t to);

// A minimal reader for tests and imports: rows of fields.
std::vector<std::vector<std::string>> parseCsv(std::string_view text);

}  // namespace tally::dash
