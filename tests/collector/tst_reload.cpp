// Live reconfiguration against the real collector: each case edits the configuration file of a
// running collector, reloads it (SIGHUP, and POST /api/admin/reload), and watches the new setting
// take effect without a restart:
//   - max_batch_bytes: a batch above the lowered budget is refused, accepted again once raised;
//   - query_max_series: a query over the lowered budget gets 400;
//   - series_max_per_metric: new series past a lowered limit fold into __overflow__ while the old
//     ones keep counting exactly;
//   - retention: a shortened resolution stops answering older buckets at once, the sweep deletes
//     them, the totals inside the window stay exact, and the next start finds nothing to migrate;
//   - remote-write: pointed at a second receiver while the first one is failing, every count
//     arrives exactly once across the two (what was queued for the first goes to the second);
//     turned on and off;
//   - what cannot change live is named with its reason, and the command line's flags still win.
#include <QtTest>

#include <snappy.h>
#include <sys/types.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "batch_builder.h"
#include "collector_process.h"
#include "remote_write.pb.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::testing;

namespace {

int64_t now_s() {
  return SystemClock::instance().now_s();
}

std::string read_text(const QString& path) {
  std::ifstream in(path.toStdString());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A collector started with a configuration file (the flags of CollectorProcess over it), whose
// log goes to a file the test reads.
class Reloadable {
 public:
  Reloadable()
      : conf_(c_.temp_path() + "/collector.toml"), log_(c_.temp_path() + "/collector.log") {}

  // Writes the file: the log file, then `extra` (TOML lines).
  void write(const std::string& extra) {
    std::ofstream(conf_.toStdString(), std::ios::trunc)
        << "log_file = \"" << log_.toStdString() << "\"\n"
        << extra;
  }
  bool start(const std::string& extra, QStringList flags = {}) {
    write(extra);
    return c_.start(QStringList{"--config", conf_} + flags);
  }
  // SIGHUP, then waits for the reload's log line.
  bool sighup() {
    const size_t before = count_of(log(), "event=reloaded");
    ::kill(c_.pid(), SIGHUP);
    return eventually([&] { return count_of(log(), "event=reloaded") > before; }, 10000);
  }
  // POST /api/admin/reload; its HTTP status.
  int admin_reload() {
    httplib::Client h("127.0.0.1", c_.http_port());
    h.set_read_timeout(20, 0);
    auto r = h.Post("/api/admin/reload", "", "text/plain");
    return r ? r->status : 0;
  }
  std::string log() const { return read_text(log_); }
  bool logged(const std::string& what) const { return log().find(what) != std::string::npos; }
  CollectorProcess& c() { return c_; }

 private:
  CollectorProcess c_;
  QString conf_, log_;
};

// A counter batch of `points` points on one series (ref 1), about 11 bytes a point.
wire::Batch counter_batch(uint64_t producer, uint64_t seq, const std::string& metric, int points,
                          int64_t t) {
  BatchBuilder b(producer, seq);
  b.def(1, metric, {});
  for (int i = 0; i < points; ++i) b.count(1, t - i % 5, 1);
  return b.b;
}

// The sum of metric over [from, to) at step, per value of tag k ("" = series without k).
std::map<std::string, double> by_k(const CollectorProcess& c, const std::string& metric,
                                   int64_t step, int64_t from, int64_t to) {
  const json q =
      c.get("/api/query?metric=" + metric + "&fn=sum&group_by=k&step=" + std::to_string(step) +
            "&from=" + std::to_string(from) + "&to=" + std::to_string(to));
  std::map<std::string, double> out;
  if (!q.contains("series")) {
    out["error"] = -1;
    return out;
  }
  for (const auto& s : q["series"]) {
    const std::string key = s["tags"].value("k", "");
    for (const auto& p : s["points"])
      if (!p[1].is_null()) out[key] += p[1].get<double>();
  }
  return out;
}

double sum_at(const CollectorProcess& c, const std::string& metric, int64_t step, int64_t from,
              int64_t to) {
  auto m = by_k(c, metric, step, from, to);
  if (m.count("error")) return -1;
  double t = 0;
  for (const auto& [k, v] : m) t += v;
  return t;
}

// A remote-write receiver on loopback: answers 503 while failing, else keeps every sample per
// series (labels -> (time, value) in arrival order).
class Receiver {
 public:
  Receiver() {
    server_.Post("/w", [this](const httplib::Request& req, httplib::Response& res) {
      ++requests_;
      if (failing_) {
        res.status = 503;
        return;
      }
      std::string raw;
      prometheus::WriteRequest w;
      if (!snappy::Uncompress(req.body.data(), req.body.size(), &raw) || !w.ParseFromString(raw)) {
        res.status = 400;
        return;
      }
      std::lock_guard lock(mu_);
      for (const auto& ts : w.timeseries()) {
        std::string key;
        for (const auto& l : ts.labels()) key += l.name() + "=" + l.value() + ",";
        for (const auto& s : ts.samples()) samples_[key].emplace_back(s.timestamp(), s.value());
      }
      res.status = 204;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/w"; }
  void set_failing(bool f) { failing_ = f; }
  int requests() const { return requests_; }
  // What increase() over everything this receiver holds gives for the series whose labels start
  // with `prefix`: growth between consecutive samples, a drop read as a counter reset.
  double increase(const std::string& prefix) const {
    std::lock_guard lock(mu_);
    double inc = 0;
    for (const auto& [key, points] : samples_) {
      if (key.rfind(prefix, 0) != 0) continue;
      for (size_t i = 1; i < points.size(); ++i)
        inc += points[i].second >= points[i - 1].second ? points[i].second - points[i - 1].second
                                                        : points[i].second;
    }
    return inc;
  }
  // Every series' samples strictly increase in time.
  bool ordered() const {
    std::lock_guard lock(mu_);
    for (const auto& [key, points] : samples_)
      for (size_t i = 1; i < points.size(); ++i)
        if (points[i].first <= points[i - 1].first) return false;
    return true;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> failing_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  std::map<std::string, std::vector<std::pair<int64_t, double>>> samples_;
};

}  // namespace

class TestReload : public QObject {
  Q_OBJECT
 private slots:
  void batchBytesChangeLive();
  void querySeriesLimitChangesLive();
  void loweredSeriesLimitFoldsOnlyNewSeries();
  void shortenedRetentionDropsOldBucketsAtTheSweep();
  void remoteWriteMovesToANewReceiverWithoutLossOrDouble();
  void remoteWriteTurnsOnAndOff();
  void restartOnlySettingsSayWhy();
  void idleExpiryChangesLiveConnectionTableWaits();
};

// max_batch_bytes: lowered by SIGHUP, a 16 KB batch is refused; raised by the admin route, it is
// accepted again; the totals hold exactly the accepted batches.
void TestReload::batchBytesChangeLive() {
  Reloadable r;
  QVERIFY(r.start(""));
  RawProducer p(r.c().ingest());
  const int64_t t = now_s();
  const wire::Batch big = counter_batch(31, 1, "rl.bytes", 1500, t);
  QVERIFY(big.ByteSizeLong() > 9000);
  QCOMPARE(p.send(big)->code(), wire::Ack::OK);

  r.write("max_batch_bytes = 8192\n");
  QVERIFY(r.sighup());
  wire::Batch again = counter_batch(31, 2, "rl.bytes", 1500, t);
  auto ack = p.send(again);
  QVERIFY(ack);
  QCOMPARE(ack->code(), wire::Ack::INVALID);
  QVERIFY2(ack->reason().find("above the limit of 8192") != std::string::npos,
           ack->reason().c_str());
  QVERIFY2(r.logged("event=limit_changed limit=max_batch_bytes from=4194304 to=8192"),
           r.log().c_str());

  r.write("");
  QCOMPARE(r.admin_reload(), 200);
  again.set_seq(3);
  QCOMPARE(p.send(again)->code(), wire::Ack::OK);
  QVERIFY(eventually([&] { return sum_at(r.c(), "rl.bytes", 60, t - 3600, t + 60) == 3000; }));
  // Only limits changed: the flags (data directory, listeners) still win over the file.
  QVERIFY2(!r.logged("event=reload_needs_restart"), r.log().c_str());
  // Above the start value, ZeroMQ's own message size (set when the socket opened) still cuts.
  r.write("max_batch_bytes = 8388608\n");
  QCOMPARE(r.admin_reload(), 200);
  QVERIFY2(r.logged("event=reload_needs_restart setting=max_batch_bytes part=socket"),
           r.log().c_str());
  QCOMPARE(r.c().stop(), 0);
}

// query_max_series: 5 series answer; with the budget at 3 (admin route) the same query is a 400
// naming the limit; back to the default (SIGHUP) it answers again.
void TestReload::querySeriesLimitChangesLive() {
  Reloadable r;
  QVERIFY(r.start(""));
  RawProducer p(r.c().ingest());
  const int64_t t = now_s();
  BatchBuilder b(32, 1);
  for (uint32_t k = 0; k < 5; ++k)
    b.def(k + 1, "rl.query", {{"k", std::to_string(k)}}).count(k + 1, t, k + 1);
  QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
  const std::string q =
      "/api/query?metric=rl.query&fn=sum&group_by=k&step=60&from=" + std::to_string(t - 600) +
      "&to=" + std::to_string(t + 60);
  QVERIFY(eventually([&] { return total(r.c().get(q)) == 15; }));

  r.write("query_max_series = 3\n");
  QCOMPARE(r.admin_reload(), 200);
  auto [status, body] = r.c().get_raw(q);
  QCOMPARE(status, 400);
  QVERIFY2(body.find("query_series") != std::string::npos, body.c_str());
  QVERIFY(r.logged("event=limit_changed limit=query_max_series from=100000 to=3"));

  r.write("");
  QVERIFY(r.sighup());
  QCOMPARE(r.c().get(q)["_status"].get<int>(), 200);
  QCOMPARE(total(r.c().get(q)), 15.0);
  QCOMPARE(r.c().stop(), 0);
}

// series_max_per_metric lowered below what a metric holds: its 5 series keep counting exactly, 3
// new tag combinations fold into its __overflow__ series with their exact total; raised again, a
// new combination is a series of its own.
void TestReload::loweredSeriesLimitFoldsOnlyNewSeries() {
  Reloadable r;
  QVERIFY(r.start(""));
  RawProducer p(r.c().ingest());
  const int64_t t = now_s();
  BatchBuilder b(33, 1);
  for (uint32_t k = 0; k < 5; ++k)
    b.def(k + 1, "rl.card", {{"k", std::to_string(k)}}).count(k + 1, t, 10);
  QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);

  r.write("series_max_per_metric = 3\n");
  QVERIFY(r.sighup());
  BatchBuilder after(33, 2);
  for (uint32_t k = 0; k < 5; ++k) after.count(k + 1, t, 1);  // old series, known refs
  for (uint32_t k = 5; k < 8; ++k)
    after.def(k + 1, "rl.card", {{"k", std::to_string(k)}}).count(k + 1, t, 100 + k);
  QCOMPARE(p.send(after.b)->code(), wire::Ack::OK);
  std::map<std::string, double> want = {{"0", 11}, {"1", 11}, {"2", 11},
                                        {"3", 11}, {"4", 11}, {"", 105 + 106 + 107}};
  QVERIFY(eventually([&] { return by_k(r.c(), "rl.card", 60, t - 600, t + 60) == want; }));
  QVERIFY(r.logged("event=limit_changed limit=series_max_per_metric from=200000 to=3"));

  r.write("");
  QCOMPARE(r.admin_reload(), 200);
  BatchBuilder raised(33, 3);
  raised.def(9, "rl.card", {{"k", "8"}}).count(9, t, 5);
  QCOMPARE(p.send(raised.b)->code(), wire::Ack::OK);
  want["8"] = 5;
  QVERIFY(eventually([&] { return by_k(r.c(), "rl.card", 60, t - 600, t + 60) == want; }));
  QCOMPARE(r.c().stop(), 0);
}

// 1 s buckets kept 3 h, then 10 min: a point 40-100 min old leaves the 1 s answer at once and its
// bucket is deleted by the sweep the reload brings forward; the recent point stays exact, and the
// 10 s resolution (unchanged) still holds both. The next start has nothing to migrate. Adding a
// resolution is named as needing a restart.
void TestReload::shortenedRetentionDropsOldBucketsAtTheSweep() {
  Reloadable r;
  QVERIFY(r.start("retention = \"1s:3h,10s:1d\"\n", {"--lateness", "1s", "--no-self-metrics"}));
  RawProducer p(r.c().ingest());
  const int64_t t = now_s();
  // The old point sits in the middle of the last whole hour before the new cutoff (t - 10 min):
  // a 1 s chunk holds an hour and the sweep deletes whole chunks only, so any later point could
  // share a chunk with kept buckets, depending on the minute the test runs.
  const int64_t old = (t - 600) / 3600 * 3600 - 1800;
  BatchBuilder b(34, 1);
  b.def(1, "rl.keep", {}).count(1, old, 7).count(1, t - 5, 3);
  QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
  QVERIFY(eventually([&] { return sum_at(r.c(), "rl.keep", 1, t - 7200, t + 5) == 10; }));
  // Both points are stored at both resolutions (not only open) before the change.
  QVERIFY(eventually([&] { return metric(r.c(), "tally_buckets_written_total") >= 4; }));
  const double deleted_before = metric(r.c(), "tally_retention_deleted_total");

  r.write("retention = \"1s:10m,10s:1d\"\n");
  QVERIFY(r.sighup());
  QCOMPARE(sum_at(r.c(), "rl.keep", 1, t - 7200, t + 5), 3.0);
  QCOMPARE(sum_at(r.c(), "rl.keep", 10, t - 7200, t + 10), 10.0);
  QVERIFY2(r.logged("event=retention_changed resolution=1s from=3h to=10m"), r.log().c_str());
  QVERIFY(eventually(
      [&] { return metric(r.c(), "tally_retention_deleted_total") >= deleted_before + 1; }));
  QCOMPARE(sum_at(r.c(), "rl.keep", 1, t - 7200, t + 5), 3.0);

  // A new resolution needs the start-up path.
  r.write("retention = \"1s:10m,10s:1d,1m:7d\"\n");
  QCOMPARE(r.admin_reload(), 200);
  QVERIFY2(r.logged("event=reload_needs_restart setting=retention from=1s:10m,10s:1d "
                    "to=1s:10m,10s:1d,1m:7d reason="),
           r.log().c_str());
  r.write("retention = \"1s:10m,10s:1d\"\n");
  QCOMPARE(r.c().stop(), 0);
  QVERIFY(r.c().start({"--config", r.c().temp_path() + "/collector.toml", "--lateness", "1s",
                       "--no-self-metrics"}));
  QVERIFY2(!r.logged("event=retention_change "), r.log().c_str());
  QCOMPARE(sum_at(r.c(), "rl.keep", 1, t - 7200, t + 5), 3.0);
  QCOMPARE(sum_at(r.c(), "rl.keep", 10, t - 7200, t + 10), 10.0);
  QCOMPARE(r.c().stop(), 0);
}

// Remote-write to receiver A; A starts failing, so samples wait in the forwarder; the file points
// it at B: what waited goes to B, and what comes after. increase() over A plus increase() over B
// is exactly what was sent, and B's samples are in order.
void TestReload::remoteWriteMovesToANewReceiverWithoutLossOrDouble() {
  Receiver a, b;
  Reloadable r;
  const std::string common =
      "remote_write_flush_interval = \"200ms\"\nremote_write_min_backoff = \"50ms\"\n"
      "remote_write_max_backoff = \"200ms\"\nremote_write_labels = { instance = \"rl\" }\n";
  QVERIFY(r.start(common + "remote_write_url = \"" + a.url() + "\"\n",
                  {"--lateness", "1s", "--no-self-metrics"}));
  RawProducer p(r.c().ingest());
  double sent = 0;
  uint64_t seq = 0;
  auto send_second = [&](double v) {
    BatchBuilder bb(35, ++seq);
    if (seq == 1) bb.def(1, "rl.fwd", {});
    bb.count(1, now_s(), v);
    QCOMPARE(p.send(bb.b)->code(), wire::Ack::OK);
    sent += v;
    QThread::msleep(300);  // paces the sends: they spread over several 1 s buckets
  };
  const std::string series = "__name__=rl_fwd,instance=rl,";
  for (int i = 1; i <= 4; ++i) send_second(i);
  QVERIFY(eventually([&] { return a.increase(series) > 0; }));
  a.set_failing(true);
  for (int i = 5; i <= 10; ++i) send_second(i);
  QVERIFY(eventually([&] { return metric(r.c(), "tally_remote_write_retries_total") >= 2; }));

  r.write(common + "remote_write_url = \"" + b.url() + "\"\n");
  QVERIFY(r.sighup());
  for (int i = 11; i <= 14; ++i) send_second(i);
  QVERIFY(eventually([&] { return a.increase(series) + b.increase(series) == sent; }, 20000));
  QVERIFY2(r.logged("event=remote_write_reconfigured from_url=" + a.url() + " to_url=" + b.url() +
                    " changed=url"),
           r.log().c_str());
  QVERIFY(b.increase(series) > 0);
  QVERIFY(b.ordered());
  const int a_requests = a.requests();
  QThread::msleep(1500);  // a retry to A would have come by now (backoff at most 200 ms)
  QCOMPARE(a.requests(), a_requests);
  QCOMPARE(a.increase(series) + b.increase(series), sent);
  QCOMPARE(metric(r.c(), "tally_remote_write_dropped_samples_total"), 0.0);
  QCOMPARE(r.c().stop(), 0);
}

// Off at start; on by the admin route: new counts reach the receiver exactly; off by SIGHUP:
// nothing more is sent.
void TestReload::remoteWriteTurnsOnAndOff() {
  Receiver a;
  Reloadable r;
  const std::string common =
      "remote_write_flush_interval = \"200ms\"\nremote_write_labels = { instance = \"rl\" }\n";
  QVERIFY(r.start(common, {"--lateness", "1s", "--no-self-metrics"}));
  RawProducer p(r.c().ingest());
  BatchBuilder first(36, 1);
  first.def(1, "rl.onoff", {}).count(1, now_s(), 5);
  QCOMPARE(p.send(first.b)->code(), wire::Ack::OK);
  // Its 1 s bucket is final (stored, and handed to no forwarder) before remote-write is on.
  QVERIFY(eventually([&] { return metric(r.c(), "tally_buckets_written_total") >= 1; }));

  r.write(common + "remote_write_url = \"" + a.url() + "\"\n");
  QCOMPARE(r.admin_reload(), 200);
  double sent = 0;
  for (uint64_t seq = 2; seq <= 4; ++seq) {
    BatchBuilder bb(36, seq);
    bb.count(1, now_s(), 10 * seq);
    QCOMPARE(p.send(bb.b)->code(), wire::Ack::OK);
    sent += 10 * seq;
    QThread::msleep(300);  // paces the sends: they spread over several 1 s buckets
  }
  const std::string series = "__name__=rl_onoff,instance=rl,";
  QVERIFY(eventually([&] { return a.increase(series) == sent; }));
  QVERIFY(
      r.logged("event=remote_write_reconfigured from_url=off to_url=" + a.url() + " changed=on"));

  r.write(common);
  QVERIFY(r.sighup());
  const int requests = a.requests();
  BatchBuilder late(36, 5);
  late.count(1, now_s(), 1000);
  QCOMPARE(p.send(late.b)->code(), wire::Ack::OK);
  QThread::msleep(3000);  // final after 1 s lateness; a forwarder would have sent it
  QCOMPARE(a.requests(), requests);
  QVERIFY(
      r.logged("event=remote_write_reconfigured from_url=" + a.url() + " to_url=off changed=off"));
  QCOMPARE(a.increase(series), sent);
  QCOMPARE(r.c().stop(), 0);
}

// Settings only a start applies are named with a reason; a flag given at start keeps winning over
// the file (here --lateness, and the listeners CollectorProcess passes).
void TestReload::restartOnlySettingsSayWhy() {
  Reloadable r;
  QVERIFY(r.start("fsync = \"always\"\nlateness = \"2s\"\n", {"--lateness", "1s"}));
  r.write("fsync = \"100ms\"\nlateness = \"5s\"\nstatsd_dialect = \"etsy\"\n");
  QVERIFY(r.sighup());
  const std::string log = r.log();
  QCOMPARE(count_of(log, "event=reload_needs_restart"), size_t(2));  // not lateness, not listeners
  QVERIFY2(log.find("event=reload_needs_restart setting=fsync reason=\"the write-ahead log is "
                    "opened at start\"") != std::string::npos,
           log.c_str());
  QVERIFY2(log.find("event=reload_needs_restart setting=statsd_dialect reason=\"a StatsD "
                    "socket's dialect is set when it opens\"") != std::string::npos,
           log.c_str());
  QCOMPARE(r.c().stop(), 0);
}

// series_idle_expiry off at start: 3 idle series stay in memory; a reload to 2s makes the ingest
// thread's next sweeps expire them (their totals stay queryable). http_max_connections in the same
// file is named as waiting for a restart, and not reported as a changed limit.
void TestReload::idleExpiryChangesLiveConnectionTableWaits() {
  Reloadable r;
  // Checkpoints every second: a shard lets an idle series go once its open buckets are written.
  QVERIFY(r.start("series_idle_expiry = \"off\"\n", {"--checkpoint", "1s"}));
  RawProducer p(r.c().ingest());
  const int64_t t = now_s();
  BatchBuilder b(35, 1);
  for (uint32_t k = 0; k < 3; ++k)
    b.def(k + 1, "rl.idle", {{"k", std::to_string(k)}}).count(k + 1, t - 5, k + 1);
  QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
  QVERIFY(eventually([&] { return sum_at(r.c(), "rl.idle", 60, t - 600, t + 60) == 6; }));
  // Expiry off: an expiry of the 2 s this test later sets would have happened by now.
  QTest::qWait(3000);
  QCOMPARE(metric(r.c(), "tally_series_expired_total"), 0.0);

  r.write("series_idle_expiry = \"2s\"\nhttp_max_connections = 64\n");
  QVERIFY(r.sighup());
  QVERIFY2(r.logged("event=limit_changed limit=series_idle_expiry from=off to=2s"),
           r.log().c_str());
  QVERIFY2(r.logged("event=reload_needs_restart setting=http_max_connections reason=\"the HTTP "
                    "server sizes its connection table at start\""),
           r.log().c_str());
  QVERIFY2(!r.logged("limit=http_max_connections"), r.log().c_str());
  QVERIFY(eventually([&] { return metric(r.c(), "tally_series_expired_total") == 3; }, 20000));
  QCOMPARE(sum_at(r.c(), "rl.idle", 60, t - 600, t + 60), 6.0);
  QCOMPARE(r.c().stop(), 0);
}

QTEST_GUILESS_MAIN(TestReload)
#include "tst_reload.moc"
