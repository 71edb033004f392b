// The dashboard's command-line exports, without a window:
//   tally-dashboard --collector http://127.0.0.1:7071 --dashboard FILE [--range 1h]
//                   [--export-png out.png [--size 1600x900]] [--export-csv out.csv] [--panel N]
//                   [--allow-host HOST ...]
// PNG (or .svg / .pdf by suffix) is the whole dashboard, or panel N (1-based) alone. CSV is panel
// N's shown data, or with several panels one file per panel: out-1.csv, out-2.csv, ...
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>
#include <QUrl>

#include "core/dashboard.h"
#include "tally/common/endpoints.h"

struct HeadlessOptions {
  QUrl collector = QUrl(tally::kDefaultCollectorUrl);
  QString dashboard;
  QString range;  // "1h", or "FROM:TO" in unix seconds; empty = the dashboard's own
  QString png;
  QString csv;
  QSize size = QSize(1600, 900);
  int panel = 0;  // 1-based; 0 = all
  int timeoutS = 30;
  // --allow-host: hosts ("host" or "host:port") a data source with headers may send to although
  // this user never approved them in the window (host_approval.h). Not remembered.
  QStringList allowHosts;
  // --var name=v1,v2: a dashboard variable's values for this export (core/variables.h).
  QStringList vars;
};

// Exit codes, also printed by --help.
enum HeadlessExit {
  kExitOk = 0,
  kExitUsage = 64,        // bad command line (EX_USAGE)
  kExitDashboard = 65,    // dashboard file unreadable, corrupt or from a newer Tally (EX_DATAERR)
  kExitUnreachable = 69,  // collector unreachable or unhealthy (EX_UNAVAILABLE)
  kExitQueryFailed = 70,  // a panel's query failed; files are still written, showing the error
  kExitCantWrite = 73,    // an output file could not be written (EX_CANTCREAT)
  kExitHostNotApproved = 77,  // a source would send headers to a host not approved (EX_NOPERM)
};

int runHeadless(const HeadlessOptions& options);

// "1h" (a duration ending now) or "FROM:TO" (unix seconds); false if neither.
bool parseRangeArg(const QString& text, tally::dash::TimeRangeSpec* out);
