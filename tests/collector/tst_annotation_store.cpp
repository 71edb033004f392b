// AnnotationStore on a real SQLite file with a clock the test sets: retention expiry, the
// DogStatsD queue (drained on stop, bounded in bytes), the format check, and validation.
#include <QTemporaryDir>
#include <QtTest>

#include "config.h"
#include "live_limits.h"
#include "storage/annotation_store.h"
#include "storage/sqlite.h"

using namespace tally;
using namespace tally::collector;

namespace {

constexpr int64_t kNowMs = 1'800'000'000'000;

LiveLimits limits_with(const std::string& retention, int64_t max) {
  CollectorConfig c;
  c.retention = retention;
  c.limits.annotations_max = max;
  if (!c.validate()) qFatal("bad test config");
  return LiveLimits(LiveLimitValues::from(c));
}

Annotation at(int64_t time_ms, std::string title, std::string source = "api") {
  Annotation a;
  a.time_ms = time_ms;
  a.title = std::move(title);
  a.source = std::move(source);
  return a;
}

}  // namespace

class TestAnnotationStore : public QObject {
  Q_OBJECT

 private slots:
  void expiresWhatEndedBeforeTheRetention();
  void queueIsDrainedOnStopAndBoundedInBytes();
  void newerFormatIsRefused();
  void validation_data();
  void validation();
};

void TestAnnotationStore::expiresWhatEndedBeforeTheRetention() {
  QTemporaryDir dir;
  ManualClock clock(kNowMs);
  SelfMetrics metrics;
  LiveLimits limits = limits_with("1s:1h", 100);
  AnnotationStoreOptions o;
  o.path = (dir.path() + "/annotations.sqlite").toStdString();
  o.limits = &limits;
  auto store = AnnotationStore::open(o, clock, metrics);
  QVERIFY(store);
  QVERIFY((*store)->add(at(kNowMs - 10'000, "point")));
  Annotation spans = at(kNowMs - 20'000, "spans");
  spans.end_ms = kNowMs + 3600'000;  // still running an hour later
  QVERIFY((*store)->add(spans));
  // An annotation that ended before the retention is refused, naming the field.
  auto old = (*store)->add(at(kNowMs - 3601'000, "old"));
  QVERIFY(!old);
  QVERIFY2(old.status().message().starts_with("time: "), old.status().message().c_str());

  clock.advance_ms(3600'000);  // "point" is now 1 h 10 s old; "spans" ends now
  auto n = (*store)->expire();
  QVERIFY(n);
  QCOMPARE(*n, int64_t{1});
  QCOMPARE(metrics.annotations_expired.load(), uint64_t{1});
  auto page = (*store)->list({0, kNowMs * 2, {}, 10});
  QVERIFY(page);
  QCOMPARE(page->annotations.size(), size_t{1});
  QCOMPARE(page->annotations[0].title, std::string("spans"));
  QCOMPARE(*(*store)->count(), int64_t{1});
}

void TestAnnotationStore::queueIsDrainedOnStopAndBoundedInBytes() {
  QTemporaryDir dir;
  ManualClock clock(kNowMs);
  SelfMetrics metrics;
  LiveLimits limits = limits_with("1s:1h", 100000);
  AnnotationStoreOptions o;
  o.path = (dir.path() + "/annotations.sqlite").toStdString();
  o.limits = &limits;
  o.queue_bytes = 64 * 1024;
  auto store = AnnotationStore::open(o, clock, metrics);
  QVERIFY(store);
  // Not started: nothing drains, so the byte budget decides what is taken.
  size_t taken = 0, refused = 0;
  for (int i = 0; i < 1000; ++i) {
    Annotation a = at(kNowMs, "event " + std::to_string(i), "dogstatsd");
    a.text = std::string(200, 'x');
    (*store)->submit(std::move(a)) ? ++taken : ++refused;
  }
  QVERIFY(taken > 0 && refused > 0);
  QCOMPARE(metrics.annotations_queue_dropped.load(), uint64_t(refused));
  (*store)->start();
  (*store)->stop();  // writes what was queued before it returns
  QCOMPARE(*(*store)->count(), int64_t(taken));
  QCOMPARE(metrics.annotations[1].load(), uint64_t(taken));
  // Stopped: submit refuses (and counts) instead of queueing for nobody.
  QVERIFY(!(*store)->submit(at(kNowMs, "late", "dogstatsd")));
  QCOMPARE(metrics.annotations_queue_dropped.load(), uint64_t(refused + 1));
}

void TestAnnotationStore::newerFormatIsRefused() {
  QTemporaryDir dir;
  ManualClock clock(kNowMs);
  SelfMetrics metrics;
  const std::string path = (dir.path() + "/annotations.sqlite").toStdString();
  {
    auto store = AnnotationStore::open({path}, clock, metrics);
    QVERIFY(store);
  }
  {
    auto db = Db::open(path, false);
    QVERIFY(db);
    QVERIFY((*db)->exec("UPDATE meta SET value = 2 WHERE key = 'annotations_format'"));
  }
  auto again = AnnotationStore::open({path}, clock, metrics);
  QVERIFY(!again);
  QCOMPARE(again.status().code(), StatusCode::kCorruption);
  QVERIFY2(again.status().message().find("annotations format 2") != std::string::npos,
           again.status().message().c_str());
}

void TestAnnotationStore::validation_data() {
  QTest::addColumn<QString>("title");
  QTest::addColumn<QString>("text");
  QTest::addColumn<qint64>("end_offset_ms");  // -1: no end
  QTest::addColumn<QString>("error");         // "" = valid
  QTest::newRow("valid") << "Deploy"
                         << "line 1\nline 2\ttab" << qint64(-1) << "";
  QTest::newRow("end equal to time") << "x"
                                     << "" << qint64(0) << "";
  QTest::newRow("200-byte title") << QString(200, 't') << "" << qint64(-1) << "";
  QTest::newRow("201-byte title") << QString(201, 't') << "" << qint64(-1)
                                  << "title: 201 bytes, the limit is 200";
  QTest::newRow("multibyte title over 200 bytes")
      << QString(101, QChar(0x00e9)) << "" << qint64(-1) << "title: 202 bytes, the limit is 200";
  QTest::newRow("tab in title") << "a\tb"
                                << "" << qint64(-1)
                                << "title: not UTF-8, or holds control characters";
  QTest::newRow("4096-byte text") << "x" << QString(4096, 'x') << qint64(-1) << "";
  QTest::newRow("4097-byte text") << "x" << QString(4097, 'x') << qint64(-1)
                                  << "text: 4097 bytes, the limit is 4096";
}

void TestAnnotationStore::validation() {
  QFETCH(QString, title);
  QFETCH(QString, text);
  QFETCH(qint64, end_offset_ms);
  QFETCH(QString, error);
  Annotation a = at(kNowMs, title.toStdString());
  a.text = text.toStdString();
  if (end_offset_ms >= 0) a.end_ms = kNowMs + end_offset_ms;
  const Status s = validate_annotation(a);
  QCOMPARE(QString::fromStdString(s.message()), error);
}

QTEST_GUILESS_MAIN(TestAnnotationStore)
#include "tst_annotation_store.moc"
