// Disk full: the real collector runs under a file-size limit (RLIMIT_FSIZE via prlimit, which
// makes writes past the limit fail with EFBIG as on a full disk). It must stop acknowledging,
// say so in its log, /healthz and /metrics, and resume by itself when the limit is lifted,
// with nothing the SDK sent lost or doubled.
#include <QFile>
#include <QtTest>

#include <thread>

#include "batch_builder.h"
#include "collector_process.h"
#include "tally/client.h"

using namespace tally;
using namespace tally::testing;

class TestDiskFull : public QObject {
  Q_OBJECT
 private slots:
  void stopsAcknowledgingAndResumesWhenSpaceIsBack();
  void seriesCreatedByAFailedAppendKeepTheirPoints();
};

void TestDiskFull::stopsAcknowledgingAndResumesWhenSpaceIsBack() {
  CollectorProcess c;
  const QString log = c.temp_path() + "/collector.log";
  QVERIFY(c.start({"--log-file", log, "--no-self-metrics"}));
  QVERIFY(c.pid() > 0);
  // Once it runs, cap the size of any file it writes (the soft limit; the hard one stays open so
  // it can be lifted again without privileges).
  QCOMPARE(
      QProcess::execute("prlimit", {"--pid", QString::number(c.pid()), "--fsize=700000:unlimited"}),
      0);
  const int64_t start = SystemClock::instance().now_s();

  ClientOptions o;
  o.endpoint = c.ingest();
  o.flush_interval = std::chrono::milliseconds(100);
  o.ack_timeout = std::chrono::milliseconds(300);
  Client client(o);
  int64_t sent = 0;
  std::vector<Counter> handles;
  for (int i = 0; i < 2000; ++i)
    handles.push_back(client.counter(
        "disk.fill", {{"series", std::to_string(i)}, {"pad", std::string(150, 'p')}}));
  // Emit until the collector reports it cannot write.
  bool unhealthy = false;
  for (int round = 0; round < 600 && !unhealthy; ++round) {
    for (auto& h : handles) h.add();
    sent += static_cast<int64_t>(handles.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (round % 4 == 0) unhealthy = c.get_raw("/healthz").first == 503;
  }
  QVERIFY2(unhealthy, "the collector never reported the file-size limit");
  auto [st, prom] = c.get_raw("/metrics");
  QVERIFY(prom.find("\ntally_storage_healthy 0\n") != std::string::npos);
  QVERIFY(c.get("/healthz")["reason"].get<std::string>().find("not accepting writes") !=
          std::string::npos);
  // Keep emitting a little while it refuses: those batches wait in the SDK.
  for (int round = 0; round < 50; ++round) {
    for (auto& h : handles) h.add();
    sent += static_cast<int64_t>(handles.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  QVERIFY(client.stats().unavailable_acks > 0);

  // Space is back.
  QCOMPARE(QProcess::execute("prlimit",
                             {"--pid", QString::number(c.pid()), "--fsize=unlimited:unlimited"}),
           0);
  QVERIFY(eventually([&] { return c.get_raw("/healthz").first == 200; }, 30000));
  QVERIFY(client.flush(std::chrono::seconds(30)));
  QCOMPARE(client.stats().batches_dropped, uint64_t(0));
  const std::string path =
      "/api/query?metric=disk.fill&step=60&from=" + std::to_string(start - 60) +
      "&to=" + std::to_string(SystemClock::instance().now_s() + 60);
  QVERIFY(eventually([&] { return static_cast<int64_t>(total(c.get(path))) == sent; }));
  QFile f(log);
  QVERIFY(f.open(QIODevice::ReadOnly));
  const QByteArray text = f.readAll();
  QVERIFY(text.contains("event=log_unwritable") || text.contains("event=flush_failed"));
  QVERIFY(text.contains("event=log_recovered") || text.contains("event=storage_recovered"));
}

void TestDiskFull::seriesCreatedByAFailedAppendKeepTheirPoints() {
  // A batch defines a new series, decoding puts it in the catalog, then recording it fails (the
  // producer refs or the log append hit the file-size limit): UNAVAILABLE. The resend must not lose
  // its point because the series now "exists" without its shard knowing it.
  CollectorProcess c;
  QVERIFY(c.start({"--no-self-metrics"}));
  QCOMPARE(QProcess::execute("prlimit", {"--pid", QString::number(c.pid()), "--fsize=1:unlimited"}),
           0);
  const int64_t t = SystemClock::instance().now_s();
  BatchBuilder b(4242, 1);
  b.def(1, "orphan.points", {{"k", "v"}}).count(1, t, 5);
  RawProducer p(c.ingest());
  auto first = p.send(b.b);
  QVERIFY(first);
  QCOMPARE(first->code(), wire::Ack::UNAVAILABLE);
  QCOMPARE(QProcess::execute("prlimit",
                             {"--pid", QString::number(c.pid()), "--fsize=unlimited:unlimited"}),
           0);
  // The SDK resends the same batch until it is acknowledged.
  QVERIFY(eventually(
      [&] {
        auto a = p.send(b.b);
        return a && a->code() == wire::Ack::OK;
      },
      30000));
  const std::string path =
      "/api/query?metric=orphan.points&step=60&from=" + std::to_string(t - 60) +
      "&to=" + std::to_string(t + 60);
  QVERIFY2(eventually([&] { return total(c.get(path)) == 5; }, 5000), c.get(path).dump().c_str());
  QCOMPARE(total(c.get(path)), 5.0);
}

QTEST_GUILESS_MAIN(TestDiskFull)
#include "tst_disk_full.moc"
