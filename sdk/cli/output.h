// Output of the `tally` tool: the collector's JSON answers and live updates turned into aligned
// tables, CSV (RFC 4180) or JSON lines. Pure functions, no I/O but the stream they are given;
// the unit tests call them directly. Thread-safety: pure.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tally/common/csv.h"  // format_number, csv_cell

namespace tally::wire {
class LiveUpdate;
}

namespace tally::cli {

enum class Format { kTable, kJson, kCsv };

struct TextTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> notes;  // printed under a table (not in CSV)
};

// Columns separated by two spaces, padded to the widest cell; nothing for an empty header.
void write_table(const TextTable& t, std::ostream& out);
// Header line, then one line per row; fields quoted when they hold , " CR or LF.
void write_csv(const TextTable& t, std::ostream& out);
// One CSV cell (tally/common/csv.h csv_cell): numbers as they are, text quoted when needed, a
// text cell starting with = + - @ made text.
std::string csv_field(std::string_view s);

// Full numbers are tally::format_number (tally/common/csv.h): shortest round-trip text, "" for
// NaN. For people: whole numbers in full, others to 6 significant digits, "" for NaN.
std::string format_number_short(double v);
// "2024-05-01T12:00:00Z".
std::string format_time_utc(int64_t unix_s);
// "2024-05-01T12:00:00Z" or "2024-05-01T12:00:00" (UTC) or "2024-05-01" -> unix seconds.
std::optional<int64_t> parse_time_utc(std::string_view text);
// A tags object {"k":"v","k2":"v2"} -> "k=v,k2=v2" (keys sorted as JSON objects keep them).
std::string tags_label(const nlohmann::json& tags);

// GET /api/metrics -> NAME KIND SERIES.
TextTable metrics_table(const nlohmann::json& body);
// GET /api/cardinality -> METRIC KIND SERIES OVERFLOW; KEY VALUES SERIES; MINUTE CREATED (with
// iso_time the minute is format_time_utc, else unix seconds).
TextTable cardinality_metrics_table(const nlohmann::json& body);
TextTable cardinality_tags_table(const nlohmann::json& body);
TextTable cardinality_minutes_table(const nlohmann::json& body, bool iso_time);
// GET /api/annotations -> ID TIME END TITLE TAGS SOURCE TEXT. With iso_time the times are
// format_time_utc (to the second), else unix seconds as the collector sent them (to the ms); a
// newline in a text is a space in the table, kept in CSV.
TextTable annotations_table(const nlohmann::json& body, bool iso_time);
// GET /api/tags -> KEY VALUE, one row per pair.
TextTable tags_table(const nlohmann::json& body);
// GET /api/query, one row per (series, point): time, the group-by keys, value. For CSV, times are
// unix seconds; with iso_time they are format_time_utc.
TextTable query_long_table(const nlohmann::json& body, bool iso_time);
// GET /api/query, one row per time, one column per series (labelled by its tags, or by the
// function when the query is not grouped); open buckets are marked with '*'.
TextTable query_wide_table(const nlohmann::json& body);

// One live update as a JSON object: metric, tags, kind, resolution, time, state, value, sum,
// count, min, max and, for distributions, p50 / p90 / p99 from the sketch.
nlohmann::json live_update_json(const wire::LiveUpdate& u);
// The CSV / table columns of a live update, and its row.
std::vector<std::string> live_update_header();
std::vector<std::string> live_update_row(const wire::LiveUpdate& u, bool iso_time);
// One readable line for the table format:
//   2024-05-01T12:00:00Z  final       api.errors{region=eu}  counter  value=3
std::string live_update_line(const wire::LiveUpdate& u);

}  // namespace tally::cli
