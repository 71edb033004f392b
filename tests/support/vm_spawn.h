// A single-node VictoriaMetrics for the benchmarks (no Qt): spawned on 127.0.0.1:port with its
// data in `dir`, ready once GET /health answers 200 (up to 10 s). stop() ends it (SIGTERM) and
// removes `dir`. start() fails when /usr/bin/victoria-metrics is missing or does not come up.
#pragma once

#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

extern char** environ;

namespace tally::testing {

struct VmProcess {
  static constexpr const char* kBin = "/usr/bin/victoria-metrics";
  pid_t pid = 0;
  int port = 0;
  std::string dir;

  static bool installed() { return access(kBin, X_OK) == 0; }

  bool start(int listen_port, std::string data_dir, const std::string& retention) {
    port = listen_port;
    dir = std::move(data_dir);
    std::string a1 = "-httpListenAddr=127.0.0.1:" + std::to_string(port),
                a2 = "-storageDataPath=" + dir, a3 = "-retentionPeriod=" + retention;
    char* args[] = {const_cast<char*>(kBin),
                    a1.data(),
                    a2.data(),
                    a3.data(),
                    const_cast<char*>("-loggerLevel=ERROR"),
                    nullptr};
    if (posix_spawn(&pid, kBin, nullptr, nullptr, args, environ) != 0) return false;
    httplib::Client c("127.0.0.1", port);
    for (int i = 0; i < 100; ++i) {
      if (auto r = c.Get("/health"); r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void stop() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
      pid = 0;
    }
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  ~VmProcess() { stop(); }
};

}  // namespace tally::testing
