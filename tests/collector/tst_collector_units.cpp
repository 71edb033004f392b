// Unit tests for the collector's parts, as tables: tag filters, the query planner, time
// parameters, configuration files, the de-duplication window, batch validation, the write-ahead
// log (torn tails, rollback, truncation), the shard store's merge rule, the catalog's interned
// series records and the shard's windows of open buckets.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "aggregate/cardinality.h"
#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "aggregate/shard.h"
#include "config.h"
#include "eventually.h"  // tests/support
#include "ingest/batch_decoder.h"
#include "ingest/batch_header.h"
#include "ingest/producer_table.h"
#include "ingest/statsd_record.h"
#include "ingest/statsd_router.h"
#include "log.h"
#include "query/http_api.h"
#include "query/query_engine.h"
#include "storage/coverage.h"
#include "storage/coverage_format.h"
#include "storage/shard_store.h"
#include "storage/wal.h"
#include "storage/wal_format.h"

using namespace tally;
using namespace tally::collector;

class TestCollectorUnits : public QObject {
  Q_OBJECT
 private slots:
  void cardinalityGuardFoldsBeyondLimits();
  void producerTableForgetsIdleAndLeastRecent();
  void filterParsing_data();
  void filterParsing();
  void filterMatching_data();
  void filterMatching();
  void fsyncPolicy_data();
  void fsyncPolicy();
  void planner_data();
  void planner();
  void plannerClampsHugeRanges();
  void httpApiStoppedRightAfterStartEnds();
  void timeParameter_data();
  void timeParameter();
  void configFile_data();
  void configFile();
  void logFileRotatesBySize();
  void checkConfigValidatesWithoutStarting();
  void dedupWindow();
  void batchHeaderWithoutDecoding_data();
  void batchHeaderWithoutDecoding();
  void knownDefinitionsAreCutBeforeDecoding();
  void batchValidation_data();
  void batchValidation();
  void walRoundTripTornTailRollbackAndTruncate();
  void walReplaysRecordTypesAndOldLogs();
  void statsdIntervalAggregatesAndRecordRoundTrips();
  void statsdRouterCountsTheLinesOfACachedCounter();
  void pointOfASeriesNotHandedOverYetIsKept();
  void storeMergesIntoStoredBuckets();
  void catalogInternsStringsAndKeepsRecords();
  void catalogRestoresIdsWithGaps();
  void catalogExpiryFreesEverythingAndKeysComeBack();
  void catalogPinKeepsExpiredRecords();
  void windowBoundariesAtEveryResolution_data();
  void windowBoundariesAtEveryResolution();
  void latePointIntoOpenThenFinalWindow();
  void checkpointWritesOpenWindowsOnce();
  void checkpointedBucketStillGetsItsFinal();
  void coverageIntervalsMergeCapAndBound();
  void coverageRecordEndsAtTheLastHeartbeatAfterACrash();
  void coverageRecordOfANewerTallyIsRefused();
  void countersAreZeroFilledOnlyInCoveredTime();
};

void TestCollectorUnits::filterParsing_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<bool>("ok");
  QTest::newRow("eq") << "endpoint=/login" << true;
  QTest::newRow("ne") << "status!=200" << true;
  QTest::newRow("re") << "status=~5.." << true;
  QTest::newRow("empty value") << "k=" << true;
  QTest::newRow("value with =") << "q=a=b" << true;
  QTest::newRow("no op") << "endpoint" << false;
  QTest::newRow("no key") << "=v" << false;
  QTest::newRow("bad key") << "1k=v" << false;
  QTest::newRow("bad regex") << "k=~(" << false;
  QTest::newRow("bang only") << "k!v" << false;
  QTest::newRow("nre") << "status!~5.." << true;
  QTest::newRow("re RE2 flag") << "status=~(?i)err" << true;
  QTest::newRow("re lookahead is not RE2") << "k=~(?=a)a" << false;
}

void TestCollectorUnits::filterParsing() {
  QFETCH(QString, text);
  QFETCH(bool, ok);
  auto f = parse_filter(text.toStdString());
  QCOMPARE(f.has_value(), ok);
  if (!ok) QVERIFY(!f.status().message().empty());
}

void TestCollectorUnits::filterMatching_data() {
  QTest::addColumn<QString>("filter");
  QTest::addColumn<bool>("matchesLogin500");  // {endpoint=/login, status=500}
  QTest::addColumn<bool>("matchesNoStatus");  // {endpoint=/cart}
  QTest::newRow("eq") << "endpoint=/login" << true << false;
  QTest::newRow("eq absent") << "status=500" << true << false;
  QTest::newRow("ne") << "status!=500" << false << true;
  QTest::newRow("ne absent value") << "status!=" << true << false;
  QTest::newRow("re whole value") << "status=~5.." << true << false;
  QTest::newRow("re is anchored") << "status=~5" << false << false;
  QTest::newRow("re matches empty") << "status=~|500" << true << true;
  QTest::newRow("re alternation") << "endpoint=~/(login|cart)" << true << true;
  QTest::newRow("nre") << "status!~5.." << false << true;
  QTest::newRow("nre absent value") << "status!~" << true << false;
  QTest::newRow("re RE2 flag") << "endpoint=~(?i)/LOGIN" << true << false;
}

void TestCollectorUnits::filterMatching() {
  QFETCH(QString, filter);
  QFETCH(bool, matchesLogin500);
  QFETCH(bool, matchesNoStatus);
  auto f = parse_filter(filter.toStdString());
  QVERIFY(f.has_value());
  QCOMPARE(filter_matches({*f}, Tags{{"endpoint", "/login"}, {"status", "500"}}), matchesLogin500);
  QCOMPARE(filter_matches({*f}, Tags{{"endpoint", "/cart"}}), matchesNoStatus);
}

// The WAL's fsync setting reads its interval with the one duration parser: "12xms" is an error.
void TestCollectorUnits::fsyncPolicy_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<int>("policy");  // FsyncPolicy, -1 = must fail
  QTest::addColumn<qint64>("interval_ms");
  const int kAlways = int(FsyncPolicy::kAlways), kNever = int(FsyncPolicy::kNever),
            kInterval = int(FsyncPolicy::kInterval);
  QTest::newRow("always") << "always" << kAlways << qint64(0);
  QTest::newRow("never") << "never" << kNever << qint64(0);
  QTest::newRow("100ms") << "100ms" << kInterval << qint64(100);
  QTest::newRow("1s") << "1s" << kInterval << qint64(1000);
  QTest::newRow("one minute is the longest") << "60000ms" << kInterval << qint64(60000);
  QTest::newRow("longer than a minute") << "60001ms" << -1 << qint64(0);
  QTest::newRow("junk before ms") << "12xms" << -1 << qint64(0);
  QTest::newRow("zero") << "0ms" << -1 << qint64(0);
  QTest::newRow("word") << "sometimes" << -1 << qint64(0);
}

void TestCollectorUnits::fsyncPolicy() {
  QFETCH(QString, text);
  QFETCH(int, policy);
  QFETCH(qint64, interval_ms);
  auto p = parse_fsync_policy(text.toStdString());
  QCOMPARE(p.has_value(), policy >= 0);
  if (policy < 0) return;
  QCOMPARE(int(p->first), policy);
  QCOMPARE(p->second, interval_ms);
}

void TestCollectorUnits::planner_data() {
  QTest::addColumn<qint64>("rangeS");  // from = now - range, to = now
  QTest::addColumn<qint64>("step");    // 0 = auto
  QTest::addColumn<qint64>("points");
  QTest::addColumn<qint64>("wantStep");
  QTest::addColumn<qint64>("wantResolution");
  QTest::newRow("5m auto") << qint64(300) << qint64(0) << qint64(300) << qint64(1) << qint64(1);
  QTest::newRow("1h auto") << qint64(3600) << qint64(0) << qint64(300) << qint64(60) << qint64(60);
  QTest::newRow("1h auto 3600 points")
      << qint64(3600) << qint64(0) << qint64(3600) << qint64(1) << qint64(1);
  QTest::newRow("1h step 10") << qint64(3600) << qint64(10) << qint64(0) << qint64(10)
                              << qint64(10);
  QTest::newRow("1h step 30 reads 10s")
      << qint64(3600) << qint64(30) << qint64(0) << qint64(30) << qint64(10);
  QTest::newRow("1h step 7 reads 1s")
      << qint64(3600) << qint64(7) << qint64(0) << qint64(7) << qint64(1);
  QTest::newRow("1d step 60: 1s gone, 1m")
      << qint64(86400) << qint64(60) << qint64(0) << qint64(60) << qint64(60);
  QTest::newRow("1d step 10 reads 10s")
      << qint64(86400) << qint64(10) << qint64(0) << qint64(10) << qint64(10);
  QTest::newRow("30d auto reads 1h")
      << qint64(30 * 86400) << qint64(0) << qint64(300) << qint64(3 * 3600) << qint64(3600);
  QTest::newRow("30d step 1h") << qint64(30 * 86400) << qint64(3600) << qint64(0) << qint64(3600)
                               << qint64(3600);
  QTest::newRow("1y auto: coarsest, rounded")
      << qint64(365 * 86400) << qint64(0) << qint64(100) << qint64(88 * 3600) << qint64(3600);
}

void TestCollectorUnits::planner() {
  QFETCH(qint64, rangeS);
  QFETCH(qint64, step);
  QFETCH(qint64, points);
  QFETCH(qint64, wantStep);
  QFETCH(qint64, wantResolution);
  ManualClock clock(1'800'000'000'000);
  SeriesCatalog catalog(1);
  Router router({});
  QueryEngine engine(catalog, router, *parse_retention(kDefaultRetention), clock);
  auto p = engine.plan(clock.now_s() - rangeS, clock.now_s(), step, points);
  QVERIFY(p.has_value());
  QCOMPARE(p->first, wantStep);
  QCOMPARE(engine.resolutions()[p->second].step_s, wantResolution);
}

// Regression (found by fuzz_query_params under UBSan): plan() with times whose difference
// overflows int64 clamps them first and answers the points budget, never wraps around.
void TestCollectorUnits::plannerClampsHugeRanges() {
  ManualClock clock(1'800'000'000'000);
  SeriesCatalog catalog(1);
  Router router({});
  QueryEngine engine(catalog, router, *parse_retention(kDefaultRetention), clock);
  auto p = engine.plan(-5'000'000'000'000'000'000, 5'000'000'000'000'000'000, 1, 0);
  QVERIFY(!p.has_value());
  QVERIFY2(p.status().message().find("points per series") != std::string::npos,
           p.status().message().c_str());
  auto automatic = engine.plan(-5'000'000'000'000'000'000, 5'000'000'000'000'000'000, 0, 300);
  QVERIFY(automatic.has_value());
  QCOMPARE(engine.resolutions()[automatic->second].step_s, qint64(3600));
}

