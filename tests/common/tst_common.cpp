// Unit tests for common/: names and tags, canonical keys and hashes, durations and retention,
// bucket math, the sketch and its wire form. Tables of must-pass / must-fail cases.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "tally/common/alert_rule.h"
#include "tally/common/csv.h"
#include "tally/common/label_matcher.h"
#include "tally/common/name_mapping.h"
#include "tally/common/query_fn.h"
#include "tally/common/series_key.h"
#include "tally/common/sketch.h"
#include "tally/common/status.h"
#include "tally/common/time_bucket.h"
#include "tally/common/wire.h"

using namespace tally;

class TestCommon : public QObject {
  Q_OBJECT
 private slots:
  void metricName_data();
  void metricName();
  void nameMapping_data();
  void nameMapping();
  void nameMappingRejectsBadEscapesAndBadUtf8();
  void sketchAddWithSum();
  void tagKey_data();
  void tagKey();
  void tagValue_data();
  void tagValue();
  void tagsRejectDuplicatesAndTooMany();
  void seriesKeyIsCanonicalAndRoundTrips();
  void hashDiffersByTagOrderOnlyBeforeCanonicalisation();
  void duration_data();
  void duration();
  void durationMs_data();
  void durationMs();
  void retention_data();
  void retention();
  void bucketStart_data();
  void bucketStart();
  void manualClock();
  void sketchQuantilesWithinOnePercent_data();
  void sketchQuantilesWithinOnePercent();
  void sketchMergeEqualsSingleSketch();
  void sketchNegativeAndZero();
  void sketchWireRoundTripAndValidation();
  void sketchSumIsHeldAtDblMax_data();
  void sketchSumIsHeldAtDblMax();
  void sketchKeySpanIsBounded_data();
  void sketchKeySpanIsBounded();
  void resultCarriesValueOrStatus();
  void numberText_data();
  void numberText();
  void labelMatcher_data();
  void labelMatcher();
  void labelMatcherRegexIsLinearTime();
  void queryFn_data();
  void queryFn();
  void queryFnRejects_data();
  void queryFnRejects();
  void alertRule_data();
  void alertRule();
  void alertRuleRejects_data();
  void alertRuleRejects();
  void reduceValues();
  void alertTrackerHoldsForItsDuration();
};

void TestCommon::metricName_data() {
  QTest::addColumn<QString>("name");
  QTest::addColumn<bool>("ok");
  QTest::newRow("dotted") << "user.signup" << true;
  QTest::newRow("colon-dash") << "api:errors-total" << true;
  QTest::newRow("underscore first") << "_internal.x" << true;
  QTest::newRow("digits") << "a1.b2" << true;
  QTest::newRow("200 bytes") << QString(200, 'a') << true;
  QTest::newRow("201 bytes") << QString(201, 'a') << false;
  QTest::newRow("empty") << "" << false;
  QTest::newRow("digit first") << "1abc" << false;
  QTest::newRow("dot first") << ".abc" << false;
  QTest::newRow("space") << "a b" << false;
  QTest::newRow("slash") << "a/b" << false;
  QTest::newRow("unicode") << QString::fromUtf8("caf\u00e9") << false;
}

void TestCommon::metricName() {
  QFETCH(QString, name);
  QFETCH(bool, ok);
  QCOMPARE(validate_metric_name(name.toStdString()).is_ok(), ok);
}

void TestCommon::tagKey_data() {
  QTest::addColumn<QString>("key");
  QTest::addColumn<bool>("ok");
  QTest::newRow("plain") << "region" << true;
  QTest::newRow("dots dashes") << "k8s.pod-name" << true;
  QTest::newRow("100 bytes") << QString(100, 'k') << true;
  QTest::newRow("101 bytes") << QString(101, 'k') << false;
  QTest::newRow("colon") << "a:b" << false;
  QTest::newRow("equals") << "a=b" << false;
  QTest::newRow("empty") << "" << false;
  QTest::newRow("digit first") << "9k" << false;
}

void TestCommon::tagKey() {
  QFETCH(QString, key);
  QFETCH(bool, ok);
  QCOMPARE(validate_tag_key(key.toStdString()).is_ok(), ok);
}

void TestCommon::tagValue_data() {
  QTest::addColumn<QByteArray>("value");
  QTest::addColumn<bool>("ok");
  QTest::newRow("plain") << QByteArray("eu-west-1") << true;
  QTest::newRow("path") << QByteArray("/api/v1/login?x=1") << true;
  QTest::newRow("spaces and equals") << QByteArray("a b=c,d") << true;
  QTest::newRow("utf8") << QByteArray("M\xc3\xbcnchen \xe2\x82\xac \xf0\x9f\x98\x80") << true;
  QTest::newRow("200 bytes") << QByteArray(200, 'v') << true;
  QTest::newRow("201 bytes") << QByteArray(201, 'v') << false;
  QTest::newRow("empty") << QByteArray("") << false;
  QTest::newRow("newline") << QByteArray("a\nb") << false;
  QTest::newRow("tab") << QByteArray("a\tb") << false;
  QTest::newRow("unit separator") << QByteArray(
                                         "a\x1f"
                                         "b")
                                  << false;
  QTest::newRow("DEL") << QByteArray("a\x7f") << false;
  QTest::newRow("C1 control") << QByteArray("a\xc2\x85") << false;
  QTest::newRow("bad utf8") << QByteArray("a\xff") << false;
  QTest::newRow("truncated utf8") << QByteArray("a\xe2\x82") << false;
  QTest::newRow("overlong") << QByteArray("\xc0\xaf") << false;
  QTest::newRow("surrogate") << QByteArray("\xed\xa0\x80") << false;
}

