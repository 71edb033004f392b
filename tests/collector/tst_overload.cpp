// Under a flood it bends, never breaks: a deliberately slow collector (hidden debug delays) and a
// few real SDK clients, each sending a burst of batches at once. The collector must push back
// (UNAVAILABLE with a retry-after, bounded queued bytes) rather than queue, the SDKs must back
// off rather than resend in a storm, nothing may be dropped, and the totals must be exact.
//
// Real parts: the tally-collector binary as a child process, libtally clients over loopback
// ZeroMQ, the HTTP query API. Nothing waits for time to pass: every wait polls observable state
// against a deadline.
#include <QtTest>

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "collector_process.h"
#include "tally/client.h"

using namespace tally;
using namespace tally::testing;
using namespace std::chrono_literals;

class TestOverload : public QObject {
  Q_OBJECT
 private slots:
  void floodBendsNeverBreaks_data();
  void floodBendsNeverBreaks();
  void firstFlushOfManySeriesFitsTheBatchLimit();
  void aShardBehindTakesItsBacklogIntoOpenWindows();
};

void TestOverload::floodBendsNeverBreaks_data() {
  QTest::addColumn<QStringList>("flags");
  QTest::addColumn<int>("clients");
  QTest::addColumn<int>("series");                // per client
  QTest::addColumn<int>("rounds");                // batches per client, sent as one burst
  QTest::addColumn<qint64>("max_queued_bytes");   // the collector's budget; 0 = default
  QTest::addColumn<qint64>("max_pending_bytes");  // each client's; 0 = default
  QTest::addColumn<bool>("expect_pushback");

  // Every client's first batch carries 1,000 definitions, and the collector takes 1 ms for each:
  // a second per client, longer than the SDK's ack timeout for the clients queued behind. The
  // batches behind the first must neither carry the definitions again nor be resent in a storm,
  // and all ten must fit in 256 KiB of client memory.
  QTest::newRow("new series arrive slowly") << QStringList{"--debug-def-delay", "1ms"} << 3 << 1000
                                            << 10 << qint64(0) << qint64(256 << 10) << false;
  // Shards that take 50 ms per work item behind a 64 KiB budget: the collector must answer
  // UNAVAILABLE with a retry-after rather than queue, and hold at most its budget plus a batch.
  QTest::newRow("shards apply slowly")
      << QStringList{"--debug-apply-delay", "50ms", "--max-queued-bytes", "65536"} << 3 << 1000
      << 10 << qint64(65536) << qint64(0) << true;
}

