// A real server a test starts on 127.0.0.1 and stops with it (VictoriaMetrics, Prometheus):
// start() runs the program and waits until GET ready_path on its port answers 200; stop() asks it
// to end (SIGTERM) and kills it if it does not within 10 s.
#pragma once

#include <httplib.h>

#include <QProcess>
#include <QThread>
#include <chrono>
#include <string>

namespace tally::testing {

class ServerProcess {
 public:
  ~ServerProcess() { stop(); }

  bool start(const QString& program, const QStringList& args, int port,
             const std::string& ready_path, int timeout_ms) {
    proc_.setProcessChannelMode(QProcess::ForwardedChannels);
    proc_.start(program, args);
    if (!proc_.waitForStarted(5000)) return false;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    do {
      httplib::Client c("127.0.0.1", port);
      if (auto r = c.Get(ready_path.c_str()); r && r->status == 200) return true;
      if (proc_.state() == QProcess::NotRunning) return false;
      QThread::msleep(50);
    } while (std::chrono::steady_clock::now() < end);
    return false;
  }
  void stop() {
    if (proc_.state() == QProcess::NotRunning) return;
    proc_.terminate();
    if (!proc_.waitForFinished(10000)) {
      proc_.kill();
      proc_.waitForFinished(5000);
    }
  }

 private:
  QProcess proc_;
};

}  // namespace tally::testing