void TestCommon::tagValue() {
  QFETCH(QByteArray, value);
  QFETCH(bool, ok);
  QCOMPARE(validate_tag_value(value.toStdString()).is_ok(), ok);
}

void TestCommon::tagsRejectDuplicatesAndTooMany() {
  QVERIFY(validate_tags({{"a", "1"}, {"b", "2"}}).is_ok());
  auto dup = validate_tags({{"a", "1"}, {"a", "2"}});
  QVERIFY(!dup.is_ok());
  QVERIFY(dup.message().find("twice") != std::string::npos);
  Tags many;
  for (int i = 0; i < 33; ++i) many.push_back({"k" + std::to_string(i), "v"});
  QVERIFY(!validate_tags(many).is_ok());
  many.pop_back();
  QVERIFY(validate_tags(many).is_ok());
}

void TestCommon::seriesKeyIsCanonicalAndRoundTrips() {
  Tags a{{"status", "500"}, {"endpoint", "/login"}};
  Tags b{{"endpoint", "/login"}, {"status", "500"}};
  canonicalize(a);
  canonicalize(b);
  QCOMPARE(series_key("api.errors", a), series_key("api.errors", b));
  QCOMPARE(series_key("api.errors", a), std::string("api.errors\x1f"
                                                    "endpoint=/login\x1fstatus=500"));
  QCOMPARE(series_hash(series_key("api.errors", a)), series_hash(series_key("api.errors", b)));
  auto parsed = parse_series_key(series_key("api.errors", {{"q", "a=b"}}));
  QVERIFY(parsed.has_value());
  QCOMPARE(parsed->first, std::string("api.errors"));
  QCOMPARE(parsed->second, (Tags{{"q", "a=b"}}));
  auto bare = parse_series_key("m");
  QVERIFY(bare.has_value());
  QVERIFY(bare->second.empty());
  QCOMPARE(tags_to_string(a), std::string("endpoint=/login,status=500"));
}

void TestCommon::hashDiffersByTagOrderOnlyBeforeCanonicalisation() {
  QVERIFY(series_hash(series_key("m", {{"a", "1"}})) != series_hash(series_key("m", {{"a", "2"}})));
  QVERIFY(series_hash(series_key("m", {{"a", "1"}})) != series_hash(series_key("n", {{"a", "1"}})));
  // Fixed vector: the hash is part of the storage layout (shard placement).
  QCOMPARE(series_hash(""), uint64_t(0x2D06800538D394C2ULL));
}

void TestCommon::duration_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<qint64>("seconds");  // -1 = must fail
  QTest::newRow("seconds") << "10s" << qint64(10);
  QTest::newRow("bare") << "45" << qint64(45);
  QTest::newRow("minutes") << "5m" << qint64(300);
  QTest::newRow("hours") << "6h" << qint64(21600);
  QTest::newRow("days") << "7d" << qint64(604800);
  QTest::newRow("weeks") << "2w" << qint64(1209600);
  QTest::newRow("years") << "2y" << qint64(2 * 365 * 86400);
  QTest::newRow("spaces") << " 1h " << qint64(3600);
  QTest::newRow("zero") << "0s" << qint64(-1);
  QTest::newRow("negative") << "-5s" << qint64(-1);
  QTest::newRow("unit only") << "h" << qint64(-1);
  QTest::newRow("bad unit") << "5x" << qint64(-1);
  QTest::newRow("fraction") << "1.5h" << qint64(-1);
  QTest::newRow("empty") << "" << qint64(-1);
  QTest::newRow("overflow") << "99999999999999999y" << qint64(-1);
}

void TestCommon::duration() {
  QFETCH(QString, text);
  QFETCH(qint64, seconds);
  auto r = parse_duration(text.toStdString());
  QCOMPARE(r.has_value(), seconds >= 0);
  if (seconds >= 0) {
    QCOMPARE(*r, seconds);
    QCOMPARE(*parse_duration(format_duration(*r)), seconds);
  }
}

// The one millisecond duration parser (remote-write intervals, the WAL's fsync interval).
void TestCommon::durationMs_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<qint64>("ms");  // -1 = must fail
  QTest::newRow("ms") << "250ms" << qint64(250);
  QTest::newRow("seconds") << "2s" << qint64(2000);
  QTest::newRow("minutes") << "1m" << qint64(60000);
  QTest::newRow("bare seconds") << "3" << qint64(3000);
  QTest::newRow("junk before ms") << "12xms" << qint64(-1);
  QTest::newRow("only ms") << "ms" << qint64(-1);
  QTest::newRow("negative ms") << "-5ms" << qint64(-1);
  QTest::newRow("zero ms") << "0ms" << qint64(-1);
  QTest::newRow("fraction") << "1.5s" << qint64(-1);
  QTest::newRow("space before unit") << "5 ms" << qint64(-1);
  QTest::newRow("unknown unit") << "5us" << qint64(-1);
}