// Regression (found by ThreadSanitizer in tst_hostile): HttpApi::start() returned as soon as its
// listening thread was created. The library's stop() does nothing until that thread's loop has
// begun, so a stop() right after start() was lost and the join waited for ever (a collector sent
// SIGTERM just after it was ready did not exit); and the loop's first step (widen_backlog's
// listen()) could use the socket after stop() had closed it.
void TestCollectorUnits::httpApiStoppedRightAfterStartEnds() {
  ManualClock clock(1'800'000'000'000);
  SeriesCatalog catalog(1);
  Router router({});
  QueryEngine engine(catalog, router, *parse_retention(kDefaultRetention), clock);
  SelfMetrics metrics;
  for (int i = 0; i < 200; ++i) {
    // On the heap and never freed if a stop() hangs: its threads would still use it.
    auto api = std::make_unique<HttpApi>(engine, catalog, router, metrics, clock);
    auto done = std::make_shared<std::atomic<int>>(0);  // 1: started and stopped; 2: no start
    std::thread t([raw = api.get(), done] {
      const bool started = raw->start("127.0.0.1:0").has_value();
      if (started) raw->stop();
      *done = started ? 1 : 2;
    });
    if (!tally::testing::eventually([&] { return done->load() != 0; }, 10000, 1)) {
      t.detach();
      (void)api.release();
      QFAIL(qPrintable(QString("stop() right after start() did not end (round %1)").arg(i)));
    }
    t.join();
    QCOMPARE(done->load(), 1);
  }
}

void TestCollectorUnits::timeParameter_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<qint64>("want");  // -1 = must fail; now is 1000000
  QTest::newRow("now") << "now" << qint64(1000000);
  QTest::newRow("empty") << "" << qint64(1000000);
  QTest::newRow("unix") << "999000" << qint64(999000);
  QTest::newRow("relative") << "-15m" << qint64(1000000 - 900);
  QTest::newRow("relative days") << "-2d" << qint64(1000000 - 172800);
  QTest::newRow("words") << "yesterday" << qint64(-1);
  QTest::newRow("bad relative") << "-5x" << qint64(-1);
  QTest::newRow("float") << "1.5" << qint64(-1);
}

void TestCollectorUnits::timeParameter() {
  QFETCH(QString, text);
  QFETCH(qint64, want);
  auto t = parse_time_param(text.toStdString(), 1000000);
  QCOMPARE(t.has_value(), want >= 0);
  if (want >= 0) QCOMPARE(*t, want);
}

void TestCollectorUnits::configFile_data() {
  QTest::addColumn<QString>("toml");
  QTest::addColumn<QString>("error");  // empty = must load; else words in the message
  QTest::newRow("empty") << ""
                         << "";
  QTest::newRow("all keys")
      << "data_dir = \"/tmp/x\"\nshards = 4\nretention = \"1s:1d,1m:30d\"\nlateness = \"5s\"\n"
         "fsync = \"100ms\"\ncheckpoint = \"1m\"\nself_metrics = false\nstatsd = \"off\"\n"
      << "";
  QTest::newRow("typo key") << "retension = \"1s:1d\""
                            << "unknown setting 'retension'";
  QTest::newRow("bad toml") << "shards = = 4"
                            << ":1:";
  QTest::newRow("wrong type") << "shards = \"four\""
                              << "'shards'";
  QTest::newRow("bad duration") << "lateness = \"soon\""
                                << "'lateness'";
  QTest::newRow("bad retention") << "retention = \"1s:6h,10s:1d,15s:7d\""
                                 << "retention";
  QTest::newRow("bad fsync") << "fsync = \"sometimes\""
                             << "fsync";
  QTest::newRow("limits") << "query_max_series = 10\nquery_timeout = \"2s\"\nsketch_max_bins = 64"
                          << "";
  QTest::newRow("limit zero") << "query_max_series = 0"
                              << "query_max_series must be positive";
  QTest::newRow("limit not a number") << "batch_max_points = \"many\""
                                      << "batch_max_points must be a positive integer";
  QTest::newRow("limit bad duration") << "query_timeout = \"soon\""
                                      << "query_timeout";
  QTest::newRow("log rotation") << "log_max_bytes = 1048576\nlog_max_files = 3"
                                << "";
  QTest::newRow("log never rotates") << "log_max_bytes = 0"
                                     << "";
  QTest::newRow("log tiny") << "log_max_bytes = 100"
                            << "log_max_bytes must be 0 (never rotate) or at least 4096";
  QTest::newRow("log no files") << "log_max_files = 0"
                                << "log_max_files must be 1..200000";
}

// A log file rotates by size: past log_max_bytes it becomes file.1, at most log_max_files kept.
void TestCollectorUnits::logFileRotatesBySize() {
  QTemporaryDir dir;
  const std::string file = (dir.path() + "/collector.log").toStdString();
  QVERIFY(setup_logging("info", file, 4096, 2).is_ok());
  const std::string line(100, 'x');
  for (int i = 0; i < 400; ++i) spdlog::info("event=test n={} {}", i, line);  // ~60 KB
  spdlog::default_logger()->flush();
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path().toStdString())) {
    names.push_back(e.path().filename().string());
    QVERIFY2(e.file_size() <= 4096, e.path().c_str());
  }
  std::sort(names.begin(), names.end());
  QCOMPARE(names,
           (std::vector<std::string>{"collector.1.log", "collector.2.log", "collector.log"}));
  // The newest lines are in the live file.
  std::ifstream in(file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  QVERIFY(text.find("event=test n=399 ") != std::string::npos);
  spdlog::drop("tally");
  spdlog::set_default_logger(spdlog::stderr_logger_mt("tally-test"));
}

// tally-collector --check-config validates a file without starting: 0 and "valid", or 2 and the
// reason; nothing is created (no data directory).
void TestCollectorUnits::checkConfigValidatesWithoutStarting() {
  QTemporaryDir dir;
  const QString good = dir.path() + "/good.toml", bad = dir.path() + "/bad.toml";
  std::ofstream(good.toStdString())
      << "data_dir = \"" << dir.path().toStdString() << "/data\"\nlog_max_files = 3\n";
  std::ofstream(bad.toStdString())
      << "data_dir = \"" << dir.path().toStdString() << "/data\"\nretension = \"1s:1d\"\n";
  auto run = [](const QStringList& args, QString* out) {
    QProcess p;
    p.setProcessChannelMode(QProcess::MergedChannels);
    p.start(TALLY_COLLECTOR_BIN, args);
    if (!p.waitForFinished(20000)) return -1;
    *out = QString::fromUtf8(p.readAll());
    return p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
  };
  QString out;
  QCOMPARE(run({"--check-config", good}, &out), 0);
  QCOMPARE(out.trimmed(), good + ": valid");
  QCOMPARE(run({"--check-config", bad}, &out), 2);
  QVERIFY2(out.contains("unknown setting 'retension'"), qPrintable(out));
  QCOMPARE(run({"--check-config", good, "--retention", "10s:1d,15s:2d"}, &out), 2);
  QVERIFY2(out.contains("retention"), qPrintable(out));
  QVERIFY(!QFileInfo::exists(dir.path() + "/data"));
}

void TestCollectorUnits::configFile() {
  QFETCH(QString, toml);
  QFETCH(QString, error);
  QTemporaryDir dir;
  const std::string path = (dir.path() + "/c.toml").toStdString();
  std::ofstream(path) << toml.toStdString();
  auto c = load_config_file(path, CollectorConfig());
  Status s = c.has_value() ? c->validate() : c.status();
  if (error.isEmpty()) {
    QVERIFY2(s.is_ok(), s.to_string().c_str());
  } else {
    QVERIFY(!s.is_ok());
    QVERIFY2(s.message().find(error.toStdString()) != std::string::npos, s.message().c_str());
  }
}

void TestCollectorUnits::dedupWindow() {
  QTemporaryDir dir;
  SeriesCatalog catalog(1);
  auto t = ProducerTable::open((dir.path() + "/i.sqlite").toStdString(), catalog);
  QVERIFY(t.has_value());
  auto& p = **t;
  QVERIFY(!p.seen(1, 1));
  p.mark_seen(1, 1);
  p.mark_seen(1, 3);
  QVERIFY(p.seen(1, 1));
  QVERIFY(!p.seen(1, 2));  // a gap: not yet seen
  QVERIFY(p.seen(1, 3));
  QVERIFY(!p.seen(2, 1));  // another producer
  p.mark_seen(1, 2);
  p.mark_seen(1, 3 + ProducerTable::kWindow + 10);
  QVERIFY(p.seen(1, 3));  // fell below the window: treated as seen
  QVERIFY(!p.seen(1, 3 + ProducerTable::kWindow + 9));
  for (uint64_t s = 200; s < 300; s += 3) p.mark_seen(7, s);
  QVERIFY(p.save_sequences().is_ok());
  // The window survives a reopen.
  auto again = ProducerTable::open((dir.path() + "/i.sqlite").toStdString(), catalog);
  QVERIFY((*again)->seen(1, 2));
  QVERIFY((*again)->seen(7, 203));
  QVERIFY(!(*again)->seen(7, 204));
  QVERIFY((*again)->seen(7, 299));
  QVERIFY(!(*again)->seen(7, 300));
}

