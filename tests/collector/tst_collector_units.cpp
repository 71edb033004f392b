// Unit tests for the collector's parts, as tables: tag filters, the query planner, time
// parameters, configuration files, the de-duplication window, batch validation, the write-ahead
// log (torn tails, rollback, truncation) and the shard store's merge rule.
#include <QTemporaryDir>
#include <QtTest>

#include <fstream>

#include "aggregate/catalog.h"
#include "config.h"
#include "ingest/batch_decoder.h"
#include "ingest/producer_table.h"
#include "query/http_api.h"
#include "query/query_engine.h"
#include "storage/shard_store.h"
#include "storage/wal.h"

using namespace tally;
using namespace tally::collector;

class TestCollectorUnits : public QObject {
  Q_OBJECT
 private slots:
  void filterParsing_data();
  void filterParsing();
  void filterMatching_data();
  void filterMatching();
  void planner_data();
  void planner();
  void timeParameter_data();
  void timeParameter();
  void configFile_data();
  void configFile();
  void dedupWindow();
  void batchValidation_data();
  void batchValidation();
  void walRoundTripTornTailRollbackAndTruncate();
  void storeMergesIntoStoredBuckets();
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
  QTest::addColumn<bool>("matchesLogin500");   // {endpoint=/login, status=500}
  QTest::addColumn<bool>("matchesNoStatus");   // {endpoint=/cart}
  QTest::newRow("eq") << "endpoint=/login" << true << false;
  QTest::newRow("eq absent") << "status=500" << true << false;
  QTest::newRow("ne") << "status!=500" << false << true;
  QTest::newRow("ne absent value") << "status!=" << true << false;
  QTest::newRow("re whole value") << "status=~5.." << true << false;
  QTest::newRow("re is anchored") << "status=~5" << false << false;
  QTest::newRow("re matches empty") << "status=~|500" << true << true;
  QTest::newRow("re alternation") << "endpoint=~/(login|cart)" << true << true;
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

void TestCollectorUnits::planner_data() {
  QTest::addColumn<qint64>("rangeS");   // from = now - range, to = now
  QTest::addColumn<qint64>("step");     // 0 = auto
  QTest::addColumn<qint64>("points");
  QTest::addColumn<qint64>("wantStep");
  QTest::addColumn<qint64>("wantResolution");
  QTest::newRow("5m auto") << qint64(300) << qint64(0) << qint64(300) << qint64(1) << qint64(1);
  QTest::newRow("1h auto") << qint64(3600) << qint64(0) << qint64(300) << qint64(60) << qint64(60);
  QTest::newRow("1h auto 3600 points") << qint64(3600) << qint64(0) << qint64(3600) << qint64(1) << qint64(1);
  QTest::newRow("1h step 10") << qint64(3600) << qint64(10) << qint64(0) << qint64(10) << qint64(10);
  QTest::newRow("1h step 30 reads 10s") << qint64(3600) << qint64(30) << qint64(0) << qint64(30) << qint64(10);
  QTest::newRow("1h step 7 reads 1s") << qint64(3600) << qint64(7) << qint64(0) << qint64(7) << qint64(1);
  QTest::newRow("1d step 60: 1s gone, 1m") << qint64(86400) << qint64(60) << qint64(0) << qint64(60) << qint64(60);
  QTest::newRow("1d step 10 reads 10s") << qint64(86400) << qint64(10) << qint64(0) << qint64(10) << qint64(10);
  QTest::newRow("30d auto reads 1h") << qint64(30 * 86400) << qint64(0) << qint64(300) << qint64(3 * 3600) << qint64(3600);
  QTest::newRow("30d step 1h") << qint64(30 * 86400) << qint64(3600) << qint64(0) << qint64(3600) << qint64(3600);
  QTest::newRow("1y auto: coarsest, rounded") << qint64(365 * 86400) << qint64(0) << qint64(100) << qint64(88 * 3600) << qint64(3600);
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
  QTest::newRow("empty") << "" << "";
  QTest::newRow("all keys") << "data_dir = \"/tmp/x\"\nshards = 4\nretention = \"1s:1d,1m:30d\"\nlateness = \"5s\"\n"
                               "fsync = \"100ms\"\ncheckpoint = \"1m\"\nself_metrics = false\nstatsd = \"off\"\n" << "";
  QTest::newRow("typo key") << "retension = \"1s:1d\"" << "unknown setting 'retension'";
  QTest::newRow("bad toml") << "shards = = 4" << ":1:";
  QTest::newRow("wrong type") << "shards = \"four\"" << "'shards'";
  QTest::newRow("bad duration") << "lateness = \"soon\"" << "'lateness'";
  QTest::newRow("bad retention") << "retention = \"1s:6h,10s:1d,15s:7d\"" << "retention";
  QTest::newRow("bad fsync") << "fsync = \"sometimes\"" << "fsync";
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
  QVERIFY(p.seen(1, 3));   // fell below the window: treated as seen
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
  QTest::newRow("ok") << make([&](auto& b) { def(b, 1, "a.b", wire::COUNTER); counter(b, 1, now, 1); }) << int(wire::Ack::OK) << "";
  QTest::newRow("no kind") << make([&](auto& b) { def(b, 1, "a.b", wire::KIND_UNSPECIFIED); }) << int(wire::Ack::INVALID) << "no kind";
  QTest::newRow("bad name") << make([&](auto& b) { def(b, 1, "a b", wire::COUNTER); }) << int(wire::Ack::INVALID) << "invalid character";
  QTest::newRow("long name") << make([&](auto& b) { def(b, 1, std::string(201, 'a'), wire::COUNTER); }) << int(wire::Ack::INVALID) << "201 bytes";
  QTest::newRow("dup tag") << make([&](auto& b) { def(b, 1, "a", wire::COUNTER, {{"k", "1"}, {"k", "2"}}); }) << int(wire::Ack::INVALID) << "twice";
  QTest::newRow("ref twice") << make([&](auto& b) { def(b, 1, "a", wire::COUNTER); def(b, 1, "b", wire::COUNTER); }) << int(wire::Ack::INVALID) << "defined twice";
  QTest::newRow("two kinds") << make([&](auto& b) { def(b, 1, "a", wire::COUNTER); def(b, 2, "a", wire::GAUGE, {{"x", "y"}}); }) << int(wire::Ack::INVALID) << "two kinds";
  QTest::newRow("kind of point") << make([&](auto& b) { def(b, 1, "g", wire::GAUGE); counter(b, 1, now, 1); }) << int(wire::Ack::INVALID) << "which is a gauge";
  QTest::newRow("ragged") << make([&](auto& b) { def(b, 1, "a", wire::COUNTER); counter(b, 1, now, 1); b.mutable_counters()->add_values(2); }) << int(wire::Ack::INVALID) << "differ in length";
  QTest::newRow("inf") << make([&](auto& b) { def(b, 1, "a", wire::COUNTER); counter(b, 1, now, INFINITY); }) << int(wire::Ack::INVALID) << "not finite";
  QTest::newRow("gauge min>max") << make([&](auto& b) {
    def(b, 1, "g", wire::GAUGE);
    auto* g = b.mutable_gauges();
    g->add_refs(1); g->add_times(now); g->add_last(1); g->add_min(5); g->add_max(2); g->add_sum(1); g->add_count(1);
  }) << int(wire::Ack::INVALID) << "min above max";
  QTest::newRow("empty sketch") << make([&](auto& b) {
    def(b, 1, "d", wire::DISTRIBUTION);
    auto* d = b.add_distributions(); d->set_ref(1); d->set_time(now);
  }) << int(wire::Ack::INVALID) << "no observations";
  QTest::newRow("unknown ref") << make([&](auto& b) { counter(b, 9, now, 1); }) << int(wire::Ack::UNKNOWN_REF) << "unknown series refs";
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
    for (int i = 1; i <= 6; ++i) QCOMPARE(*(*w)->append(std::string(60, char('a' + i))), uint64_t(i));
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
  }).is_ok());
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

void TestCollectorUnits::storeMergesIntoStoredBuckets() {
  QTemporaryDir dir;
  auto res = *parse_retention("1s:1d,1m:30d");
  auto store = ShardStore::open((dir.path() + "/s.sqlite").toStdString(), res);
  QVERIFY(store.has_value());
  auto& s = **store;
  SeriesInfo c{1, 0, 0, Kind::kCounter, "c", {}}, g{2, 0, 0, Kind::kGauge, "g", {}}, d{3, 0, 0, Kind::kDistribution, "d", {}};
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

QTEST_GUILESS_MAIN(TestCollectorUnits)
#include "tst_collector_units.moc"