void TestCommon::durationMs() {
  QFETCH(QString, text);
  QFETCH(qint64, ms);
  auto r = parse_duration_ms(text.toStdString());
  QCOMPARE(r.has_value(), ms >= 0);
  if (ms >= 0) {
    QCOMPARE(*r, ms);
    QCOMPARE(*parse_duration_ms(format_duration_ms(*r)), ms);
  }
}

void TestCommon::retention_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<QString>("canonical");  // empty = must fail
  QTest::newRow("default") << QString::fromLatin1(kDefaultRetention.data())
                           << "1s:6h,10s:7d,1m:30d,1h:2y";
  QTest::newRow("single") << "1s:1d"
                          << "1s:1d";
  QTest::newRow("spaces") << "1s:6h, 10s:7d"
                          << "1s:6h,10s:7d";
  QTest::newRow("not multiple") << "1s:6h,15s:7d,20s:30d"
                                << "";
  QTest::newRow("not increasing") << "1s:6h,1s:7d"
                                  << "";
  QTest::newRow("coarse first") << "10s:6h"
                                << "";
  QTest::newRow("shorter retention") << "1s:7d,10s:1d"
                                     << "";
  QTest::newRow("less than a bucket") << "1s:6h,1h:30m"
                                      << "";
  QTest::newRow("missing colon") << "1s"
                                 << "";
  QTest::newRow("empty item") << "1s:6h,"
                              << "";
}

void TestCommon::retention() {
  QFETCH(QString, text);
  QFETCH(QString, canonical);
  auto r = parse_retention(text.toStdString());
  QCOMPARE(r.has_value(), !canonical.isEmpty());
  if (r)
    QCOMPARE(QString::fromStdString(format_retention(*r)), canonical);
  else
    QVERIFY(!r.status().message().empty());
}

void TestCommon::bucketStart_data() {
  QTest::addColumn<qint64>("t");
  QTest::addColumn<qint64>("res");
  QTest::addColumn<qint64>("start");
  QTest::newRow("aligned") << qint64(1700000000) << qint64(10) << qint64(1700000000);
  QTest::newRow("inside") << qint64(1700000009) << qint64(10) << qint64(1700000000);
  QTest::newRow("minute") << qint64(1700000059) << qint64(60) << qint64(1700000040);
  QTest::newRow("hour") << qint64(1700003599) << qint64(3600) << qint64(1700002800);
  QTest::newRow("negative") << qint64(-1) << qint64(10) << qint64(-10);
  QTest::newRow("negative aligned") << qint64(-10) << qint64(10) << qint64(-10);
  QTest::newRow("zero") << qint64(0) << qint64(60) << qint64(0);
}

void TestCommon::bucketStart() {
  QFETCH(qint64, t);
  QFETCH(qint64, res);
  QFETCH(qint64, start);
  QCOMPARE(bucket_start(t, res), start);
}

