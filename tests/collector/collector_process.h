// CollectorProcess: runs the real tally-collector binary as a child process on free loopback
// ports with a temporary data directory, for integration tests. It waits for the ready file
// (written once every socket listens), offers a small HTTP/JSON GET helper and a raw DEALER
// socket for hand-made batches. Header-only; used by several test executables.
#pragma once

#include <httplib.h>

#include <QProcess>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "eventually.h"  // tests/support
#include "tally.pb.h"

namespace tally::testing {

using json = nlohmann::json;

class CollectorProcess {
 public:
  explicit CollectorProcess(QString data_dir = {}) {
    data_dir_ = data_dir.isEmpty() ? tmp_.path() + "/data" : data_dir;
  }
  ~CollectorProcess() { stop(); }

  // Starts the collector with extra arguments; returns false (and logs) if it does not get ready.
  bool start(QStringList extra = {}) {
    ready_file_ = tmp_.path() + "/ready-" + QString::number(++starts_) + ".json";
    QStringList args = {"--data-dir",   data_dir_,
                        "--http",       "127.0.0.1:0",
                        "--ingest",     "tcp://127.0.0.1:*",
                        "--live",       "tcp://127.0.0.1:*",
                        "--statsd",     "off",
                        "--ready-file", ready_file_,
                        "--shards",     "2"};
    args += extra;
    if (stderr_file_.isEmpty())
      proc_.setProcessChannelMode(QProcess::ForwardedErrorChannel);
    else
      proc_.setStandardErrorFile(stderr_file_, QIODevice::Append);
    // TALLY_TEST_COLLECTOR_BIN runs another build (e.g. an older one, to show a test failing).
    const QString bin = qEnvironmentVariableIsEmpty("TALLY_TEST_COLLECTOR_BIN")
                            ? QString(TALLY_COLLECTOR_BIN)
                            : qEnvironmentVariable("TALLY_TEST_COLLECTOR_BIN");
    if (wrapper_.isEmpty()) {
      proc_.start(bin, args);
    } else {
      // e.g. {"prlimit", "--fsize=400000", "--"}: the wrapper execs the collector (same pid).
      proc_.start(wrapper_.front(), wrapper_.mid(1) + QStringList{bin} + args);
    }
    if (!proc_.waitForStarted(5000)) return false;
    // Ready after its log is replayed: 50 MB take 20 s under ThreadSanitizer (tst_hostile).
    for (int i = 0; i < 1200; ++i) {  // 60 s; a collector that exits ends the wait at once
      std::ifstream in(ready_file_.toStdString());
      if (in) {
        json j = json::parse(in, nullptr, false);
        if (!j.is_discarded()) {
          ingest_ = j["ingest"].get<std::string>();
          http_port_ = j["http_port"].get<int>();
          live_ = j["live"].get<std::string>();
          statsd_port_ = j.value("statsd_port", 0);
          pid_ = j.value("pid", 0);
          return true;
        }
      }
      if (proc_.state() == QProcess::NotRunning) return false;
      QThread::msleep(50);
    }
    return false;
  }

  // SIGTERM and wait: the collector writes its open buckets before exiting.
  int stop() {
    if (proc_.state() == QProcess::NotRunning) return proc_.exitCode();
    proc_.terminate();
    if (!proc_.waitForFinished(20000)) {
      proc_.kill();
      proc_.waitForFinished(5000);
      return -1;
    }
    return proc_.exitCode();
  }
  void kill() {
    proc_.kill();
    proc_.waitForFinished(5000);
  }

  const std::string& ingest() const { return ingest_; }
  const std::string& live() const { return live_; }
  int http_port() const { return http_port_; }
  int statsd_port() const { return statsd_port_; }
  int pid() const { return pid_; }
  // A program (and its arguments) that runs the collector, e.g. prlimit with a file-size limit.
  void set_wrapper(QStringList wrapper) { wrapper_ = std::move(wrapper); }
  QString data_dir() const { return data_dir_; }
  // The collector's stderr goes to this file (appended) instead of the test's own stderr.
  void set_stderr_file(const QString& path) { stderr_file_ = path; }
  QString temp_path() const { return tmp_.path(); }

  // GET path; returns (status, body). status 0 when the request failed.
  std::pair<int, std::string> get_raw(const std::string& path) const {
    httplib::Client c("127.0.0.1", http_port_);
    c.set_read_timeout(10, 0);
    auto r = c.Get(path.c_str());
    if (!r) return {0, {}};
    return {r->status, r->body};
  }
  json get(const std::string& path) const {
    auto [status, body] = get_raw(path);
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) return json{{"error", "not json"}, {"status", status}};
    j["_status"] = status;
    return j;
  }

 private:
  QTemporaryDir tmp_;
  QString stderr_file_;
  QString data_dir_;
  QString ready_file_;
  int starts_ = 0;
  QProcess proc_;
  std::string ingest_, live_;
  int http_port_ = 0;
  int statsd_port_ = 0;
  int pid_ = 0;
  QStringList wrapper_;
};

// A DEALER socket that sends raw frames and waits for the Ack.
class RawProducer {
 public:
  explicit RawProducer(const std::string& endpoint) : sock_(ctx_, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.connect(endpoint);
  }
  std::optional<wire::Ack> send_frame(const std::string& bytes, int timeout_ms = 10000) {
    sock_.send(zmq::buffer(bytes), zmq::send_flags::none);
    zmq::pollitem_t items[] = {{static_cast<void*>(sock_), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(timeout_ms));
    if (!(items[0].revents & ZMQ_POLLIN)) return std::nullopt;
    zmq::message_t m;
    (void)sock_.recv(m);
    wire::Ack ack;
    if (!ack.ParseFromArray(m.data(), static_cast<int>(m.size()))) return std::nullopt;
    return ack;
  }
  std::optional<wire::Ack> send(const wire::Batch& b) { return send_frame(b.SerializeAsString()); }

 private:
  zmq::context_t ctx_;
  zmq::socket_t sock_;
};

// Sum of every point of every series in a query answer.
inline double total(const json& q) {
  double t = 0;
  if (!q.contains("series")) return -1;
  for (const auto& s : q["series"])
    for (const auto& p : s["points"]) t += p[1].get<double>();
  return t;
}

// The value of one sample in a /metrics text, by its name with labels exactly (e.g.
// `tally_series_overflow_total{metric="a"}`); `missing` when it is absent.
inline double metric_value(const std::string& text, const std::string& sample, double missing = 0) {
  size_t at = 0;
  while ((at = text.find(sample + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + sample.size() + 1));
    at += sample.size();
  }
  return missing;
}

// The same sample of a running collector's /metrics; -1 when it (or /metrics) is missing.
inline double metric(const CollectorProcess& c, const std::string& sample) {
  auto [status, body] = c.get_raw("/metrics");
  return status == 200 ? metric_value(body, sample, -1) : -1;
}

// A process's resident set size in bytes (VmRSS), 0 when it cannot be read.
inline int64_t rss_bytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

}  // namespace tally::testing