void TestOverload::floodBendsNeverBreaks() {
  QFETCH(QStringList, flags);
  QFETCH(int, clients);
  QFETCH(int, series);
  QFETCH(int, rounds);
  QFETCH(qint64, max_queued_bytes);
  QFETCH(qint64, max_pending_bytes);
  QFETCH(bool, expect_pushback);

  CollectorProcess c;
  QVERIFY(c.start(flags + QStringList{"--no-self-metrics"}));
  const int64_t t0 = SystemClock::instance().now_s();

  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < clients; ++i) {
    ClientOptions o;  // SDK defaults but the endpoint (and the byte bound where the row says)
    o.endpoint = c.ingest();
    o.close_timeout = 1s;
    // Batches are built by the rounds' flush(0ms) only: the periodic flush could split a round
    // (it ran between two add()s of a loaded run: 11 batches acked for 10 rounds).
    o.flush_interval = std::chrono::hours(1);
    if (max_pending_bytes) o.max_pending_bytes = static_cast<size_t>(max_pending_bytes);
    cs.push_back(std::make_unique<Client>(o));
  }
  std::vector<std::vector<Counter>> handles(static_cast<size_t>(clients));
  for (int i = 0; i < clients; ++i)
    for (int s = 0; s < series; ++s)
      handles[static_cast<size_t>(i)].push_back(cs[static_cast<size_t>(i)]->counter(
          "flood.hits", {{"client", std::to_string(i)}, {"s", std::to_string(s)}}));

  // The burst: every round adds 1 to every series and builds a batch at once (flush without
  // waiting for acks), so each client holds `rounds` batches before the collector has answered
  // much. A round waits only until its batches are built (requests made meanwhile would merge).
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < clients; ++i) {
      for (const Counter& h : handles[static_cast<size_t>(i)]) h.add();
      (void)cs[static_cast<size_t>(i)]->flush(0ms);
    }
    for (int i = 0; i < clients; ++i)
      QTRY_COMPARE_WITH_TIMEOUT(cs[static_cast<size_t>(i)]->stats().batches_sent, uint64_t(r + 1),
                                5000);
  }

  // Everything is delivered; meanwhile no client holds more than its byte bound.
  uint64_t peak_pending = 0;
  const uint64_t bound =
      max_pending_bytes ? uint64_t(max_pending_bytes) : ClientOptions{}.max_pending_bytes;
  QVERIFY(eventually(
      [&] {
        bool all = true;
        for (auto& cl : cs) {
          auto st = cl->stats();
          peak_pending = std::max(peak_pending, st.pending_bytes);
          all &= st.batches_pending == 0;
        }
        return all;
      },
      45000));
  QVERIFY2(peak_pending <= bound, std::to_string(peak_pending).c_str());

  uint64_t resent = 0, timeouts = 0, refused = 0;
  for (int i = 0; i < clients; ++i) {
    auto st = cs[static_cast<size_t>(i)]->stats();
    QCOMPARE(st.batches_acked, uint64_t(rounds));
    QCOMPARE(st.batches_dropped, uint64_t(0));
    QCOMPARE(st.points_dropped, uint64_t(0));
    QCOMPARE(st.batches_rejected, uint64_t(0));
    resent += st.batches_resent;
    timeouts += st.ack_timeouts;
    refused += st.unavailable_acks;
  }

  // Exact totals, every distinct series stored.
  const double expected = double(clients) * series * rounds;
  const std::string q = "/api/query?metric=flood.hits&step=60&from=" + std::to_string(t0 - 120) +
                        "&to=" + std::to_string(t0 + 120);
  QVERIFY(eventually([&] { return total(c.get(q)) == expected; }, 20000));
  json grouped = c.get(q + "&group_by=client,s");
  QCOMPARE(grouped["series"].size(), size_t(clients * series));

  // No retransmission storm: a resend happens only for a client whose first batch waited behind
  // the others' longer than the ack timeout, and a resend costs the collector a header read.
  const double received = metric(c, "tally_batches_received_total");
  const double duplicates = metric(c, "tally_batches_duplicate_total");
  const QString summary = QString("received %1 duplicates %2 resent %3 timeouts %4 refused %5")
                              .arg(received)
                              .arg(duplicates)
                              .arg(resent)
                              .arg(timeouts)
                              .arg(refused);
  qInfo().noquote() << summary;
  QVERIFY2(duplicates >= 0 && duplicates <= 2 * clients, qPrintable(summary));
  QVERIFY2(timeouts <= uint64_t(2 * clients), qPrintable(summary));
  // Every resend answers a timeout or a refusal, and refusals come with a retry-after the
  // clients honour: not a tight loop.
  QVERIFY2(resent <= timeouts + refused, qPrintable(summary));
  QVERIFY2(refused <= uint64_t(2 * clients * rounds), qPrintable(summary));

  // The collector's bound on accepted but unapplied bytes: the budget plus one batch.
  const double peak = metric(c, "tally_ingest_queued_bytes_peak");
  const double overloaded = metric(c, "tally_batches_overloaded_total");
  QVERIFY2(peak >= 0 && overloaded >= 0, "queued-bytes metrics missing");
  if (max_queued_bytes) {
    const double one_batch = 64.0 * series + 4096;  // work_bytes of one batch, generously
    QVERIFY2(peak <= double(max_queued_bytes) + one_batch, std::to_string(peak).c_str());
  }
  if (expect_pushback) QVERIFY2(overloaded > 0, "the budget was never reached");
  if (!expect_pushback) QVERIFY(metric(c, "tally_batch_defs_skipped_total") >= 0);
}

