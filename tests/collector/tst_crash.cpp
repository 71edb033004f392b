// Crash test: SDK threads emit known totals while the real collector is killed with SIGKILL at
// random moments and restarted on the same ports; the SDK resends what was not acknowledged.
// Afterwards the API must return exactly the totals sent, per series and per resolution.
#include <QTcpServer>
#include <QtTest>

#include <atomic>
#include <random>
#include <thread>

#include "collector_process.h"
#include "sdk_load.h"  // tests/support
#include "tally/client.h"

using namespace tally;
using namespace tally::testing;

namespace {

int free_port() {
  QTcpServer s;
  s.listen(QHostAddress::LocalHost, 0);
  return s.serverPort();
}

constexpr int kSeries = 20;
constexpr int kThreads = 4;

}  // namespace

class TestCrash : public QObject {
  Q_OBJECT
 private slots:
  void killedCollectorLosesAndDoublesNothing();
};

void TestCrash::killedCollectorLosesAndDoublesNothing() {
  const int ingest_port = free_port(), http_port = free_port();
  const QStringList args = {"--ingest",     QString("tcp://127.0.0.1:%1").arg(ingest_port),
                            "--http",       QString("127.0.0.1:%1").arg(http_port),
                            "--live",       "off",
                            "--checkpoint", "2s",
                            "--lateness",   "1s"};
  CollectorProcess c;
  QVERIFY(c.start(args));
  const int64_t start = SystemClock::instance().now_s();

  ClientOptions o;
  o.endpoint = "tcp://127.0.0.1:" + std::to_string(ingest_port);
  o.flush_interval = std::chrono::milliseconds(200);
  o.ack_timeout = std::chrono::milliseconds(500);
  o.close_timeout = std::chrono::milliseconds(30000);
  auto client = std::make_unique<Client>(o);
  SdkLoad load(*client, {.prefix = "crash", .threads = kThreads, .series = kSeries, .seed = 1});

  // Kill and restart the collector at random moments while the load runs.
  std::mt19937 rng(42);
  int kills = 0;
  for (; kills < 6; ++kills) {
    // Half the kills land just after a second boundary, when the SDK's batch is in flight.
    std::this_thread::sleep_for(std::chrono::milliseconds(700 + rng() % 1300));
    if (kills % 2 == 0) {
      const int64_t ms = SystemClock::instance().now_ms();
      std::this_thread::sleep_for(
          std::chrono::milliseconds(1000 - ms % 1000 + static_cast<int64_t>(rng() % 20)));
    }
    c.kill();
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 300));
    bool started = false;
    for (int attempt = 0; attempt < 20 && !started; ++attempt) {
      started = c.start(args);
      if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    QVERIFY2(started, "the collector did not come back after SIGKILL");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // a last second of load
  load.stop();
  QVERIFY(client->flush(std::chrono::seconds(60)));
  const auto stats = client->stats();
  QCOMPARE(stats.batches_dropped, uint64_t(0));
  QCOMPARE(stats.batches_rejected, uint64_t(0));
  qInfo("sdk: %llu batches sent, %llu resent after a kill",
        static_cast<unsigned long long>(stats.batches_sent),
        static_cast<unsigned long long>(stats.batches_resent));
  client.reset();
  QCOMPARE(kills, 6);

  const int64_t end = SystemClock::instance().now_s() + 2;
  const int64_t expected_total = load.sent_total();
  for (const char* step : {"1", "10", "60"}) {
    const std::string path =
        "/api/query?metric=crash.hits&group_by=series&step=" + std::string(step) +
        "&from=" + std::to_string(start - 120) + "&to=" + std::to_string(end + 120);
    json r = c.get(path);
    QVERIFY2(r["_status"].get<int>() == 200, r.dump().substr(0, 300).c_str());
    QCOMPARE(r["resolution"].get<int>(), std::atoi(step));
    QCOMPARE(static_cast<int64_t>(total(r)), expected_total);
    QCOMPARE(r["series"].size(), size_t(kSeries));
    for (const auto& s : r["series"]) {
      int idx = std::stoi(s["tags"]["series"].get<std::string>());
      double sum = 0;
      for (const auto& p : s["points"]) sum += p[1].get<double>();
      QCOMPARE(static_cast<int64_t>(sum), load.sent(idx));
    }
  }
  json lat =
      c.get("/api/query?metric=crash.latency&fn=count&step=60&from=" + std::to_string(start - 120) +
            "&to=" + std::to_string(end + 120));
  QCOMPARE(static_cast<uint64_t>(total(lat)), load.observed());
  // And once more after a clean restart.
  QCOMPARE(c.stop(), 0);
  QVERIFY(c.start(args));
  json again = c.get("/api/query?metric=crash.hits&step=60&from=" + std::to_string(start - 120) +
                     "&to=" + std::to_string(end + 120));
  QCOMPARE(static_cast<int64_t>(total(again)), expected_total);
}

QTEST_GUILESS_MAIN(TestCrash)
#include "tst_crash.moc"