void TestCommon::manualClock() {
  ManualClock c(1'700'000'000'500);
  QCOMPARE(c.now_s(), int64_t(1'700'000'000));
  c.advance_ms(600);
  QCOMPARE(c.now_s(), int64_t(1'700'000'001));
  c.set_ms(0);
  QCOMPARE(c.now_ms(), int64_t(0));
}

void TestCommon::sketchQuantilesWithinOnePercent_data() {
  QTest::addColumn<int>("distribution");  // 0 uniform, 1 lognormal, 2 exponential
  QTest::newRow("uniform 1..1000") << 0;
  QTest::newRow("lognormal latency") << 1;
  QTest::newRow("exponential") << 2;
}

void TestCommon::sketchQuantilesWithinOnePercent() {
  QFETCH(int, distribution);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> uni(1, 1000);
  std::lognormal_distribution<double> logn(3, 1);
  std::exponential_distribution<double> expo(0.01);
  std::vector<double> values;
  Sketch s;
  for (int i = 0; i < 100000; ++i) {
    double v = distribution == 0 ? uni(rng) : distribution == 1 ? logn(rng) : expo(rng) + 0.001;
    values.push_back(v);
    s.add(v);
  }
  std::sort(values.begin(), values.end());
  QCOMPARE(s.count(), uint64_t(100000));
  QCOMPARE(s.min(), values.front());
  QCOMPARE(s.max(), values.back());
  for (double q : {0.01, 0.25, 0.5, 0.9, 0.99, 0.999}) {
    double exact = values[static_cast<size_t>(q * (values.size() - 1))];
    double got = s.quantile(q);
    QVERIFY2(std::abs(got - exact) <= 0.01 * exact + 1e-12,
             qPrintable(QString("q=%1 exact=%2 got=%3").arg(q).arg(exact).arg(got)));
  }
}

void TestCommon::sketchMergeEqualsSingleSketch() {
  Sketch all, a, b;
  for (int i = 1; i <= 5000; ++i) {
    double v = i * 0.37;
    all.add(v);
    (i % 3 ? a : b).add(v);
  }
  a.merge(b);
  QCOMPARE(a.count(), all.count());
  QCOMPARE(a.positive_bins().size(), all.positive_bins().size());
  for (double q : {0.1, 0.5, 0.9, 0.99}) QCOMPARE(a.quantile(q), all.quantile(q));
  uint64_t binned = 0;
  for (const auto& bin : a.bins()) {
    QVERIFY(bin.lower < bin.upper);
    binned += bin.count;
  }
  QCOMPARE(binned, uint64_t(5000));
  Sketch empty;
  a.merge(empty);
  QCOMPARE(a.count(), uint64_t(5000));
  empty.merge(a);
  QVERIFY(empty == a);
}

void TestCommon::sketchNegativeAndZero() {
  Sketch s;
  s.add(-10);
  s.add(0, 3);
  s.add(10);
  s.add(std::nan(""));  // ignored
  QCOMPARE(s.count(), uint64_t(5));
  QCOMPARE(s.zero_count(), uint64_t(3));
  QCOMPARE(s.sum(), 0.0);
  QCOMPARE(s.quantile(0), -10.0);
  QCOMPARE(s.quantile(0.5), 0.0);
  QCOMPARE(s.quantile(1), 10.0);
  QVERIFY(std::abs(s.quantile(0.1) + 10) <= 0.1);
  auto bins = s.bins();
  QCOMPARE(bins.size(), size_t(3));
  QVERIFY(bins[0].upper < 0 && bins[2].lower > 0);
}

void TestCommon::sketchSumIsHeldAtDblMax_data() {
  QTest::addColumn<double>("value");
  QTest::addColumn<quint64>("weight");
  QTest::addColumn<int>("adds");
  QTest::addColumn<double>("sum");
  const double max = std::numeric_limits<double>::max();
  QTest::newRow("1e308 x 2") << 1e308 << quint64(2) << 1 << max;
  QTest::newRow("1e308 twice") << 1e308 << quint64(1) << 2 << max;
  QTest::newRow("-1e308 twice") << -1e308 << quint64(1) << 2 << -max;
  QTest::newRow("1e300 x 1e10") << 1e300 << quint64(10000000000) << 1 << max;
}

void TestCommon::sketchSumIsHeldAtDblMax() {
  // Merging must never make a sketch that cannot be encoded (a sum of +-Inf): the sum is held at
  // +-DBL_MAX and the add says so; count, min, max and bins stay exact.
  QFETCH(double, value);
  QFETCH(quint64, weight);
  QFETCH(int, adds);
  QFETCH(double, sum);
  Sketch s;
  Sketch::Added last = Sketch::Added::kExact;
  for (int i = 0; i < adds; ++i) last = s.add(value, weight);
  QCOMPARE(static_cast<int>(last), static_cast<int>(Sketch::Added::kClamped));
  QCOMPARE(s.sum(), sum);
  QCOMPARE(s.count(), weight * static_cast<quint64>(adds));
  Sketch merged;
  merged.merge(s);
  QCOMPARE(static_cast<int>(merged.merge(s)), static_cast<int>(Sketch::Added::kClamped));
  QCOMPARE(merged.sum(), sum);
  wire::Sketch p;
  sketch_to_proto(merged, &p);
  QVERIFY(sketch_from_proto(p).has_value());
  // A count past 2^64 refuses the value and changes nothing.
  Sketch full;
  QCOMPARE(static_cast<int>(full.add(1, UINT64_MAX)), static_cast<int>(Sketch::Added::kExact));
  QCOMPARE(static_cast<int>(full.add(1, 1)), static_cast<int>(Sketch::Added::kRefused));
  QCOMPARE(static_cast<int>(full.merge(full)), static_cast<int>(Sketch::Added::kRefused));
  QCOMPARE(full.count(), UINT64_MAX);
  QCOMPARE(static_cast<int>(full.add(std::numeric_limits<double>::infinity())),
           static_cast<int>(Sketch::Added::kRefused));
}

void TestCommon::sketchKeySpanIsBounded_data() {
  QTest::addColumn<QList<double>>("values");
  QTest::newRow("1e-60 then 1e60") << QList<double>{1e-60, 1e60};
  QTest::newRow("1e60 then 1e-60") << QList<double>{1e60, 1e-60};
  QTest::newRow("negative 1e-60 and 1e60") << QList<double>{-1e-60, -1e60};
  QTest::newRow("a wide sweep") << QList<double>{1e-9, 1e-30, 1e30, 1e60, 1, 1e-60, 5};
}

void TestCommon::sketchKeySpanIsBounded() {
  // Keys -8000 .. +8000 are each valid, but a dense store over both would be 128 KiB per store;
  // the store keeps at most kMaxSketchSpan keys, folding the lowest together.
  QFETCH(QList<double>, values);
  Sketch s;
  for (double v : values) QCOMPARE(static_cast<int>(s.add(v)), 0);
  QCOMPARE(s.count(), static_cast<uint64_t>(values.size()));
  for (const auto& bins : {s.positive_bins(), s.negative_bins()}) {
    if (bins.empty()) continue;
    QVERIFY2(bins.back().key - bins.front().key < kMaxSketchSpan,
             qPrintable(QString::number(bins.back().key - bins.front().key)));
  }
  // The highest value keeps its 1% accuracy; the total is exact; it still round-trips.
  QCOMPARE(s.quantile(1), *std::max_element(values.begin(), values.end()));
  wire::Sketch p;
  sketch_to_proto(s, &p);
  auto back = sketch_from_proto(p);
  QVERIFY(back.has_value());
  QCOMPARE(back->count(), s.count());
}

void TestCommon::sketchWireRoundTripAndValidation() {
  Sketch s;
  for (int i = 0; i < 1000; ++i) s.add(i % 2 ? i * 1.5 : -i * 0.5);
  wire::Sketch p;
  sketch_to_proto(s, &p);
  auto back = sketch_from_proto(p);
  QVERIFY(back.has_value());
  QVERIFY(*back == s);

  wire::Sketch bad = p;
  bad.set_count(p.count() + 1);  // bins no longer add up
  QVERIFY(!sketch_from_proto(bad).has_value());
  bad = p;
  bad.add_pos_keys(1);  // column lengths differ
  QVERIFY(!sketch_from_proto(bad).has_value());
  bad = p;
  bad.set_pos_keys(0, 1'000'000);  // key out of range
  QVERIFY(!sketch_from_proto(bad).has_value());
}

void TestCommon::resultCarriesValueOrStatus() {
  Result<int> ok = 5;
  QVERIFY(ok.has_value());
  QCOMPARE(*ok, 5);
  QVERIFY(ok.status().is_ok());
  Result<int> err = Status::io_error("disk full");
  QVERIFY(!err.has_value());
  QCOMPARE(err.status().code(), StatusCode::kIoError);
  QCOMPARE(err.status().to_string(), std::string("io_error: disk full"));
}

void TestCommon::nameMapping_data() {
  QTest::addColumn<QByteArray>("raw");
  QTest::addColumn<bool>("metric");  // metric alphabet, else tag-key alphabet
  QTest::addColumn<QByteArray>("stored");
  auto row = [](const char* name, QByteArray raw, bool metric, QByteArray stored) {
    QTest::newRow(name) << raw << metric << stored;
  };
  row("valid kept", "api.errors_total:x", true, "api.errors_total:x");
  row("valid key kept", "k8s.pod-name_x", false, "k8s.pod-name_x");
  row("space", "api latency", true, "U__api_20_latency");
  row("digit first", "1xx", true, "U___31_xx");
  row("slash in a key", "app.kubernetes.io/name", false, "U__app.kubernetes.io_2f_name");
  row("colon not allowed in a key", "a:b", false, "U__a_3a_b");
  row("underscore doubled once escaped", "a_b c", true, "U__a__b_20_c");
  row("two-byte code point", "caf\xc3\xa9", true, "U__caf_e9_");
  row("three-byte code point", "\xe2\x82\xac", true, "U___20ac_");
  row("four-byte code point", "\xf0\x9f\x98\x80", true, "U___1f600_");
  row("marker itself escaped", "U__x", true, "U__U____x");
  row("empty", "", false, "U__");
  row("dot first", ".k", false, "U___2e_k");
}

void TestCommon::nameMapping() {
  QFETCH(QByteArray, raw);
  QFETCH(bool, metric);
  QFETCH(QByteArray, stored);
  const auto alphabet = metric ? NameAlphabet::kMetric : NameAlphabet::kTagKey;
  const std::string in(raw.constData(), static_cast<size_t>(raw.size()));
  auto mapped = map_name(in, alphabet);
  QVERIFY(mapped.has_value());
  QCOMPARE(QByteArray::fromStdString(*mapped), stored);
  if (metric)
    QVERIFY2(validate_metric_name(*mapped).is_ok(), mapped->c_str());
  else
    QVERIFY2(validate_tag_key(*mapped).is_ok(), mapped->c_str());
  auto back = unmap_name(*mapped);
  QVERIFY(back.has_value());
  QCOMPARE(QByteArray::fromStdString(*back), raw);  // reversible
}

void TestCommon::nameMappingRejectsBadEscapesAndBadUtf8() {
  QVERIFY(!map_name("a\xff", NameAlphabet::kMetric));
  QVERIFY(!map_name("\xc3", NameAlphabet::kMetric));          // cut sequence
  QVERIFY(!map_name("\xc0\xaf", NameAlphabet::kMetric));      // overlong '/'
  QVERIFY(!map_name("\xed\xa0\x80", NameAlphabet::kMetric));  // surrogate
  QVERIFY(!unmap_name("U__a_zz_"));
  QVERIFY(!unmap_name("U__a_20"));
  QVERIFY(!unmap_name("U__a_d800_"));
  QVERIFY(!unmap_name("U__a_110000_"));
  QCOMPARE(*unmap_name("plain"), std::string("plain"));
}

void TestCommon::sketchAddWithSum() {
  Sketch s;
  s.add_with_sum(666, 4, 666 / 0.21);
  QCOMPARE(s.count(), uint64_t{4});
  QCOMPARE(s.sum(), 666 / 0.21);
  QCOMPARE(s.min(), 666.0);
  QCOMPARE(s.max(), 666.0);
  s.add_with_sum(1, 0, 5);  // no observations: nothing changes
  QCOMPARE(s.count(), uint64_t{4});
  QCOMPARE(s.sum(), 666 / 0.21);
}

// One table for the label matcher: must-match, must-not-match and must-not-parse rows. Regexes
// follow Prometheus: RE2 syntax, anchored at both ends, `.` matches a newline.
// One rule for numbers in every CSV and table (the dashboard's export, the CLI): shortest
// round-trip text, plain digits for exponents in [-4, 16), NaN an empty (missing) cell.
void TestCommon::numberText_data() {
  QTest::addColumn<double>("v");
  QTest::addColumn<QString>("text");
  QTest::addColumn<QString>("cell");
  QTest::newRow("integer") << 3.0 << "3"
                           << "3";
  QTest::newRow("zero") << 0.0 << "0"
                        << "0";
  QTest::newRow("negative") << -2.5 << "-2.5"
                            << "-2.5";
  QTest::newRow("tenth") << 0.1 << "0.1"
                         << "0.1";
  QTest::newRow("sum of tenths") << (0.1 + 0.2) << "0.30000000000000004"
                                 << "0.30000000000000004";
  QTest::newRow("third") << (1.0 / 3.0) << "0.3333333333333333"
                         << "0.3333333333333333";
  QTest::newRow("big integer") << 123456789.0 << "123456789"
                               << "123456789";
  QTest::newRow("1e8 in digits") << 1e8 << "100000000"
                                 << "100000000";
  QTest::newRow("1e15 in digits") << 1e15 << "1000000000000000"
                                  << "1000000000000000";
  QTest::newRow("1e16 with exponent") << 1e16 << "1e+16"
                                      << "1e+16";
  QTest::newRow("1e20") << 1e20 << "1e+20"
                        << "1e+20";
  QTest::newRow("negative exponent") << -1.5e20 << "-1.5e+20"
                                     << "-1.5e+20";
  QTest::newRow("1e-4 in digits") << 1e-4 << "0.0001"
                                  << "0.0001";
  QTest::newRow("1e-5 with exponent") << 1e-5 << "1e-05"
                                      << "1e-05";
  QTest::newRow("smallest subnormal") << 4.9406564584124654e-324 << "5e-324"
                                      << "5e-324";
  QTest::newRow("largest") << 1.7976931348623157e308 << "1.7976931348623157e+308"
                           << "1.7976931348623157e+308";
  QTest::newRow("nan is missing") << std::nan("") << ""
                                  << "";
  QTest::newRow("inf") << HUGE_VAL << "inf"
                       << "inf";
  QTest::newRow("-inf is text, not a formula") << -HUGE_VAL << "-inf"
                                               << "\"'-inf\"";
}

void TestCommon::numberText() {
  QFETCH(double, v);
  QFETCH(QString, text);
  QFETCH(QString, cell);
  QCOMPARE(QString::fromStdString(format_number(v)), text);
  QCOMPARE(QString::fromStdString(csv_number(v)), cell);
  if (std::isfinite(v))  // reads back exactly (strtod: stod refuses a subnormal)
    QCOMPARE(std::strtod(format_number(v).c_str(), nullptr), v);
}

void TestCommon::labelMatcher_data() {
  QTest::addColumn<QString>("matcher");
  QTest::addColumn<QString>("value");
  QTest::addColumn<bool>("parses");
  QTest::addColumn<bool>("matches");
  // must match
  QTest::newRow("eq") << "k=abc"
                      << "abc" << true << true;
  QTest::newRow("eq empty") << "k="
                            << "" << true << true;
  QTest::newRow("eq value with =") << "q=a=b"
                                   << "a=b" << true << true;
  QTest::newRow("ne other") << "k!=abc"
                            << "abd" << true << true;
  QTest::newRow("re whole value") << "status=~5.."
                                  << "500" << true << true;
  QTest::newRow("re alternation") << "ep=~/(login|cart)"
                                  << "/cart" << true << true;
  QTest::newRow("re matches empty") << "status=~|500"
                                    << "" << true << true;
  QTest::newRow("re dot matches newline") << "k=~a.b"
                                          << "a\nb" << true << true;
  QTest::newRow("re RE2 case flag") << "k=~(?i)err"
                                    << "ERR" << true << true;
  QTest::newRow("re RE2 class") << "k=~[[:digit:]]+"
                                << "123" << true << true;
  QTest::newRow("nre other") << "status!~5.."
                             << "200" << true << true;
  QTest::newRow("nre not anchored twice") << "status!~5"
                                          << "500" << true << true;
  // must not match
  QTest::newRow("eq other") << "k=abc"
                            << "abcd" << true << false;
  QTest::newRow("ne same") << "k!=abc"
                           << "abc" << true << false;
  QTest::newRow("re anchored at start") << "status=~00"
                                        << "500" << true << false;
  QTest::newRow("re anchored at end") << "status=~5"
                                      << "500" << true << false;
  QTest::newRow("re alternation is anchored") << "k=~a|b"
                                              << "ab" << true << false;
  QTest::newRow("re case sensitive") << "k=~err"
                                     << "ERR" << true << false;
  QTest::newRow("nre same") << "status!~5.."
                            << "500" << true << false;
  // must not parse
  QTest::newRow("bad regex open group") << "k=~("
                                        << "" << false << false;
  QTest::newRow("bad regex in nre") << "k!~[a"
                                    << "" << false << false;
  QTest::newRow("bad regex not rewrapped") << "k=~a)|(b"
                                           << "" << false << false;
  QTest::newRow("backreference (not RE2)") << "k=~(a)\\1"
                                           << "" << false << false;
  QTest::newRow("lookahead (not RE2)") << "k=~(?=a)a"
                                       << "" << false << false;
  QTest::newRow("no operator") << "novalue"
                               << "" << false << false;
  QTest::newRow("no name") << "=v"
                           << "" << false << false;
  QTest::newRow("bang only") << "k!v"
                             << "" << false << false;
}

void TestCommon::labelMatcher() {
  QFETCH(QString, matcher);
  QFETCH(QString, value);
  QFETCH(bool, parses);
  QFETCH(bool, matches);
  auto m = LabelMatcher::parse(matcher.toStdString());
  QCOMPARE(m.has_value(), parses);
  if (!parses) {
    QVERIFY(m.status().code() == StatusCode::kInvalidArgument);
    QVERIFY2(m.status().message().find(matcher.toStdString()) != std::string::npos,
             m.status().message().c_str());
    if (matcher.contains('~'))
      QVERIFY2(m.status().message().find("bad regex") != std::string::npos,
               m.status().message().c_str());
    return;
  }
  QCOMPARE(QString::fromStdString(m->to_string()), matcher);
  QCOMPARE(m->matches(value.toStdString()), matches);
  // The same matcher made from its parts agrees, and copies share the compiled regex.
  auto made = LabelMatcher::make(m->name(), m->op(), m->value());
  QVERIFY(made.has_value());
  QVERIFY(*made == *m);
  LabelMatcher copy = *made;
  QCOMPARE(copy.matches(value.toStdString()), matches);
}

// A pattern that takes a backtracking engine exponential time (2^n paths for n 'a's) answers at
// once: RE2 is linear in the value.
void TestCommon::labelMatcherRegexIsLinearTime() {
  auto m = LabelMatcher::parse("k=~(a|a)*b");
  QVERIFY(m.has_value());
  const std::string value(5000, 'a');
  QElapsedTimer t;
  t.start();
  QVERIFY(!m->matches(value));
  QVERIFY(m->matches(value + "b"));
  QVERIFY2(t.elapsed() < 2000, qPrintable(QString::number(t.elapsed()) + " ms"));
}

// Every function's name parses back to it; the names are the API's and the dashboard file's.
void TestCommon::queryFn_data() {
  QTest::addColumn<QString>("name");
  QTest::addColumn<int>("fn");
  QTest::addColumn<bool>("percentile");
  QTest::addColumn<double>("quantile");
  QTest::newRow("sum") << "sum" << int(Fn::kSum) << false << 0.0;
  QTest::newRow("rate") << "rate" << int(Fn::kRate) << false << 0.0;
  QTest::newRow("avg") << "avg" << int(Fn::kAvg) << false << 0.0;
  QTest::newRow("min") << "min" << int(Fn::kMin) << false << 0.0;
  QTest::newRow("max") << "max" << int(Fn::kMax) << false << 0.0;
  QTest::newRow("count") << "count" << int(Fn::kCount) << false << 0.0;
  QTest::newRow("p50") << "p50" << int(Fn::kP50) << true << 0.5;
  QTest::newRow("p90") << "p90" << int(Fn::kP90) << true << 0.9;
  QTest::newRow("p99") << "p99" << int(Fn::kP99) << true << 0.99;
}

void TestCommon::queryFn() {
  QFETCH(QString, name);
  QFETCH(int, fn);
  QFETCH(bool, percentile);
  QFETCH(double, quantile);
  const Fn f = static_cast<Fn>(fn);
  QCOMPARE(QString::fromLatin1(fn_name(f)), name);
  auto parsed = parse_fn(name.toStdString());
  QVERIFY(parsed.has_value());
  QCOMPARE(int(*parsed), fn);
  QCOMPARE(is_percentile(f), percentile);
  if (percentile) QCOMPARE(fn_quantile(f), quantile);
  QVERIFY(std::find(std::begin(kAllFns), std::end(kAllFns), f) != std::end(kAllFns));
}

void TestCommon::queryFnRejects_data() {
  QTest::addColumn<QString>("name");
  QTest::newRow("empty") << "";
  QTest::newRow("upper case") << "SUM";
  QTest::newRow("median") << "median";
  QTest::newRow("p95") << "p95";
  QTest::newRow("trailing space") << "rate ";
  QTest::newRow("promql") << "promql";
}

void TestCommon::queryFnRejects() {
  QFETCH(QString, name);
  QVERIFY(!parse_fn(name.toStdString()).has_value());
}

void TestCommon::alertRule_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<QString>("canonical");
  QTest::addColumn<int>("reduce");
  QTest::addColumn<qlonglong>("over");
  QTest::addColumn<QString>("op");
  QTest::addColumn<double>("threshold");
  QTest::addColumn<qlonglong>("forS");
  QTest::newRow("full") << "avg over 1m > 100 for 2m"
                        << "avg over 1m > 100 for 2m" << int(Reduce::kAvg) << 60LL << ">" << 100.0
                        << 120LL;
  QTest::newRow("defaults") << "last > 5"
                            << "last over 1m > 5" << int(Reduce::kLast) << 60LL << ">" << 5.0
                            << 0LL;
  QTest::newRow("spaces") << "  total   over 5m >= 1000   for 30s "
                          << "total over 5m >= 1000 for 30s" << int(Reduce::kTotal) << 300LL
                          << ">=" << 1000.0 << 30LL;
  QTest::newRow("below fraction") << "min < 0.25"
                                  << "min over 1m < 0.25" << int(Reduce::kMin) << 60LL << "<"
                                  << 0.25 << 0LL;
  QTest::newRow("negative") << "max over 10s <= -3.5 for 1h"
                            << "max over 10s <= -3.5 for 1h" << int(Reduce::kMax) << 10LL
                            << "<=" << -3.5 << 3600LL;
  QTest::newRow("exponent") << "avg > 1e6"
                            << "avg over 1m > 1000000" << int(Reduce::kAvg) << 60LL << ">" << 1e6
                            << 0LL;
}

void TestCommon::alertRule() {
  QFETCH(QString, text);
  QFETCH(QString, canonical);
  QFETCH(int, reduce);
  QFETCH(qlonglong, over);
  QFETCH(QString, op);
  QFETCH(double, threshold);
  QFETCH(qlonglong, forS);
  auto r = parse_alert_rule(text.toStdString());
  QVERIFY2(r.has_value(), r.status().message().c_str());
  QCOMPARE(int(r->reduce), reduce);
  QCOMPARE(r->over_s, over);
  QCOMPARE(QString(compare_name(r->compare)), op);
  QCOMPARE(r->threshold, threshold);
  QCOMPARE(r->for_s, forS);
  QCOMPARE(QString::fromStdString(format_alert_rule(*r)), canonical);
  auto again = parse_alert_rule(format_alert_rule(*r));
  QVERIFY(again.has_value());
  QVERIFY(*again == *r);
}

void TestCommon::alertRuleRejects_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<QString>("error");
  QTest::newRow("empty") << ""
                         << "empty alert rule";
  QTest::newRow("reduce") << "median > 3"
                          << "'median' is not last";
  QTest::newRow("no compare") << "avg over 1m"
                              << "a comparison is missing";
  QTest::newRow("bad compare") << "avg = 3"
                               << "'=' is not a comparison";
  QTest::newRow("no threshold") << "avg >"
                                << "a threshold is missing";
  QTest::newRow("bad threshold") << "avg > 3x"
                                 << "threshold '3x' is not a number";
  QTest::newRow("nan") << "avg > nan"
                       << "threshold 'nan' is not a number";
  QTest::newRow("over missing") << "avg over"
                                << "'over' needs a duration";
  QTest::newRow("over bad") << "avg over 1q > 2"
                            << "over: duration";
  QTest::newRow("over long") << "avg over 8d > 2"
                             << "longer than 7d";
  QTest::newRow("for missing") << "avg > 2 for"
                               << "'for' needs a duration";
  QTest::newRow("for zero") << "avg > 2 for 0s"
                            << "for: duration";
  QTest::newRow("trailing") << "avg > 2 for 1m please"
                            << "unexpected 'please'";
}

void TestCommon::alertRuleRejects() {
  QFETCH(QString, text);
  QFETCH(QString, error);
  auto r = parse_alert_rule(text.toStdString());
  QVERIFY(!r.has_value());
  QVERIFY2(QString::fromStdString(r.status().message()).contains(error),
           r.status().message().c_str());
}

void TestCommon::reduceValues() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> v{3, nan, -1, 8, 2};
  QCOMPARE(*reduce_values(Reduce::kLast, v), 2.0);
  QCOMPARE(*reduce_values(Reduce::kMin, v), -1.0);
  QCOMPARE(*reduce_values(Reduce::kMax, v), 8.0);
  QCOMPARE(*reduce_values(Reduce::kAvg, v), 3.0);
  QCOMPARE(*reduce_values(Reduce::kTotal, v), 12.0);
  const std::vector<double> last_nan{1, nan};
  QCOMPARE(*reduce_values(Reduce::kLast, last_nan), 1.0);
  const std::vector<double> none{nan, nan};
  for (Reduce r : kAllReduces) {
    QVERIFY(!reduce_values(r, none).has_value());
    QVERIFY(!reduce_values(r, {}).has_value());
    QCOMPARE(*parse_reduce(reduce_name(r)), r);
  }
  QVERIFY(!parse_reduce("Last").has_value());
}

void TestCommon::alertTrackerHoldsForItsDuration() {
  using Change = AlertTracker::Change;
  const AlertRule rule = *parse_alert_rule("avg > 10 for 30s");
  AlertTracker t;
  QCOMPARE(t.update(rule, 100, 5.0), Change::kNone);
  QCOMPARE(t.state(), AlertState::kNormal);
  QCOMPARE(t.update(rule, 101, 10.0), Change::kNone);  // > 10, not >= 10
  QCOMPARE(t.update(rule, 102, 11.0), Change::kPending);
  QCOMPARE(t.state(), AlertState::kPending);
  QCOMPARE(t.since(), 102LL);
  QCOMPARE(t.update(rule, 131, 12.0), Change::kNone);   // held 29 s
  QCOMPARE(t.update(rule, 132, 12.0), Change::kFired);  // held 30 s
  QCOMPARE(t.state(), AlertState::kFiring);
  QCOMPARE(t.update(rule, 140, 13.0), Change::kNone);
  QCOMPARE(t.update(rule, 141, std::nullopt), Change::kResolved);  // no data: not holding
  QCOMPARE(t.state(), AlertState::kNormal);
  // Pending that stops holding never fires, and starts over.
  QCOMPARE(t.update(rule, 150, 20.0), Change::kPending);
  QCOMPARE(t.update(rule, 170, 2.0), Change::kNone);
  QCOMPARE(t.update(rule, 171, 20.0), Change::kPending);
  QCOMPARE(t.since(), 171LL);
  QCOMPARE(t.update(rule, 200, 20.0), Change::kNone);
  QCOMPARE(t.update(rule, 201, 20.0), Change::kFired);
  // Without `for` a rule fires on the first evaluation that holds.
  const AlertRule now = *parse_alert_rule("last < 1");
  AlertTracker u;
  QCOMPARE(u.update(now, 5, 0.5), Change::kFired);
  QCOMPARE(u.update(now, 6, 1.0), Change::kResolved);
}

QTEST_APPLESS_MAIN(TestCommon)
#include "tst_common.moc"