// A service that starts with 100,000 series sends 100,000 definitions in its first flush: about
// 4.5 MB, past the collector's default max_batch_bytes (4 MiB), which refuses such a frame unread.
// The SDK must split the flush into batches under its own max_batch_bytes (1 MiB by default), so
// every one is acknowledged at the first delivery, and every series arrives exactly once.
void TestOverload::firstFlushOfManySeriesFitsTheBatchLimit() {
  constexpr int kSeries = 100000;
  CollectorProcess c;
  QVERIFY(c.start({"--no-self-metrics"}));
  const int64_t t0 = SystemClock::instance().now_s();
  const int64_t empty_rss = rss_bytes(c.pid());
  QVERIFY(empty_rss > 0);

  ClientOptions o;  // SDK defaults but the endpoint; the default max_series is exactly kSeries
  o.endpoint = c.ingest();
  o.close_timeout = 1s;
  o.flush_interval = std::chrono::hours(1);  // one batch build: the flush below
  Client client(o);
  for (int s = 0; s < kSeries; ++s)
    client
        .counter("burst.hits",
                 {{"service", "checkout-api-production"}, {"instance", "pod-" + std::to_string(s)}})
        .add();
  QCOMPARE(client.stats().series, uint64_t(kSeries));
  (void)client.flush(0ms);
  QVERIFY(eventually([&] { return client.stats().batches_sent > 0; }, 5000));
  QVERIFY(eventually([&] { return client.stats().batches_pending == 0; }, 30000));

  const ClientStats st = client.stats();
  const QString summary = QString("sent %1 acked %2 resent %3 timeouts %4")
                              .arg(st.batches_sent)
                              .arg(st.batches_acked)
                              .arg(st.batches_resent)
                              .arg(st.ack_timeouts);
  qInfo().noquote() << summary;
  // 4.5 MB of definitions under 1 MiB a batch: at least five batches, each taken at once.
  QVERIFY2(st.batches_sent >= 5, qPrintable(summary));
  QCOMPARE(st.batches_acked, st.batches_sent);
  QCOMPARE(st.batches_dropped, uint64_t(0));
  QCOMPARE(st.batches_rejected, uint64_t(0));
  // A resend answers only a timeout (a machine loaded enough to answer a batch in over 2 s), and
  // every batch carried the definitions it needed.
  QVERIFY2(st.batches_resent <= st.ack_timeouts, qPrintable(summary));
  QCOMPARE(metric(c, "tally_batches_unknown_ref_total"), 0.0);

  const std::string q = "/api/query?metric=burst.hits&step=60&from=" + std::to_string(t0 - 120) +
                        "&to=" + std::to_string(t0 + 120);
  QVERIFY(eventually([&] { return total(c.get(q)) == double(kSeries); }, 20000));
  QCOMPARE(metric(c, "tally_series"), double(kSeries));

  // The burst leaves no large heap behind: within a few seconds (the collector gives free heap
  // back every 5 s) its RSS is at most 2 x 179 B per series above the empty process (179 B: what
  // bench_memory measures for a series with its open buckets).
  const int64_t bound = 2 * 179 * int64_t(kSeries);
  int64_t above = 0;
  const bool bounded = eventually(
      [&] {
        above = rss_bytes(c.pid()) - empty_rss;
        return above <= bound;
      },
      15000);
  qInfo().noquote() << QString("RSS above the empty process after the burst: %1 bytes (bound %2)")
                           .arg(above)
                           .arg(bound);
  QVERIFY2(bounded, qPrintable(QString("%1 bytes above the empty process").arg(above)));
}

// A shard that falls behind: each work item waits 2.5 s (a debug delay) before it is applied, so
// the batch a client sends at t+1 is applied at about t+5, past the watermark of its second (the
// lateness is 2 s). Those points were on time when they arrived; the shard must keep their windows
// open until its backlog is applied rather than finalise them and turn every point behind into a
// late bucket (a map node and a read-modify-write of the stored bucket, which made a lagging shard
// slower still and grew the collector by gigabytes at 500 k series).
void TestOverload::aShardBehindTakesItsBacklogIntoOpenWindows() {
  constexpr int kSeries = 200, kRounds = 3;
  CollectorProcess c;
  QVERIFY(c.start({"--no-self-metrics", "--debug-apply-delay", "2500ms"}));
  const int64_t t0 = SystemClock::instance().now_s();

  ClientOptions o;
  o.endpoint = c.ingest();
  o.close_timeout = 1s;
  o.flush_interval = std::chrono::hours(1);  // a batch per round, one second apart
  Client client(o);
  std::vector<Counter> handles;
  for (int s = 0; s < kSeries; ++s)
    handles.push_back(client.counter("lag.hits", {{"s", std::to_string(s)}}));
  for (int r = 0; r < kRounds; ++r) {
    const int64_t second = SystemClock::instance().now_s();
    for (const Counter& h : handles) h.add();
    (void)client.flush(0ms);
    QVERIFY(eventually([&] { return client.stats().batches_sent == uint64_t(r + 1); }, 5000));
    // The next round's points belong to the next second.
    QVERIFY(eventually([&] { return SystemClock::instance().now_s() > second; }, 2000));
  }
  QVERIFY(eventually([&] { return client.stats().batches_pending == 0; }, 30000));

  const std::string q = "/api/query?metric=lag.hits&step=60&from=" + std::to_string(t0 - 120) +
                        "&to=" + std::to_string(t0 + 120);
  QVERIFY(eventually([&] { return total(c.get(q)) == double(kSeries) * kRounds; }, 30000));
  const ClientStats st = client.stats();
  QCOMPARE(st.batches_acked, uint64_t(kRounds));
  QCOMPARE(st.batches_dropped, uint64_t(0));
  // Every point was taken into an open window: none became late while it waited in the queue.
  QCOMPARE(metric(c, "tally_late_points_total"), 0.0);
  QCOMPARE(metric(c, "tally_batches_duplicate_total"), 0.0);
}

QTEST_GUILESS_MAIN(TestOverload)
#include "tst_overload.moc"
