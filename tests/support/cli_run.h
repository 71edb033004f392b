// Runs the real `tally` binary (TALLY_CLI_BIN) and keeps what it said: exit code (-1 when it
// crashed or timed out), stdout, stderr.
#pragma once

#include <QProcess>
#include <QString>
#include <QStringList>

namespace tally::testing {

struct CliRun {
  int code = -1;
  QString out;
  QString err;
};

inline CliRun run_tally_cli(const QStringList& args, int timeout_ms = 30000) {
  QProcess p;
  p.start(TALLY_CLI_BIN, args);
  CliRun r;
  if (!p.waitForFinished(timeout_ms)) {
    p.kill();
    p.waitForFinished();
    r.err = "timed out";
    return r;
  }
  r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
  r.out = QString::fromUtf8(p.readAllStandardOutput());
  r.err = QString::fromUtf8(p.readAllStandardError());
  return r;
}

}  // namespace tally::testing
