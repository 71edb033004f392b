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

}  // namespace tally