void TestCollectorUnits::batchValidation_data() {
  QTest::addColumn<QByteArray>("batch");
  QTest::addColumn<int>("code");
  QTest::addColumn<QString>("reason");
  auto make = [](auto&& fill) {
    wire::Batch b;
    b.set_producer_id(1);
    b.set_seq(1);
    fill(b);
    return QByteArray::fromStdString(b.SerializeAsString());
  };
  auto def = [](wire::Batch& b, uint32_t ref, const std::string& metric, wire::Kind kind,
                std::vector<std::pair<std::string, std::string>> tags = {}) {
    auto* d = b.add_defs();
    d->set_ref(ref);
    d->set_metric(metric);
    d->set_kind(kind);
    for (auto& [k, v] : tags) {
      auto* t = d->add_tags();
      t->set_key(k);
      t->set_value(v);
    }
  };
  auto counter = [](wire::Batch& b, uint32_t ref, int64_t t, double v) {
    b.mutable_counters()->add_refs(ref);
    b.mutable_counters()->add_times(t);
    b.mutable_counters()->add_values(v);
  };
  const int64_t now = 1'800'000'000;
  QTest::newRow("ok") << make([&](auto& b) {
    def(b, 1, "a.b", wire::COUNTER);
    counter(b, 1, now, 1);
  }) << int(wire::Ack::OK)
                      << "";
  QTest::newRow("no kind") << make([&](auto& b) { def(b, 1, "a.b", wire::KIND_UNSPECIFIED); })
                           << int(wire::Ack::INVALID) << "no kind";
  QTest::newRow("bad name") << make([&](auto& b) { def(b, 1, "a b", wire::COUNTER); })
                            << int(wire::Ack::INVALID) << "invalid character";
  QTest::newRow("long name") << make([&](auto& b) {
    def(b, 1, std::string(201, 'a'), wire::COUNTER);
  }) << int(wire::Ack::INVALID)
                             << "201 bytes";
  QTest::newRow("dup tag") << make([&](auto& b) {
    def(b, 1, "a", wire::COUNTER, {{"k", "1"}, {"k", "2"}});
  }) << int(wire::Ack::INVALID)
                           << "twice";
  QTest::newRow("ref twice") << make([&](auto& b) {
    def(b, 1, "a", wire::COUNTER);
    def(b, 1, "b", wire::COUNTER);
  }) << int(wire::Ack::INVALID)
                             << "defined twice";
  QTest::newRow("two kinds") << make([&](auto& b) {
    def(b, 1, "a", wire::COUNTER);
    def(b, 2, "a", wire::GAUGE, {{"x", "y"}});
  }) << int(wire::Ack::INVALID)
                             << "two kinds";
  QTest::newRow("kind of point") << make([&](auto& b) {
    def(b, 1, "g", wire::GAUGE);
    counter(b, 1, now, 1);
  }) << int(wire::Ack::INVALID) << "which is a gauge";
  QTest::newRow("ragged") << make([&](auto& b) {
    def(b, 1, "a", wire::COUNTER);
    counter(b, 1, now, 1);
    b.mutable_counters()->add_values(2);
  }) << int(wire::Ack::INVALID)
                          << "differ in length";
  QTest::newRow("inf") << make([&](auto& b) {
    def(b, 1, "a", wire::COUNTER);
    counter(b, 1, now, INFINITY);
  }) << int(wire::Ack::INVALID)
                       << "not finite";
  QTest::newRow("gauge min>max") << make([&](auto& b) {
    def(b, 1, "g", wire::GAUGE);
    auto* g = b.mutable_gauges();
    g->add_refs(1);
    g->add_times(now);
    g->add_last(1);
    g->add_min(5);
    g->add_max(2);
    g->add_sum(1);
    g->add_count(1);
  }) << int(wire::Ack::INVALID) << "min above max";
  QTest::newRow("empty sketch") << make([&](auto& b) {
    def(b, 1, "d", wire::DISTRIBUTION);
    auto* d = b.add_distributions();
    d->set_ref(1);
    d->set_time(now);
  }) << int(wire::Ack::INVALID) << "no observations";
  QTest::newRow("unknown ref") << make([&](auto& b) { counter(b, 9, now, 1); })
                               << int(wire::Ack::UNKNOWN_REF) << "unknown series refs";
}

