// CSV cells, once for the dashboard's export and the CLI's --format csv (RFC 4180: a cell with a
// comma, quote or line break is quoted, quotes doubled).
//
// A text cell that starts with = + - @ (or tab, CR) is a formula to a spreadsheet: a tag value
// "=HYPERLINK(...)" must not run when an export is opened (CSV injection, docs/SECURITY.md), so
// it is written as text with a leading ': "'=HYPERLINK(...)". Numbers are not text: -3 stays -3.
//
//   csv_text("a,b")          // "\"a,b\""
//   csv_text("=1+2")         // "\"'=1+2\""
//   csv_cell("-3")           // "-3"      (a finite number as it is)
//   csv_cell("-x")           // "\"'-x\""
//   csv_number(0.1)          // "0.1"
//   csv_number(NAN)          // ""        (missing)
//
// Numbers are written once, here, for the dashboard's export and every output of the CLI:
// format_number gives the shortest text that reads back as the same double, in plain digits
// while the exponent is in [-4, 16) and as 1e+20 beyond. NaN (no value: an empty bucket, a
// quantile of nothing) is an empty cell, never "nan": an empty cell is what spreadsheets, pandas
// (read_csv) and R read as missing, while "nan" is a text cell to a spreadsheet and turns the
// whole column into text. Infinities are "inf" and "-inf".
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace tally {

// A text cell: quoted when needed, a formula made text.
std::string csv_text(std::string_view s);
// A cell that may hold a number written as text (the CLI's tables): a finite number as it is,
// anything else as csv_text.
std::string csv_cell(std::string_view s);

// A number as text: "" for NaN, "inf" / "-inf", else the shortest round-trip form
// ("0.1", "3", "123456789", "1e+16", "1e-05").
std::string format_number(double v);
// A number cell: format_number made a CSV cell (csv_cell: "-inf" is text, not a formula).
std::string csv_number(double v);

}  // namespace tally
