// eventually(fn): polls fn until it returns true or the deadline passes; the one way a test waits
// for something another thread or process does (a collector's answer, a shard's progress), instead
// of sleeping for a time that is too long on a quiet machine and too short on a loaded one.
// Qt tests that wait for signals or widget state use QTRY_* instead (they run the event loop).
//
//   QVERIFY(eventually([&] { return c.query_total("x") == 3; }));          // 15 s deadline
//   QVERIFY(eventually([&] { return shard.applied_lsn() >= lsn; }, 5000));
#pragma once

#include <QThread>
#include <chrono>

namespace tally::testing {

template <typename Fn>
bool eventually(Fn&& fn, int timeout_ms = 15000, int poll_ms = 50) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (fn()) return true;
    QThread::msleep(static_cast<unsigned long>(poll_ms));
  }
  return fn();
}

}  // namespace tally::testing