void TestCollectorUnits::batchValidation() {
  QFETCH(QByteArray, batch);
  QFETCH(int, code);
  QFETCH(QString, reason);
  QTemporaryDir dir;
  SeriesCatalog catalog(2);
  auto producers = ProducerTable::open((dir.path() + "/i.sqlite").toStdString(), catalog);
  wire::Batch b;
  QVERIFY(b.ParseFromString(batch.toStdString()));
  DecodedBatch d = decode_batch(b, **producers, catalog, IngestLimits{}, 1'800'000'000);
  QCOMPARE(int(d.code), code);
  QVERIFY2(d.reason.find(reason.toStdString()) != std::string::npos, d.reason.c_str());
  if (code != wire::Ack::OK) QCOMPARE(catalog.size(), size_t(0));  // nothing created on refusal
}

void TestCollectorUnits::walRoundTripTornTailRollbackAndTruncate() {
  QTemporaryDir dir;
  WalOptions o;
  o.dir = (dir.path() + "/wal").toStdString();
  o.segment_bytes = 100;  // a new segment every couple of records
  {
    auto w = Wal::open(o);
    QVERIFY(w.has_value());
    QVERIFY((*w)->replay([](uint64_t, std::string_view) {}).is_ok());
    for (int i = 1; i <= 6; ++i)
      QCOMPARE(*(*w)->append(std::string(60, char('a' + i))), uint64_t(i));
    QVERIFY((*w)->sync(true).is_ok());
    auto mark = (*w)->mark();
    QCOMPARE(*(*w)->append("taken back"), uint64_t(7));
    QVERIFY((*w)->rollback(mark).is_ok());
    QCOMPARE((*w)->next_lsn(), uint64_t(7));
    QVERIFY((*w)->segments() > 2);
  }
  // Tear the last record in half: it and nothing else is cut off at the next open.
  std::vector<std::filesystem::path> segs;
  for (auto& e : std::filesystem::directory_iterator(o.dir)) segs.push_back(e.path());
  std::sort(segs.begin(), segs.end());
  std::filesystem::resize_file(segs.back(), std::filesystem::file_size(segs.back()) - 30);
  auto w = Wal::open(o);
  std::vector<uint64_t> lsns;
  QVERIFY((*w)->replay([&](uint64_t lsn, std::string_view payload) {
                QCOMPARE(payload, std::string_view(std::string(60, char('a' + lsn))));
                lsns.push_back(lsn);
              })
              .is_ok());
  QCOMPARE(lsns, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  QCOMPARE((*w)->next_lsn(), uint64_t(6));
  QCOMPARE(*(*w)->append(std::string(60, 'f')), uint64_t(6));
  const size_t before = (*w)->segments();
  QVERIFY((*w)->truncate(4).is_ok());
  QVERIFY((*w)->segments() < before);
  std::vector<uint64_t> after;
  auto w2 = Wal::open(o);
  QVERIFY((*w2)->replay([&](uint64_t lsn, std::string_view) { after.push_back(lsn); }).is_ok());
  QVERIFY(!after.empty());
  QVERIFY(after.front() <= 5);  // nothing above the safe point was deleted
  QCOMPARE(after.back(), uint64_t(6));
}

// Type 2 (StatsD) records replay with their type beside type 1; a log of type 1 records alone
// (every log written before type 2) reads as it always did; an unknown type is damage.
void TestCollectorUnits::walReplaysRecordTypesAndOldLogs() {
  QTemporaryDir dir;
  WalOptions o;
  o.dir = (dir.path() + "/wal").toStdString();
  {
    auto w = Wal::open(o);
    QVERIFY((*w)->replay([](uint64_t, std::string_view) {}).is_ok());
    QCOMPARE(*(*w)->append("batch"), uint64_t(1));
    QCOMPARE(*(*w)->append("statsd", wal_format::kTypeStatsd), uint64_t(2));
    QVERIFY(!(*w)->append("x", 7).has_value());
    QVERIFY((*w)->sync(true).is_ok());
  }
  std::vector<std::tuple<uint64_t, int, std::string>> got;
  auto w = Wal::open(o);
  QVERIFY((*w)->replay_records([&](uint64_t lsn, uint8_t type, std::string_view p) {
                got.emplace_back(lsn, type, std::string(p));
              })
              .is_ok());
  QCOMPARE(got.size(), size_t(2));
  QCOMPARE(got[0], std::make_tuple(uint64_t(1), 1, std::string("batch")));
  QCOMPARE(got[1], std::make_tuple(uint64_t(2), 2, std::string("statsd")));

  // An old log: type 1 records only, as every writer before type 2 wrote them (their bytes are
  // unchanged: append() without a type writes type 1).
  QTemporaryDir old_dir;
  WalOptions oo;
  oo.dir = (old_dir.path() + "/wal").toStdString();
  {
    auto ow = Wal::open(oo);
    QVERIFY((*ow)->replay([](uint64_t, std::string_view) {}).is_ok());
    for (int i = 0; i < 3; ++i) QVERIFY((*ow)->append("old").has_value());
    QVERIFY((*ow)->sync(true).is_ok());
  }
  std::vector<uint64_t> lsns;
  auto ow = Wal::open(oo);
  QVERIFY((*ow)->replay([&](uint64_t lsn, std::string_view) { lsns.push_back(lsn); }).is_ok());
  QCOMPARE(lsns, (std::vector<uint64_t>{1, 2, 3}));
}

// A counter sample from the listener's line cache sums `count` lines: the router counts that
// many lines accepted (the interval's samples, logged as such) or rejected, not one.
void TestCollectorUnits::statsdRouterCountsTheLinesOfACachedCounter() {
  SeriesCatalog catalog(2);
  SelfMetrics metrics;
  ManualClock clock(1'800'000'010'000);
  StatsdRouter router(catalog, 2, metrics, IngestLimits{}, clock);
  auto sample = [](std::string metric, StatsdType type, double v, uint64_t lines, int64_t t) {
    StatsdSample s;
    s.metric = std::move(metric);
    s.type = type;
    s.value = v;
    s.count = lines;
    s.timestamp_s = t;
    return s;
  };
  std::vector<StatsdSample> in;
  in.push_back(sample("hits", StatsdType::kCounter, 70, 7, 1'800'000'000));
  in.push_back(sample("hits", StatsdType::kCounter, 1, 1, 1'800'000'000));
  in.push_back(sample("temp", StatsdType::kGauge, 5, 1, 1'800'000'000));
  in.push_back(sample("temp", StatsdType::kCounter, 30, 3, 1'800'000'000));  // kind conflict
  in.push_back(sample("hits", StatsdType::kCounter, 50, 5, 1'700'000'000));  // too old
  router(std::move(in));
  QCOMPARE(router.rejected(), uint64_t(3));
  QCOMPARE(metrics.points_rejected_old.load(), uint64_t(5));
  StatsdInterval iv = router.take();
  QCOMPARE(iv.samples, uint64_t(7 + 1 + 1));
  double hits = 0;
  for (const auto& w : iv.per_shard)
    for (const auto& p : w.counters) hits += p.value;
  QCOMPARE(hits, 71.0);
}

// The StatsD router sums counters, merges gauges and sketches per (series, second) until the
// ingest thread takes the interval; the record it is logged as reads back to the same work, in
// a fresh catalog too (replay after a restart).
void TestCollectorUnits::statsdIntervalAggregatesAndRecordRoundTrips() {
  SeriesCatalog catalog(2);
  SelfMetrics metrics;
  ManualClock clock(1'800'000'010'000);
  StatsdRouter router(catalog, 2, metrics, IngestLimits{}, clock);
  auto sample = [](std::string metric, StatsdType type, double v, int64_t t, std::string tag) {
    StatsdSample s;
    s.metric = std::move(metric);
    s.type = type;
    s.value = v;
    s.timestamp_s = t;
    s.tags = {{"host", std::move(tag)}};
    return s;
  };
  std::vector<StatsdSample> in;
  in.push_back(sample("hits", StatsdType::kCounter, 1, 1'800'000'000, "a"));
  in.push_back(sample("hits", StatsdType::kCounter, 2, 1'800'000'000, "a"));
  in.push_back(sample("hits", StatsdType::kCounter, 4, 1'800'000'001, "a"));
  in.push_back(sample("hits", StatsdType::kCounter, 8, 1'800'000'000, "b"));
  in.push_back(sample("temp", StatsdType::kGauge, 5, 1'800'000'000, "a"));
  in.push_back(sample("temp", StatsdType::kGauge, -1, 1'800'000'000, "a"));
  in.push_back(sample("temp", StatsdType::kGauge, 3, 1'800'000'000, "a"));
  in.push_back(sample("lat", StatsdType::kDistribution, 10, 1'800'000'000, "a"));
  in.push_back(sample("lat", StatsdType::kDistribution, 30, 1'800'000'000, "a"));
  in.push_back(sample("hits", StatsdType::kGauge, 1, 1'800'000'000, "a"));  // kind conflict
  uint64_t wake = 0;
  QCOMPARE(::read(router.wake_fd(), &wake, sizeof wake), ssize_t(-1));  // nothing gathered yet
  router(std::move(in));
  QCOMPARE(::read(router.wake_fd(), &wake, sizeof wake), ssize_t(sizeof wake));
  QCOMPARE(router.rejected(), uint64_t(1));
  StatsdInterval iv = router.take();
  QCOMPARE(iv.samples, uint64_t(9));
  QVERIFY(router.take().empty());

  // What the interval holds, keyed by metric, tag and second.
  using Row = std::tuple<std::string, std::string, int64_t>;
  auto flatten = [](const std::vector<ShardWork>& per_shard) {
    std::map<Row, std::vector<double>> out;
    size_t new_series = 0;
    for (const auto& w : per_shard) {
      new_series += w.new_series.size();
      for (const auto& p : w.counters)
        out[{std::string(p.series->metric()), std::string(p.series->tags()[0].value), p.time}]
            .push_back(p.value);
      for (const auto& p : w.gauges)
        out[{std::string(p.series->metric()), std::string(p.series->tags()[0].value), p.time}] = {
            p.last, p.min, p.max, p.sum, double(p.count)};
      for (const auto& p : w.dists)
        out[{std::string(p.series->metric()), std::string(p.series->tags()[0].value), p.time}] = {
            double(p.sketch.count()), p.sketch.sum()};
    }
    out[{"new_series", "", 0}] = {double(new_series)};
    return out;
  };
  const std::map<Row, std::vector<double>> want = {
      {{"hits", "a", 1'800'000'000}, {3}},    {{"hits", "a", 1'800'000'001}, {4}},
      {{"hits", "b", 1'800'000'000}, {8}},    {{"temp", "a", 1'800'000'000}, {3, -1, 5, 7, 3}},
      {{"lat", "a", 1'800'000'000}, {2, 40}}, {{"new_series", "", 0}, {4}},
  };
  QCOMPARE(flatten(iv.per_shard), want);

  const std::string payload = encode_statsd_record(iv.per_shard);
  std::vector<ShardWork> back;
  uint64_t points = 0;
  QVERIFY(decode_statsd_record(payload, catalog, &back, &points).is_ok());
  QCOMPARE(points, uint64_t(5));
  auto again = flatten(back);
  again[{"new_series", "", 0}] = {4};  // the catalog knew them already: none new on this read
  QCOMPARE(again, want);

  SeriesCatalog fresh(2);
  QVERIFY(decode_statsd_record(payload, fresh, &back, &points).is_ok());
  QCOMPARE(flatten(back), want);
  QCOMPARE(fresh.size(), size_t(4));
  QVERIFY(!decode_statsd_record("not a record", fresh, &back, &points).is_ok());
}

void TestCollectorUnits::storeMergesIntoStoredBuckets() {
  QTemporaryDir dir;
  auto res = *parse_retention("1s:1d,1m:30d");
  auto store = ShardStore::open((dir.path() + "/s.sqlite").toStdString(), res);
  QVERIFY(store.has_value());
  auto& s = **store;
  SeriesDef c{1, 0, 0, Kind::kCounter, "c", {}}, g{2, 0, 0, Kind::kGauge, "g", {}},
      d{3, 0, 0, Kind::kDistribution, "d", {}};
  BucketAgg a, b;
  a.add_counter(3);
  b.add_counter(4);
  BucketAgg ga, gb;
  ga.add_gauge(5, 1, 9, 15, 3);
  gb.add_gauge(2, 0.5, 4, 6, 3);
  BucketAgg da, db;
  Sketch s1, s2;
  for (int i = 1; i <= 100; ++i) (i % 2 ? s1 : s2).add(i);
  da.add_sketch(s1);
  db.add_sketch(s2);
  QVERIFY(s.begin().is_ok());
  for (auto* info : {&c, &g, &d}) QVERIFY(s.put_series(*info).is_ok());
  QVERIFY(s.merge_bucket(1, Kind::kCounter, 0, 100, a, 5, nullptr).is_ok());
  QVERIFY(s.merge_bucket(2, Kind::kGauge, 0, 100, ga, 5, nullptr).is_ok());
  QVERIFY(s.merge_bucket(3, Kind::kDistribution, 0, 100, da, 5, nullptr).is_ok());
  QVERIFY(s.commit().is_ok());
  QVERIFY(s.begin().is_ok());
  BucketAgg merged;
  QVERIFY(s.merge_bucket(1, Kind::kCounter, 0, 100, b, 9, &merged).is_ok());
  QCOMPARE(merged.sum, 7.0);
  QVERIFY(s.merge_bucket(2, Kind::kGauge, 0, 100, gb, 9, &merged).is_ok());
  QCOMPARE(merged.last, 2.0);
  QCOMPARE(merged.min, 0.5);
  QCOMPARE(merged.max, 9.0);
  QCOMPARE(merged.count, uint64_t(6));
  QVERIFY(s.merge_bucket(3, Kind::kDistribution, 0, 100, db, 9, &merged).is_ok());
  QCOMPARE(merged.count, uint64_t(100));
  QVERIFY(s.commit().is_ok());
  QCOMPARE(*s.stored_lsn(1, 0, 100), uint64_t(9));
  QCOMPARE(*s.stored_lsn(1, 0, 101), uint64_t(0));
  auto reader = s.acquire_reader();
  QVERIFY(reader.has_value());
  QVERIFY((*reader)->begin_snapshot().is_ok());
  std::vector<StoredBucket> rows;
  QVERIFY((*reader)->read(3, Kind::kDistribution, 0, 0, 1000, &rows).is_ok());
  (*reader)->end_snapshot();
  QCOMPARE(rows.size(), size_t(1));
  QCOMPARE(rows[0].agg.sketch->count(), uint64_t(100));
  QCOMPARE(rows[0].agg.sum, 5050.0);
  QCOMPARE(rows[0].agg.min, 1.0);
  QCOMPARE(rows[0].agg.max, 100.0);
  QVERIFY(std::abs(rows[0].agg.sketch->quantile(0.5) - 50) <= 1);
}

// The guard in front of the catalog: each limit folds a new combination into the metric's
// overflow series, existing series are found whatever the limits, the per-producer limit is per
// producer and per minute, and the counts say what happened.
void TestCollectorUnits::cardinalityGuardFoldsBeyondLimits() {
  SeriesCatalog catalog(2);
  SelfMetrics m;
  LiveLimitValues lv;
  lv.input.series_max_per_metric = 3;
  lv.input.series_max_total = 6;
  lv.input.series_max_new_per_minute = 4;
  LiveLimits live(lv);
  CardinalityGuard g(catalog, live, m);
  const int64_t t = 1'800'000'040;  // 40 s into a minute
  auto admit = [&](const std::string& metric, const std::string& v, uint64_t producer,
                   int64_t now) {
    auto a = g.admit(metric, {{"k", v}}, Kind::kCounter, producer, now);
    if (!a) qFatal("admit failed: %s", a.status().message().c_str());
    return *a;
  };
  for (int i = 0; i < 3; ++i) QVERIFY(admit("a", std::to_string(i), 1, t).created);
  auto folded = admit("a", "3", 1, t);  // per metric
  QVERIFY(folded.overflow && folded.created);
  QVERIFY(CardinalityGuard::is_overflow(*folded.series));
  QCOMPARE(folded.series->metric(), std::string_view("a"));
  QCOMPARE(admit("a", "4", 2, t).series, folded.series);  // the same overflow series
  auto old = admit("a", "0", 1, t);                       // existing: its own series
  QVERIFY(!old.overflow && !old.created);
  QCOMPARE(m.hits(Limit::kSeriesPerMetric), uint64_t(2));

  QVERIFY(admit("b", "0", 1, t).created);  // producer 1's fourth new series this minute
  auto rate = admit("b", "1", 1, t);       // its fifth: folded
  QVERIFY(rate.overflow);
  QCOMPARE(m.hits(Limit::kSeriesPerProducer), uint64_t(1));
  // The catalog now holds a0..a2, a's and b's overflow series and b0: 6, the total limit.
  QCOMPARE(catalog.size(), size_t(6));
  auto total = admit("c", "0", 2, t);  // another producer, but the collector is full
  QVERIFY(total.overflow && total.created);
  QCOMPARE(m.hits(Limit::kSeriesTotal), uint64_t(1));
  // Replay does not apply the per-producer limit; the next minute starts the count again.
  auto replayed = g.admit("b", {{"k", "2"}}, Kind::kCounter, 1, t, false);
  QVERIFY(replayed && replayed->overflow);  // still beyond the total
  QCOMPARE(g.admit("a", {{"k", "0"}}, Kind::kGauge, 1, t).status().code(),
           StatusCode::kInvalidArgument);

  auto snap = g.snapshot(t + 60);
  QCOMPARE(snap.overflow, uint64_t(5));
  QCOMPARE(snap.created, uint64_t(7));  // four within the limits, three overflow series
  QCOMPARE(snap.overflow_by_metric.front(), (std::pair<std::string, uint64_t>("a", 2)));
  QCOMPARE(snap.created_per_minute.size(), size_t(60));
  QCOMPARE(snap.created_per_minute.back().second, uint64_t(0));
  QCOMPARE(snap.created_per_minute[58], (std::pair<int64_t, uint64_t>(1'800'000'000 - 0, 7)));
  QVERIFY(g.to_prometheus().find("tally_series_overflow_total{metric=\"a\"} 2\n") !=
          std::string::npos);

  CatalogCardinality c = catalog.cardinality(2);
  QCOMPARE(c.series, size_t(7));
  QCOMPARE(c.metrics, size_t(3));
  QCOMPARE(c.top_metrics.size(), size_t(2));
  QCOMPARE(c.top_metrics[0].name, std::string("a"));
  QCOMPARE(c.top_metrics[0].series, size_t(4));
  QCOMPARE(c.top_tag_keys[0].key, std::string("k"));
  QCOMPARE(c.top_tag_keys[0].values, size_t(3));  // 0, 1, 2 (b0 shares "0")

  // Limits changed while running (a reload): raised, a new combination gets its series; lowered
  // below what a metric holds, its series are still found, only new combinations fold.
  lv.input.series_max_per_metric = 10;
  lv.input.series_max_total = 100;
  live.set(lv);
  QCOMPARE(g.limits().max_series_total, int64_t(100));
  auto raised = admit("a", "5", 2, t + 60);
  QVERIFY(raised.created && !raised.overflow);
  lv.input.series_max_per_metric = 1;
  live.set(lv);
  auto kept = admit("a", "1", 2, t + 60);
  QVERIFY(!kept.overflow && !kept.created);
  QCOMPARE(admit("a", "6", 2, t + 60).series, folded.series);
}

// The producer table's bound: idle producers go, then the least recently heard beyond the count
// (only among those idle for the minimum), from memory and from the file.
void TestCollectorUnits::producerTableForgetsIdleAndLeastRecent() {
  QTemporaryDir dir;
  const std::string path = (dir.path() + "/i.sqlite").toStdString();
  SeriesCatalog catalog(2);
  bool created = false;
  const SeriesInfo* s = *catalog.get_or_create("m", {}, Kind::kCounter, &created);
  {
    auto t = ProducerTable::open(path, catalog);
    QVERIFY(t.has_value());
    auto& table = **t;
    // Producer p last heard at 1000 + 10 p.
    for (uint64_t p = 1; p <= 6; ++p) {
      QVERIFY(table.add_refs(p, {{1, s}, {2, s}}).is_ok());
      table.mark_seen(p, 1);
      table.touch(p, 1000 + 10 * static_cast<int64_t>(p));
    }
    QVERIFY(table.save_sequences().is_ok());
    QCOMPARE(table.refs(), size_t(12));
    // At 1100 with idle 85 s: producers 1 (90 s) goes; 2..6 stay.
    QCOMPARE(table.forget(1100, 85, 100, 0).value(), size_t(1));
    QVERIFY(table.ref(1, 1) == nullptr);
    QVERIFY(!table.seen(1, 1));
    // Beyond a count of 3, but only producers idle for 45 s may go: 2 (80 s), 3 (70 s), 4 (60 s)
    // and 5 (50 s) could, the two least recent (2, 3) are enough.
    QCOMPARE(table.forget(1100, 3600, 3, 45).value(), size_t(2));
    QCOMPARE(table.producers(), size_t(3));
    QVERIFY(table.ref(4, 1) == s && table.ref(6, 2) == s);
    // Three left, the count holds: nothing goes.
    QCOMPARE(table.forget(1100, 3600, 3, 45).value(), size_t(0));
    // A count of 1 with a minimum idle time of 45 s: 4 and 5 go, 6 (40 s) stays.
    QCOMPARE(table.forget(1100, 3600, 1, 45).value(), size_t(2));
    QCOMPARE(table.producers(), size_t(1));
  }
  auto reopened = ProducerTable::open(path, catalog);
  QVERIFY(reopened.has_value());
  QCOMPARE((*reopened)->producers(), size_t(1));
  QVERIFY((*reopened)->ref(6, 1) == s);
  QVERIFY((*reopened)->seen(6, 1));
  QVERIFY((*reopened)->ref(2, 1) == nullptr);
}

void TestCollectorUnits::catalogInternsStringsAndKeepsRecords() {
  SeriesCatalog catalog(2);
  std::vector<const SeriesInfo*> made;
  for (int i = 0; i < 20000; ++i) {
    bool created = false;
    auto s = catalog.get_or_create(
        "req", {{"code", std::to_string(200 + i % 5)}, {"host", "h" + std::to_string(i)}},
        Kind::kCounter, &created);
    QVERIFY(s.has_value());
    QVERIFY(created);
    made.push_back(*s);
  }
  bool created = true;
  auto g = catalog.get_or_create("temp", {{"host", "h7"}}, Kind::kGauge, &created);
  QVERIFY(g.has_value() && created);
  // "req", "temp", "code", "host", 5 codes and 20000 hosts, each once.
  QCOMPARE(catalog.interned_strings(), size_t(2 + 2 + 5 + 20000));
  QCOMPARE(catalog.size(), size_t(20001));
  // Records do not move and read back what they were made from, after every later insertion.
  const SeriesInfo* first = made.front();
  QCOMPARE(first->metric(), std::string_view("req"));
  QCOMPARE(first->tags().materialize(), (Tags{{"code", "200"}, {"host", "h0"}}));
  QVERIFY(first->tags() == (Tags{{"code", "200"}, {"host", "h0"}}));
  QVERIFY(!(first->tags() == (Tags{{"code", "200"}})));
  QCOMPARE(first->def().metric, std::string("req"));
  QCOMPARE((*g)->tags()[0].value, std::string_view("h7"));
  auto again =
      catalog.get_or_create("req", {{"code", "200"}, {"host", "h0"}}, Kind::kCounter, &created);
  QVERIFY(again.has_value() && !created);
  QCOMPARE(*again, first);
  QCOMPARE(catalog.by_id(first->id), first);
  QCOMPARE(catalog.by_id(made.back()->id), made.back());
  QVERIFY(catalog.by_id(999999) == nullptr);
  QVERIFY(!catalog.find("req", {{"code", "200"}}, Kind::kCounter).has_value());
  QCOMPARE(catalog.find("req", {{"code", "204"}, {"host", "h19999"}}, Kind::kCounter).value(),
           made.back());
  QCOMPARE(catalog.get_or_create("req", {}, Kind::kGauge, &created).status().code(),
           StatusCode::kInvalidArgument);
  QCOMPARE(catalog.series_of("req").size(), size_t(20000));
  QCOMPARE(*catalog.kind_of("temp"), Kind::kGauge);
  // Slots are dense per shard and kind: each shard's counters are 0..n-1, the gauge is 0.
  std::vector<std::set<uint32_t>> used_slots(2);
  for (const auto* s : made) {
    QCOMPARE(s->shard, catalog.shard_of(s->hash));
    QCOMPARE(s->hash, series_hash(series_key(s->metric(), s->tags().materialize())));
    used_slots[s->shard].insert(s->slot);
  }
  for (const auto& sl : used_slots) QCOMPARE(size_t(*sl.rbegin() + 1), sl.size());
  QCOMPARE((*g)->slot, uint32_t(0));
}

void TestCollectorUnits::catalogRestoresIdsWithGaps() {
  SeriesCatalog catalog(1);
  for (uint64_t id : {7, 3, 100000}) {
    SeriesDef d{id, 0, 0, Kind::kCounter, "m", {{"id", std::to_string(id)}}};
    d.hash = series_hash(series_key(d.metric, d.tags));
    QVERIFY(catalog.restore(d).is_ok());
    QVERIFY(catalog.restore(d).is_ok());  // a known id is left as it is
  }
  QCOMPARE(catalog.size(), size_t(3));
  QCOMPARE(catalog.by_id(3)->tags()[0].value, std::string_view("3"));
  QVERIFY(catalog.by_id(4) == nullptr);
  bool created = false;
  auto s = catalog.get_or_create("m", {{"id", "new"}}, Kind::kCounter, &created);
  QVERIFY(s.has_value() && created);
  QCOMPARE((*s)->id, uint64_t(100001));  // after the highest restored id
  QCOMPARE(catalog.find("m", {{"id", "7"}}, Kind::kCounter).value(), catalog.by_id(7));
  QVERIFY(!catalog.restore(SeriesDef{0, 1, 0, Kind::kCounter, "m", {}}).is_ok());
}

// Idle-series expiry, the catalog's part (catalog.h): unlinked series stop counting, come back as
// the same record, and once released, durable and reclaimed twice (no reader) their records,
// strings and slots are freed and used again; the hash index still finds every other series
// (entries after a removed one move back); a key that comes back after it was freed gets the id
// storage has for it.
void TestCollectorUnits::catalogExpiryFreesEverythingAndKeysComeBack() {
  SeriesCatalog catalog(2);
  constexpr int kN = 3000;
  std::vector<const SeriesInfo*> all;
  bool created = false;
  for (int i = 0; i < kN; ++i) {
    auto s =
        catalog.get_or_create("x", {{"req", "r" + std::to_string(i)}}, Kind::kCounter, &created);
    QVERIFY(s.has_value() && created);
    all.push_back(*s);
  }
  const size_t strings = catalog.interned_strings();
  QCOMPARE(strings, size_t(kN + 2));  // x, req, and each value
  const int64_t now = SystemClock::instance().now_s();
  for (int i = 0; i < kN; i += 2) SeriesCatalog::touch(all[i], now + 100);  // even ones stay
  auto gone = catalog.unlink_idle(now + 50);
  QCOMPARE(gone.size(), size_t(kN / 2));
  QCOMPARE(catalog.size(), size_t(kN / 2));
  QCOMPARE(catalog.expiring(), size_t(kN / 2));
  QVERIFY(!catalog.find("x", {{"req", "r1"}}, Kind::kCounter).has_value());
  // r1 comes back before it is released: the same record, and the shard must learn it again.
  auto back = catalog.get_or_create("x", {{"req", "r1"}}, Kind::kCounter, &created);
  QVERIFY(back.has_value() && created && *back == all[1]);
  QVERIFY(!catalog.try_release(all[1]));
  std::vector<uint64_t> ids;
  for (const SeriesInfo* s : gone) {
    if (s == all[1]) continue;
    QVERIFY(catalog.try_release(s));
    ids.push_back(s->id);
  }
  catalog.mark_durable(ids);
  QCOMPARE(catalog.take_durable().size(), ids.size());
  QCOMPARE(catalog.reclaim(), size_t(0));  // detached now; freed once no reader can hold them
  QVERIFY(catalog.by_id(all[3]->id) == nullptr);
  QCOMPARE(catalog.series_of("x").size(), size_t(kN / 2 + 1));
  QCOMPARE(catalog.reclaim(), ids.size());
  QCOMPARE(catalog.expiring(), size_t(0));
  QCOMPARE(catalog.interned_strings(), strings - ids.size());
  for (int i = 0; i < kN; i += 2)
    QCOMPARE(catalog.find("x", {{"req", "r" + std::to_string(i)}}, Kind::kCounter).value(), all[i]);
  // A freed key comes back with the id storage has for it; a new key reuses a freed slot.
  catalog.set_stored_lookup([](uint32_t, std::string_view, const Tags& tags, Kind) {
    return tags[0].value == "r3" ? std::optional<uint64_t>(4) : std::nullopt;
  });
  auto r3 = catalog.get_or_create("x", {{"req", "r3"}}, Kind::kCounter, &created);
  QVERIFY(r3.has_value() && created);
  QCOMPARE((*r3)->id, uint64_t(4));
  QCOMPARE(catalog.revived(), uint64_t(2));
  auto fresh = catalog.get_or_create("x", {{"req", "new"}}, Kind::kCounter, &created);
  QVERIFY(fresh.has_value() && created);
  QCOMPARE((*fresh)->id, uint64_t(kN + 1));
  QVERIFY((*fresh)->slot < uint32_t(kN / 2 + 3));  // a freed slot, not a new one
  QCOMPARE(catalog.size(), size_t(kN / 2 + 3));
}

void TestCollectorUnits::catalogPinKeepsExpiredRecords() {
  SeriesCatalog catalog(1);
  bool created = false;
  const SeriesInfo* s = *catalog.get_or_create("p", {{"k", "v"}}, Kind::kGauge, &created);
  const uint64_t id = s->id;
  auto pin = catalog.pin();
  QCOMPARE(catalog.unlink_idle(SystemClock::instance().now_s() + 10).size(), size_t(1));
  QVERIFY(catalog.try_release(s));
  catalog.mark_durable({id});
  for (int i = 0; i < 5; ++i) QCOMPARE(catalog.reclaim(), size_t(0));  // the pin holds it
  QCOMPARE(s->id, id);
  QCOMPARE(s->tags()[0].value, std::string_view("v"));
  pin = SeriesCatalog::Pin();
  size_t freed = 0;
  for (int i = 0; i < 3; ++i) freed += catalog.reclaim();
  QCOMPARE(freed, size_t(1));
  QCOMPARE(catalog.interned_strings(), size_t(0));
}

namespace {

// One shard over the default resolutions with a manual clock; FINAL and CORRECTION updates are
// collected from its final sink. Its thread wakes only for work (every send() carries a point of
// the "tick" series at the clock's second), so it applies a batch before it flushes at the new
// clock, whatever the timing.
struct OneShard {
  static constexpr int64_t kT0 = 1'800'000'000 - 1'800'000'000 % 3600;  // an hour boundary
  QTemporaryDir dir;
  ManualClock clock{kT0 * 1000};
  SelfMetrics metrics;
  std::vector<Resolution> res = *parse_retention(kDefaultRetention);
  SeriesCatalog catalog{1};
  std::unique_ptr<Shard> shard;
  std::unique_ptr<Router> router;
  std::mutex mu;
  std::vector<wire::LiveUpdate> finals;  // GUARDED_BY(mu)
  uint64_t lsn = 0;

  explicit OneShard(int64_t checkpoint_s = 1 << 30) {
    auto store = ShardStore::open((dir.path() + "/shard.sqlite").toStdString(), res);
    ShardOptions o;
    o.resolutions = res;
    o.tick_ms = 3'600'000;
    o.retention_every_s = 1 << 30;
    o.checkpoint_every_s = checkpoint_s;
    shard = std::make_unique<Shard>(o, std::move(*store), clock, nullptr, metrics);
    shard->set_final_sink([this](const std::vector<wire::LiveUpdate>& u) {
      std::lock_guard lock(mu);
      finals.insert(finals.end(), u.begin(), u.end());
    });
    router = std::make_unique<Router>(std::vector<Shard*>{shard.get()});
    shard->start();
  }
  ~OneShard() { shard->stop(); }
  const SeriesInfo* series(const std::string& metric, Kind kind) {
    bool created = false;
    return *catalog.get_or_create(metric, {{"k", "v"}}, kind, &created);
  }
  // Points (series, time, value) with the clock at now_s; returns once they are applied.
  void send(int64_t now_s,
            const std::vector<std::tuple<const SeriesInfo*, int64_t, double>>& points) {
    clock.set_ms(now_s * 1000);
    std::vector<ShardWork> work(1);
    auto all = points;
    all.emplace_back(series("tick", Kind::kCounter), now_s, 1);
    for (const auto& [info, t, v] : all) {
      work[0].new_series.push_back(info);
      if (info->kind == Kind::kCounter)
        work[0].counters.push_back({info, t, v});
      else if (info->kind == Kind::kGauge)
        work[0].gauges.push_back({info, t, v, v, v, v, 1});
      else {
        Sketch sk;
        sk.add(v);
        work[0].dists.push_back({info, t, sk});
      }
    }
    router->route(std::move(work), ++lsn);
    while (shard->applied_lsn() < lsn || shard->queue_depth() > 0) QThread::usleep(50);
  }
  // Stored (+) open buckets of one series at resolution r.
  std::vector<StoredBucket> read(const SeriesInfo* info, size_t r, int64_t from, int64_t to) {
    std::vector<std::vector<StoredBucket>> out;
    int64_t wm = 0;
    if (!shard->read({info}, r, from, to, &out, &wm).is_ok()) return {};
    return out[0];
  }
  double counter_sum(const SeriesInfo* info, size_t r, int64_t from, int64_t to) {
    const int64_t step = res[r].step_s;
    StepGrid g{bucket_start(from, step), bucket_start(to + step - 1, step), step};
    std::vector<double> out(g.steps(), 0);
    int64_t wm = 0;
    if (!shard->add_counter_sums({info}, {0}, r, g, out.data(), &wm).is_ok()) return -1;
    double total = 0;
    for (double v : out) total += v;
    return total;
  }
  std::vector<wire::LiveUpdate> finals_of(int64_t time) {
    std::lock_guard lock(mu);
    std::vector<wire::LiveUpdate> out;
    for (const auto& u : finals)
      if (u.time() == time && u.metric() != "tick") out.push_back(u);
    return out;
  }
  bool wait_for(const std::function<bool()>& done) {
    return tally::testing::eventually(done, 5000, 1);  // tests/support/eventually.h
  }
};

}  // namespace

// A series one path created (a StatsD interval not yet logged and routed) can be used by another
// (an SDK batch, whose decode found it in the catalog and so did not list it as new): the shard
// takes the point and the series instead of dropping it.
void TestCollectorUnits::pointOfASeriesNotHandedOverYetIsKept() {
  OneShard s;
  const int64_t t = OneShard::kT0 + 5;
  s.send(t, {});
  const SeriesInfo* info = s.series("shared.hits", Kind::kCounter);
  std::vector<ShardWork> work(1);
  work[0].counters.push_back({info, t, 7});  // no new_series
  s.router->route(std::move(work), ++s.lsn);
  QVERIFY(s.wait_for([&] { return s.shard->applied_lsn() >= s.lsn; }));
  QCOMPARE(s.counter_sum(info, 0, t - 10, t + 10), 7.0);
  // Handed over later, by the path that created it: nothing doubles.
  std::vector<ShardWork> late(1);
  late[0].new_series.push_back(info);
  late[0].counters.push_back({info, t, 1});
  s.router->route(std::move(late), ++s.lsn);
  QVERIFY(s.wait_for([&] { return s.shard->applied_lsn() >= s.lsn; }));
  QCOMPARE(s.counter_sum(info, 0, t - 10, t + 10), 8.0);
}

void TestCollectorUnits::windowBoundariesAtEveryResolution_data() {
  QTest::addColumn<int>("resolution");
  const char* names[] = {"1 s", "10 s", "1 m", "1 h"};
  for (int r = 0; r < 4; ++r) QTest::newRow(names[r]) << r;
}

// Points on both sides of every bucket edge land in the right bucket, exactly, while the
// windows are open and after they are final and stored; gauges and distributions too.
void TestCollectorUnits::windowBoundariesAtEveryResolution() {
  QFETCH(int, resolution);
  OneShard f;
  const size_t r = static_cast<size_t>(resolution);
  const int64_t step = f.res[r].step_s;
  const int64_t t0 = OneShard::kT0;
  const SeriesInfo* c = f.series("c", Kind::kCounter);
  const SeriesInfo* g = f.series("g", Kind::kGauge);
  const SeriesInfo* d = f.series("d", Kind::kDistribution);
  // Times relative to t0 and the value each carries (powers of two: any mix-up shows).
  const std::vector<std::pair<int64_t, double>> pts = {
      {-1, 1}, {0, 2}, {step - 1, 4}, {step, 8}, {2 * step - 1, 16}, {2 * step, 32}};
  std::vector<std::tuple<const SeriesInfo*, int64_t, double>> send;
  for (const auto& [dt, v] : pts)
    for (const auto* s : {c, g, d}) send.emplace_back(s, t0 + dt, v);
  f.send(t0, send);  // every point's bucket is still open (none ends before the watermark, t0 - 2)
  auto expect = [&](const char* when) {
    const auto got = f.read(c, r, t0 - step, t0 + 3 * step);
    QVERIFY2(got.size() == 4, when);
    const double want[] = {1, 2 + 4, 8 + 16, 32};
    for (size_t i = 0; i < 4; ++i) {
      QCOMPARE(got[i].time, t0 - step + static_cast<int64_t>(i) * step);
      QCOMPARE(got[i].agg.sum, want[i]);
    }
    QCOMPARE(f.counter_sum(c, r, t0 - step, t0 + 3 * step), 63.0);
    const auto gg = f.read(g, r, t0 - step, t0 + 3 * step);
    QVERIFY2(gg.size() == 4, when);
    QCOMPARE(gg[1].agg.count, uint64_t(2));
    QCOMPARE(gg[1].agg.min, 2.0);
    QCOMPARE(gg[1].agg.max, 4.0);
    QCOMPARE(gg[1].agg.last, 4.0);
    QCOMPARE(gg[1].agg.sum, 6.0);
    const auto dd = f.read(d, r, t0 - step, t0 + 3 * step);
    QVERIFY2(dd.size() == 4, when);
    QCOMPARE(dd[2].agg.count, uint64_t(2));
    QVERIFY(dd[2].agg.sketch != nullptr);
    QCOMPARE(dd[2].agg.sketch->count(), uint64_t(2));
  };
  expect("open");
  // Past every bucket's end (plus lateness): all final and stored; reads answer the same.
  f.send(t0 + 4 * step + 3, {});
  // One flush writes every due window at every resolution; the last second's FINALs follow it.
  QVERIFY(f.wait_for([&] { return f.finals_of(t0 + 2 * step).size() == 3; }));
  expect("final");
}

// A point for a bucket the watermark has passed merges into the window while it is still in
// memory (its FINAL includes it); once the window is written, another becomes a CORRECTION.
void TestCollectorUnits::latePointIntoOpenThenFinalWindow() {
  OneShard f;
  const int64_t t0 = OneShard::kT0 + 100;
  const SeriesInfo* c = f.series("late.c", Kind::kCounter);
  const SeriesInfo* g = f.series("late.g", Kind::kGauge);
  f.send(t0, {{c, t0, 1}, {g, t0, 5}});
  // Same batch: the clock has moved past t0's end, but the window is only finalised after it.
  f.send(t0 + 3, {{c, t0, 2}, {g, t0, 7}});
  QVERIFY(f.wait_for([&] { return f.finals_of(t0).size() == 2; }));
  for (const auto& u : f.finals_of(t0)) {
    QCOMPARE(u.state(), wire::LiveUpdate::FINAL);
    QCOMPARE(u.value(), u.metric() == "late.c" ? 3.0 : 7.0);
  }
  // Not late: the bucket was not final yet when they came (tally_late_points_total counts points
  // for buckets already written as final).
  QCOMPARE(f.metrics.late_points.load(), uint64_t(0));
  f.send(t0 + 4, {{c, t0, 4}, {g, t0, 1}});
  QVERIFY(f.wait_for([&] { return f.finals_of(t0).size() == 4; }));
  for (const auto& u : f.finals_of(t0)) {
    if (u.state() != wire::LiveUpdate::CORRECTION) continue;
    if (u.metric() == "late.c") {
      QCOMPARE(u.value(), 7.0);
      QCOMPARE(u.added_sum(), 4.0);
    } else {
      QCOMPARE(u.value(), 1.0);  // the later arrival's last
      QCOMPARE(u.min(), 1.0);
      QCOMPARE(u.max(), 7.0);
      QCOMPARE(u.count(), uint64_t(3));
    }
  }
  QCOMPARE(f.metrics.late_points.load(), uint64_t(2));
  for (size_t r = 0; r < 4; ++r) {
    QCOMPARE(f.counter_sum(c, r, t0 - 7200, t0 + 7200), 7.0);
    const auto gg = f.read(g, r, t0 - 7200, t0 + 7200);
    QCOMPARE(gg.size(), size_t(1));
    QCOMPARE(gg[0].agg.count, uint64_t(3));
  }
  // A late point while its coarser windows are still open: 1 s is final, 1 h is not.
  f.send(t0 + 10, {{c, t0, 8}});
  for (size_t r = 0; r < 4; ++r) QCOMPARE(f.counter_sum(c, r, t0 - 7200, t0 + 7200), 15.0);
}

// A checkpoint writes every open window as a partial bucket and records safe_lsn; later points
// for the same buckets open new windows; reads count each point exactly once throughout.
void TestCollectorUnits::checkpointWritesOpenWindowsOnce() {
  OneShard f(1);
  const int64_t t0 = OneShard::kT0 + 200;
  const SeriesInfo* c = f.series("cp.c", Kind::kCounter);
  const SeriesInfo* d = f.series("cp.d", Kind::kDistribution);
  auto check = [&](double c_sum, uint64_t d_count, double d_sum) {
    for (size_t r = 0; r < 4; ++r) {
      QCOMPARE(f.counter_sum(c, r, t0 - 7200, t0 + 7200), c_sum);
      const auto dd = f.read(d, r, t0 - 7200, t0 + 7200);
      QCOMPARE(dd.size(), size_t(1));
      QCOMPARE(dd[0].agg.count, d_count);
      QCOMPARE(dd[0].agg.sum, d_sum);
      QVERIFY(dd[0].agg.sketch);  // the sketch holds every value too, not only the totals
      QCOMPARE(dd[0].agg.sketch->count(), d_count);
      QCOMPARE(dd[0].agg.sketch->sum(), d_sum);
    }
  };
  // The first flush is a checkpoint (the last one was at start, 200 s ago): it writes the open
  // windows as partial buckets and drops them from memory.
  f.send(t0, {{c, t0, 3}, {d, t0, 10}});
  QVERIFY(f.wait_for([&] { return f.shard->safe_lsn() >= f.lsn; }));
  check(3, 1, 10);
  // New windows for the same buckets: stored partial (+) open.
  f.send(t0, {{c, t0, 4}, {d, t0, 20}});
  check(7, 2, 30);
  const uint64_t before = f.lsn;
  f.send(
      t0 + 1,
      {});  // a second later: the next checkpoint; t0 is still open (its end + lateness is t0 + 3)
  QVERIFY(f.wait_for([&] { return f.shard->safe_lsn() > before; }));
  check(7, 2, 30);
  f.send(t0 + 1, {{c, t0, 5}});
  check(12, 2, 30);
  QVERIFY(f.finals_of(t0).empty());
  // Final: each series is published once with its merged value (stored partials + what arrived
  // since), the distribution too, although no point reached it after the last checkpoint wrote it
  // (a live subscriber and the remote-write forwarder rely on every bucket's FINAL).
  f.send(t0 + 4, {});
  QVERIFY(f.wait_for([&] { return f.finals_of(t0).size() == 2; }));
  auto finals = f.finals_of(t0);
  std::sort(finals.begin(), finals.end(),
            [](const auto& a, const auto& b) { return a.metric() < b.metric(); });
  QCOMPARE(finals[0].state(), wire::LiveUpdate::FINAL);
  QCOMPARE(finals[0].metric(), std::string("cp.c"));
  QCOMPARE(finals[0].sum(), 12.0);
  QCOMPARE(finals[1].state(), wire::LiveUpdate::FINAL);
  QCOMPARE(finals[1].metric(), std::string("cp.d"));
  QCOMPARE(finals[1].count(), uint64_t(2));
  QCOMPARE(finals[1].sum(), 30.0);
  check(12, 2, 30);
  f.send(t0 + 6, {});
  QVERIFY(f.wait_for([&] { return f.shard->applied_lsn() >= f.lsn; }));
  QCOMPARE(f.finals_of(t0).size(), size_t(2));  // and only once
}

// A bucket a checkpoint writes while it is open, and that gets no point after, is still published
// FINAL once, with its whole value; PARTIALs stop for it after the checkpoint (the window holds
// only what arrived since), and none carries a partial value as the bucket's.
void TestCollectorUnits::checkpointedBucketStillGetsItsFinal() {
  OneShard f(1);
  const int64_t t0 = OneShard::kT0 + 300;
  const SeriesInfo* c = f.series("cpf.c", Kind::kCounter);
  const SeriesInfo* g = f.series("cpf.g", Kind::kGauge);
  f.send(t0, {{c, t0, 5}, {g, t0, 7}});
  QVERIFY(f.wait_for([&] { return f.shard->safe_lsn() >= f.lsn; }));  // a checkpoint wrote both
  f.send(t0 + 3, {});  // the watermark (t0 + 3 - 2) passes t0's end
  QVERIFY(f.wait_for([&] { return f.finals_of(t0).size() == 2; }));
  auto finals = f.finals_of(t0);
  std::sort(finals.begin(), finals.end(),
            [](const auto& a, const auto& b) { return a.metric() < b.metric(); });
  QCOMPARE(finals[0].metric(), std::string("cpf.c"));
  QCOMPARE(finals[0].sum(), 5.0);
  QCOMPARE(finals[1].metric(), std::string("cpf.g"));
  QCOMPARE(finals[1].count(), uint64_t(1));
  QCOMPARE(finals[1].value(), 7.0);  // a gauge's last
  for (size_t r = 0; r < 4; ++r) QCOMPARE(f.counter_sum(c, r, t0 - 7200, t0 + 7200), 5.0);
}

namespace {
wire::Batch header_test_batch() {
  wire::Batch b;
  b.set_producer_id(0xFEEDFACECAFEBEEFull);
  b.set_seq(300);
  for (uint32_t r = 0; r < 3; ++r) {
    auto* d = b.add_defs();
    d->set_ref(r);
    d->set_metric("hdr.metric");
    auto* t = d->add_tags();
    t->set_key("k");
    t->set_value(std::to_string(r));
    d->set_kind(wire::COUNTER);
  }
  for (uint32_t r = 0; r < 3; ++r) {
    b.mutable_counters()->add_refs(r);
    b.mutable_counters()->add_times(1'700'000'000);
    b.mutable_counters()->add_values(r + 1.0);
  }
  b.set_sent_unix_ms(5);
  return b;
}
}  // namespace

// (producer, seq) read by walking the fields: first, last, repeated (the last wins), absent.
void TestCollectorUnits::batchHeaderWithoutDecoding_data() {
  QTest::addColumn<QByteArray>("frame");
  QTest::addColumn<bool>("ok");
  QTest::addColumn<quint64>("producer");
  QTest::addColumn<quint64>("seq");
  const std::string normal = header_test_batch().SerializeAsString();
  QTest::newRow("as the SDK writes it") << QByteArray::fromStdString(normal) << true
                                        << quint64(0xFEEDFACECAFEBEEFull) << quint64(300);
  wire::Batch tail;  // fields appended later win, as in a decode
  tail.set_seq(301);
  const std::string appended = normal + tail.SerializeAsString();
  QTest::newRow("seq appended at the end") << QByteArray::fromStdString(appended) << true
                                           << quint64(0xFEEDFACECAFEBEEFull) << quint64(301);
  wire::Batch head = header_test_batch();
  head.clear_producer_id();
  head.clear_seq();
  wire::Batch ids;
  ids.set_producer_id(7);
  ids.set_seq(9);
  QTest::newRow("header fields last")
      << QByteArray::fromStdString(head.SerializeAsString() + ids.SerializeAsString()) << true
      << quint64(7) << quint64(9);
  QTest::newRow("no header") << QByteArray::fromStdString(head.SerializeAsString()) << true
                             << quint64(0) << quint64(0);
  QTest::newRow("truncated") << QByteArray::fromStdString(normal.substr(0, normal.size() - 3))
                             << false << quint64(0) << quint64(0);
  QTest::newRow("garbage") << QByteArray("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11)
                           << false << quint64(0) << quint64(0);
  QTest::newRow("empty") << QByteArray() << true << quint64(0) << quint64(0);
}

void TestCollectorUnits::batchHeaderWithoutDecoding() {
  QFETCH(QByteArray, frame);
  QFETCH(bool, ok);
  QFETCH(quint64, producer);
  QFETCH(quint64, seq);
  auto h = peek_batch_header(frame.constData(), static_cast<size_t>(frame.size()));
  QCOMPARE(h.has_value(), ok);
  if (!h) return;
  QCOMPARE(quint64(h->producer_id), producer);
  QCOMPARE(quint64(h->seq), seq);
  wire::Batch full;  // the walk agrees with a full decode whenever both succeed
  if (full.ParseFromArray(frame.constData(), frame.size())) {
    QCOMPARE(quint64(full.producer_id()), producer);
    QCOMPARE(quint64(full.seq()), seq);
  }
}

// Definitions of refs the collector holds are left out; everything else decodes as before.
void TestCollectorUnits::knownDefinitionsAreCutBeforeDecoding() {
  const wire::Batch b = header_test_batch();
  const std::string frame = b.SerializeAsString();
  size_t dropped = 99;
  auto none = strip_known_defs(
      frame.data(), frame.size(), [](uint32_t) { return false; }, &dropped);
  QVERIFY(!none.has_value());  // nothing known: the frame is used as it is
  QCOMPARE(dropped, size_t(0));
  for (auto known :
       {std::set<uint32_t>{1}, std::set<uint32_t>{0, 2}, std::set<uint32_t>{0, 1, 2}}) {
    auto cut = strip_known_defs(
        frame.data(), frame.size(), [&](uint32_t r) { return known.contains(r); }, &dropped);
    QVERIFY(cut.has_value());
    QCOMPARE(dropped, known.size());
    wire::Batch got;
    QVERIFY(got.ParseFromString(*cut));
    QCOMPARE(got.defs_size(), int(3 - known.size()));
    for (const auto& d : got.defs()) QVERIFY(!known.contains(d.ref()));
    wire::Batch want = b;
    want.clear_defs();
    got.clear_defs();
    QCOMPARE(got.SerializeAsString(), want.SerializeAsString());
  }
  const std::string bad = frame.substr(0, frame.size() - 3);  // cuts into the packed values
  QVERIFY(!strip_known_defs(
      bad.data(), bad.size(), [](uint32_t) { return true; }, &dropped));
}

// The interval logic alone: a start continues the last interval after a gap of at most
// kMergeGapMs, extend never moves an end back, trim drops what ended before the bound and then
// the oldest beyond the cap, and overlap is on shared time (touching an end is not covered).
void TestCollectorUnits::coverageIntervalsMergeCapAndBound() {
  using I = CoverageInterval;
  CoverageSet s;
  s.extend(5);  // nothing to extend
  QVERIFY(s.empty());
  s.begin(1000, 2000);
  s.extend(4000);
  s.extend(3000);  // never backwards
  QCOMPARE(s.intervals(), (std::vector<I>{{1000, 4000}}));
  s.begin(6000, 2000);  // 2 s after the end: the same interval
  QCOMPARE(s.intervals(), (std::vector<I>{{1000, 6000}}));
  s.begin(8001, 2000);  // 2.001 s: a gap
  s.extend(9000);
  QCOMPARE(s.intervals(), (std::vector<I>{{1000, 6000}, {8001, 9000}}));
  s.begin(8500, 2000);  // a clock that stepped back continues the last one
  QCOMPARE(s.intervals(), (std::vector<I>{{1000, 6000}, {8001, 9000}}));

  QVERIFY(s.overlaps(0, 1001));
  QVERIFY(!s.overlaps(0, 1000));     // ends where the interval starts
  QVERIFY(!s.overlaps(6000, 8001));  // starts where one ends, ends where the next starts
  QVERIFY(s.overlaps(5999, 6000));
  QVERIFY(s.overlaps(7000, 20000));
  QVERIFY(!s.overlaps(9000, 20000));
  QVERIFY(!s.overlaps(3000, 3000));  // empty
  QCOMPARE(s.within(2000, 8500), (std::vector<I>{{2000, 6000}, {8001, 8500}}));
  QCOMPARE(s.within(6000, 8001), (std::vector<I>{}));

  // Unsorted and overlapping input is merged.
  CoverageSet m({{50, 60}, {10, 20}, {15, 30}, {30, 40}, {70, 69}});
  QCOMPARE(m.intervals(), (std::vector<I>{{10, 40}, {50, 60}}));

  // Bounds: the age bound first, then the cap keeps the newest.
  CoverageSet many;
  for (int64_t k = 0; k < 10; ++k) {
    many.begin(k * 10000, 2000);
    many.extend(k * 10000 + 1000);
  }
  QCOMPARE(many.trim(25000, 100), size_t(3));  // ended at 1000, 11000, 21000
  QCOMPARE(many.intervals().front(), (I{30000, 31000}));
  QCOMPARE(many.trim(0, 4), size_t(3));
  QCOMPARE(many.intervals(),
           (std::vector<I>{{60000, 61000}, {70000, 71000}, {80000, 81000}, {90000, 91000}}));
}

// On disk: start writes the interval's beginning, each heartbeat its end; a store that goes away
// without finish() (a kill -9) leaves the end of the last heartbeat; finish() writes the exact end;
// a start within kMergeGapMs of the last end continues it.
void TestCollectorUnits::coverageRecordEndsAtTheLastHeartbeatAfterACrash() {
  QTemporaryDir dir;
  const std::string path = (dir.path() + "/coverage.sqlite").toStdString();
  ManualClock clock(1'800'000'000'000);
  const int64_t t = clock.now_ms();
  SelfMetrics metrics;
  CoverageStoreOptions o;
  o.path = path;
  o.heartbeat_ms = 3'600'000;  // the test beats by hand
  using I = CoverageInterval;
  {
    bool existed = true;
    auto store = CoverageStore::open(o, clock, metrics, &existed);
    QVERIFY(store);
    QVERIFY(!existed);
    QVERIFY((*store)->start().is_ok());
    clock.advance_ms(2000);
    QVERIFY((*store)->heartbeat().is_ok());
    clock.advance_ms(2000);
    QVERIFY((*store)->heartbeat().is_ok());
    clock.advance_ms(1500);
    // Running: the snapshot ends now.
    QCOMPARE((*store)->snapshot().intervals(), (std::vector<I>{{t, t + 5500}}));
  }  // gone without finish(): a kill -9
  {
    bool existed = false;
    auto store = CoverageStore::open(o, clock, metrics, &existed);
    QVERIFY(store);
    QVERIFY(existed);
    QCOMPARE((*store)->snapshot().intervals(), (std::vector<I>{{t, t + 4000}}));
    clock.set_ms(t + 10000);
    QVERIFY((*store)->start().is_ok());
    clock.set_ms(t + 12000);
    QVERIFY((*store)->finish().is_ok());
    QVERIFY((*store)->finish().is_ok());  // idempotent
    clock.set_ms(t + 20000);              // stopped: the snapshot does not run on
    QCOMPARE((*store)->snapshot().intervals(),
             (std::vector<I>{{t, t + 4000}, {t + 10000, t + 12000}}));
  }
  {
    auto store = CoverageStore::open(o, clock, metrics);
    QVERIFY(store);
    QCOMPARE((*store)->snapshot().intervals(),
             (std::vector<I>{{t, t + 4000}, {t + 10000, t + 12000}}));
    clock.set_ms(t + 13500);  // 1.5 s after the last end: continues it
    QVERIFY((*store)->start().is_ok());
    clock.set_ms(t + 14000);
    QVERIFY((*store)->finish().is_ok());
  }
  auto store = CoverageStore::open(o, clock, metrics);
  QVERIFY(store);
  QCOMPARE((*store)->snapshot().intervals(),
           (std::vector<I>{{t, t + 4000}, {t + 10000, t + 14000}}));
  QCOMPARE(metrics.coverage_write_errors.load(), uint64_t(0));
}

void TestCollectorUnits::coverageRecordOfANewerTallyIsRefused() {
  QTemporaryDir dir;
  const std::string path = (dir.path() + "/coverage.sqlite").toStdString();
  ManualClock clock(1'800'000'000'000);
  SelfMetrics metrics;
  CoverageStoreOptions o;
  o.path = path;
  QVERIFY(CoverageStore::open(o, clock, metrics));
  {
    auto db = Db::open(path, false);
    QVERIFY(db);
    QVERIFY((*db)
                ->exec("UPDATE meta SET value = " + std::to_string(coverage_format::kFormat + 1) +
                       " WHERE key = 'coverage_format'")
                .is_ok());
  }
  auto again = CoverageStore::open(o, clock, metrics);
  QVERIFY(!again);
  QCOMPARE(again.status().code(), StatusCode::kCorruption);
  QVERIFY2(again.status().message().find("newer Tally") != std::string::npos,
           again.status().message().c_str());
}

// /api/query's rule through the engine, on both of its paths (the counter fast path, and the
// general one taken beyond 16 uncovered runs): a step that shares time with coverage is
// zero-filled; one that does not is absent unless a bucket is stored in it (a late point, a
// remote flush), which is returned as stored, 0 included.
void TestCollectorUnits::countersAreZeroFilledOnlyInCoveredTime() {
  OneShard f;
  const int64_t t0 = OneShard::kT0 + 100;
  const SeriesInfo* c = f.series("cov.c", Kind::kCounter);
  f.send(t0 + 5, {{c, t0 + 5, 3}});
  f.send(t0 + 15, {{c, t0 + 15, 4}});  // in no covered interval: stored data still counts
  f.send(t0 + 16, {{c, t0 + 16, 0}});  // a stored 0 is data too
  f.send(t0 + 25, {{c, t0 + 25, 2}});
  f.clock.set_ms((t0 + 50) * 1000);
  QTemporaryDir dir;
  CoverageStoreOptions o;
  o.path = (dir.path() + "/coverage.sqlite").toStdString();
  auto store = CoverageStore::open(o, f.clock, f.metrics);
  QVERIFY(store);
  std::vector<CoverageInterval> spans = {{t0 * 1000, (t0 + 10) * 1000},
                                         {(t0 + 20) * 1000 + 500, (t0 + 30) * 1000}};
  for (const auto& i : spans) QVERIFY((*store)->add_covered(i.start_ms, i.end_ms).is_ok());
  QueryEngine engine(f.catalog, *f.router, f.res, f.clock);
  engine.set_coverage(store->get());

  auto query = [&](int64_t from, int64_t to, int64_t step) {
    RangeQuery q;
    q.metric = "cov.c";
    q.from = from;
    q.to = to;
    q.step = step;
    q.fn = Fn::kSum;
    auto r = engine.range(q);
    std::vector<std::pair<int64_t, double>> pts;
    if (r && r->series.size() == 1) pts = r->series[0].points;
    return pts;
  };
  using P = std::vector<std::pair<int64_t, double>>;
  P want;
  for (int64_t t = t0; t < t0 + 10; ++t) want.emplace_back(t, t == t0 + 5 ? 3 : 0);
  want.emplace_back(t0 + 15, 4);
  want.emplace_back(t0 + 16, 0);
  for (int64_t t = t0 + 20; t < t0 + 30; ++t) want.emplace_back(t, t == t0 + 25 ? 2 : 0);
  QCOMPARE(query(t0 - 10, t0 + 40, 1), want);
  // 10 s steps: [t0+10, t0+20) holds stored buckets; [t0+30, t0+40) only touches an end.
  QCOMPARE(query(t0 - 10, t0 + 40, 10), (P{{t0, 3}, {t0 + 10, 4}, {t0 + 20, 2}}));

  // Seventeen more uncovered runs after t0+40: the general path answers the same.
  for (int64_t k = 0; k < 17; ++k)
    QVERIFY(
        (*store)->add_covered((t0 + 42 + 2 * k) * 1000, (t0 + 42 + 2 * k) * 1000 + 100).is_ok());
  P more = want;
  for (int64_t k = 0; k < 17; ++k) more.emplace_back(t0 + 42 + 2 * k, 0);
  QCOMPARE(query(t0 - 10, t0 + 80, 1), more);
}

QTEST_GUILESS_MAIN(TestCollectorUnits)
#include "tst_collector_units.moc"
