// Durability at start-up: damage in the write-ahead log (a torn tail is cut, anything before the
// tail stops start-up naming file and offset, --salvage-wal keeps what can still be read), the
// data directory's TALLY file (empty or without its lines), and an unreadable shard file. Real
// files in a temporary directory and the real collector binary.
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "batch_builder.h"
#include "collector_process.h"
#include "storage/data_dir.h"
#include "storage/wal.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::collector;
using namespace tally::testing;
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> segments(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

void flip_byte(const fs::path& file, uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

struct Run {
  int exit_code = -1;
  bool crashed = true;
  QString err;
};

// Runs the collector to its end (it is expected to refuse to start).
Run run_collector(const QStringList& args) {
  QProcess p;
  p.start(TALLY_COLLECTOR_BIN, args);
  Run r;
  if (!p.waitForFinished(30000)) {
    p.kill();
    p.waitForFinished(5000);
    r.err = "did not exit";
    return r;
  }
  r.crashed = p.exitStatus() != QProcess::NormalExit;
  r.exit_code = p.exitCode();
  r.err = QString::fromUtf8(p.readAllStandardError());
  return r;
}

QStringList offline_args(const QString& data_dir) {
  return {"--data-dir", data_dir, "--http",   "127.0.0.1:0", "--ingest", "tcp://127.0.0.1:*",
          "--live",     "off",    "--statsd", "off",         "--shards", "2"};
}

}  // namespace

class TestDurability : public QObject {
  Q_OBJECT
 private slots:
  void walDamage_data();
  void walDamage();
  void markerFile_data();
  void markerFile();
  void emptyMarkerStopsStartupWithItsName();
  void unreadableShardStopsStartupWithItsName();
  void midLogCorruptionStopsStartupAndSalvageKeepsLaterSegments();
  void logIsCutWhileSomeShardsAreIdle();
};

// Six records of 77 bytes (17 header + 60 payload), two per 100-byte segment: [1,2] [3,4] [5,6].
void TestDurability::walDamage_data() {
  QTest::addColumn<int>("segment");
  QTest::addColumn<int>("offset");
  QTest::addColumn<bool>("stops");
  QTest::addColumn<QList<quint64>>("kept");  // lsns read back (after salvage, when it stops)
  QTest::newRow("crc, segment 1 of 3, 2nd record")
      << 0 << 77 + 30 << true << QList<quint64>{1, 3, 4, 5, 6};
  QTest::newRow("crc, segment 1 of 3, 1st record") << 0 << 30 << true << QList<quint64>{3, 4, 5, 6};
  QTest::newRow("length, segment 2 of 3") << 1 << 1 << true << QList<quint64>{1, 2, 5, 6};
  QTest::newRow("crc, last segment, before a valid record")
      << 2 << 30 << true << QList<quint64>{1, 2, 3, 4};
  QTest::newRow("crc, last record (torn tail)")
      << 2 << 77 + 30 << false << QList<quint64>{1, 2, 3, 4, 5};
}

void TestDurability::walDamage() {
  QFETCH(int, segment);
  QFETCH(int, offset);
  QFETCH(bool, stops);
  QFETCH(QList<quint64>, kept);
  QTemporaryDir dir;
  WalOptions o;
  o.dir = (dir.path() + "/wal").toStdString();
  o.segment_bytes = 100;
  {
    auto w = Wal::open(o);
    QVERIFY(w.has_value());
    QVERIFY((*w)->replay([](uint64_t, std::string_view) {}).is_ok());
    for (int i = 1; i <= 6; ++i)
      QCOMPARE(*(*w)->append(std::string(60, char('a' + i))), uint64_t(i));
    QVERIFY((*w)->sync(true).is_ok());
  }
  auto segs = segments(o.dir);
  QCOMPARE(segs.size(), size_t(3));
  std::vector<uintmax_t> sizes;
  for (auto& s : segs) sizes.push_back(fs::file_size(s));
  flip_byte(segs[static_cast<size_t>(segment)], static_cast<uint64_t>(offset));

  auto w = Wal::open(o);
  QVERIFY(w.has_value());
  std::vector<uint64_t> lsns;
  Status s = (*w)->replay([&](uint64_t lsn, std::string_view p) {
    QCOMPARE(p, std::string_view(std::string(60, char('a' + lsn))));
    lsns.push_back(lsn);
  });
  const int damaged_at = offset >= 77 ? 77 : 0;
  if (!stops) {
    QVERIFY2(s.is_ok(), s.to_string().c_str());
    QCOMPARE(QList<quint64>(lsns.begin(), lsns.end()), kept);
    QCOMPARE(fs::file_size(segs[2]), uintmax_t(damaged_at));
    return;
  }
  // Stops: corruption naming the segment and the offset; nothing deleted or cut.
  QCOMPARE(s.code(), StatusCode::kCorruption);
  QVERIFY2(s.message().find(segs[static_cast<size_t>(segment)].string()) != std::string::npos,
           s.message().c_str());
  QVERIFY2(s.message().find("offset " + std::to_string(damaged_at)) != std::string::npos,
           s.message().c_str());
  QVERIFY2(s.message().find("--salvage-wal") != std::string::npos, s.message().c_str());
  QCOMPARE(segments(o.dir).size(), size_t(3));
  for (size_t i = 0; i < 3; ++i) QCOMPARE(fs::file_size(segs[i]), sizes[i]);

  // Salvage: the damaged rest of the segment is moved aside, everything after it is read.
  o.salvage = true;
  auto ws = Wal::open(o);
  lsns.clear();
  s = (*ws)->replay([&](uint64_t lsn, std::string_view) { lsns.push_back(lsn); });
  QVERIFY2(s.is_ok(), s.to_string().c_str());
  QCOMPARE((*ws)->salvaged(), size_t(1));
  QCOMPARE(QList<quint64>(lsns.begin(), lsns.end()), kept);
  const fs::path aside =
      segs[static_cast<size_t>(segment)].string() + ".damaged-" + std::to_string(damaged_at);
  QVERIFY(fs::exists(aside));
  QCOMPARE(fs::file_size(aside) + fs::file_size(segs[static_cast<size_t>(segment)]),
           sizes[static_cast<size_t>(segment)]);
  // New records follow the last one read (the collector also raises it over every LSN its shards
  // stored, so a moved-aside LSN that reached a shard is never reused).
  QCOMPARE(*(*ws)->append("next"), uint64_t(kept.back() + 1));
  // And the salvaged log reads back cleanly without the flag.
  o.salvage = false;
  auto again = Wal::open(o);
  size_t n = 0;
  QVERIFY((*again)->replay([&](uint64_t, std::string_view) { ++n; }).is_ok());
  QCOMPARE(n, size_t(kept.size() + 1));
}

void TestDurability::markerFile_data() {
  QTest::addColumn<QByteArray>("content");
  QTest::addColumn<QString>("error");
  QTest::newRow("empty") << QByteArray() << "TALLY is empty";
  QTest::newRow("blank lines") << QByteArray("\n\n") << "TALLY is empty";
  QTest::newRow("no format line") << QByteArray("shards=2\n") << "has no format= line";
  QTest::newRow("no shards line") << QByteArray("format=1\n") << "has no shards= line";
  QTest::newRow("zero shards") << QByteArray("format=1\nshards=0\n") << "bad shard count";
  QTest::newRow("binary") << QByteArray("\x00\x01\xff", 3) << "has no format= line";
  QTest::newRow("future format") << QByteArray("format=9\nshards=2\n") << "format 9";
  QTest::newRow("good") << QByteArray("format=1\nshards=3\n") << "";
}

void TestDurability::markerFile() {
  QFETCH(QByteArray, content);
  QFETCH(QString, error);
  QTemporaryDir dir;
  {
    std::ofstream out((dir.path() + "/TALLY").toStdString(), std::ios::binary);
    out.write(content.constData(), content.size());
  }
  auto d = open_data_dir(dir.path().toStdString(), 2);
  if (error.isEmpty()) {
    QVERIFY(d.has_value());
    QCOMPARE(d->shards, uint32_t(3));
    return;
  }
  QVERIFY(!d.has_value());
  QCOMPARE(d.status().code(), StatusCode::kCorruption);
  QVERIFY2(d.status().message().find(error.toStdString()) != std::string::npos,
           d.status().message().c_str());
}

void TestDurability::emptyMarkerStopsStartupWithItsName() {
  QTemporaryDir dir;
  const QString data = dir.path() + "/data";
  fs::create_directories(data.toStdString());
  std::ofstream((data + "/TALLY").toStdString());
  Run r = run_collector(offline_args(data));
  QVERIFY2(!r.crashed, qPrintable(r.err));
  QCOMPARE(r.exit_code, 1);
  QVERIFY2(r.err.contains(data + "/TALLY is empty"), qPrintable(r.err));
}

void TestDurability::unreadableShardStopsStartupWithItsName() {
  QTemporaryDir dir;
  const QString data = dir.path() + "/data";
  {
    CollectorProcess c(data);
    QVERIFY(c.start());
    QCOMPARE(c.stop(), 0);
  }
  const std::string shard = (data + "/shard-01.sqlite").toStdString();
  QVERIFY(fs::exists(shard));
  fs::remove(shard + "-wal");
  fs::remove(shard + "-shm");
  {
    std::ofstream out(shard, std::ios::binary | std::ios::trunc);
    out << std::string(8192, 'x');  // not an SQLite file
  }
  Run r = run_collector(offline_args(data));
  QVERIFY2(!r.crashed, qPrintable(r.err));
  QCOMPARE(r.exit_code, 1);
  QVERIFY2(r.err.contains(QString::fromStdString(shard) + " cannot be read"), qPrintable(r.err));
}

void TestDurability::midLogCorruptionStopsStartupAndSalvageKeepsLaterSegments() {
  QTemporaryDir dir;
  const QString data = dir.path() + "/data";
  const QStringList extra = {"--wal-segment-bytes", "4096", "--checkpoint", "1h"};
  // Two minutes ahead: the buckets stay open, so the batches are only in the log when it is killed.
  const int64_t t0 = SystemClock::instance().now_s() + 120;
  constexpr int kBatches = 60;
  {
    CollectorProcess c(data);
    QVERIFY(c.start(extra));
    RawProducer p(c.ingest());
    for (int seq = 1; seq <= kBatches; ++seq) {
      BatchBuilder b(77, static_cast<uint64_t>(seq));
      // Each batch defines its series again (a 200-byte padding tag keeps segments short).
      b.def(1, "dur.hits", {{"pad", std::string(200, 'p')}}).count(1, t0, 1);
      auto ack = p.send(b.b);
      QVERIFY(ack.has_value());
      QCOMPARE(ack->code(), wire::Ack::OK);
    }
    c.kill();  // the log keeps every batch (no checkpoint ran)
  }
  const std::string wal_dir = (data + "/wal").toStdString();
  auto segs = segments(wal_dir);
  QVERIFY2(segs.size() >= 3, std::to_string(segs.size()).c_str());
  std::vector<uintmax_t> sizes;
  for (auto& s : segs) sizes.push_back(fs::file_size(s));
  // Damage the payload of the first record of segment 1.
  flip_byte(segs[0], 40);

  Run r = run_collector(offline_args(data) + extra);
  QVERIFY2(!r.crashed, qPrintable(r.err));
  QCOMPARE(r.exit_code, 1);
  QVERIFY2(r.err.contains(QString::fromStdString(segs[0].string()) + " at byte offset 0"),
           qPrintable(r.err));
  QVERIFY2(r.err.contains("--salvage-wal"), qPrintable(r.err));
  auto after = segments(wal_dir);
  QCOMPARE(after.size(), segs.size());
  for (size_t i = 0; i < segs.size(); ++i) QCOMPARE(fs::file_size(after[i]), sizes[i]);

  // Salvage: segment 1's records are moved aside; every later segment's batches are counted.
  CollectorProcess c(data);
  QVERIFY(c.start(extra + QStringList{"--salvage-wal"}));
  QVERIFY(fs::exists(segs[0].string() + ".damaged-0"));
  const std::string q = "/api/query?metric=dur.hits&step=1&from=" + std::to_string(t0 - 10) +
                        "&to=" + std::to_string(t0 + 10);
  // Every record has the same size, so segment 1 held sizes[0] / record of the batches.
  uintmax_t all = 0;
  for (auto b : sizes) all += b;
  QCOMPARE(all % kBatches, uintmax_t(0));
  const uintmax_t record = all / kBatches;
  const int64_t lost = static_cast<int64_t>(sizes[0] / record);
  QVERIFY(lost > 0 && lost < kBatches);
  json res = c.get(q);
  QCOMPARE(res["_status"].get<int>(), 200);
  QCOMPARE(static_cast<int64_t>(total(res)), kBatches - lost);
  QCOMPARE(c.stop(), 0);
}

// One series on four shards: three shards never receive a point. The log is still cut behind the
// checkpoints (an idle shard used to hold it back for ever, so the log grew without bound), and a
// kill -9 afterwards loses and doubles nothing.
void TestDurability::logIsCutWhileSomeShardsAreIdle() {
  QTemporaryDir tmp;
  const QString data = tmp.path() + "/data";
  CollectorProcess c(data);
  QVERIFY(c.start(
      {"--shards", "4", "--checkpoint", "1s", "--lateness", "1s", "--wal-segment-bytes", "4096"}));
  RawProducer p(c.ingest());
  auto log_bytes = [&] {
    uint64_t bytes = 0;
    for (const auto& e : fs::directory_iterator((data + "/wal").toStdString()))
      bytes += e.file_size();
    return bytes;
  };
  int64_t sent = 0;
  uint64_t seq = 0;
  auto send = [&](int n) {
    for (int i = 0; i < n; ++i) {
      BatchBuilder b(31, ++seq);
      if (seq == 1) b.def(1, "idle.hits", {});
      b.count(1, SystemClock::instance().now_s(), 1);
      auto ack = p.send(b.b);
      if (!ack || ack->code() != wire::Ack::OK) return false;
      ++sent;
    }
    return true;
  };
  QVERIFY(send(1000));
  const uint64_t grown = log_bytes();
  QVERIFY2(grown > 20000, std::to_string(grown).c_str());
  // Checkpoints pass while a little more arrives: the log shrinks to what they do not cover yet.
  QVERIFY(eventually(
      [&] {
        if (!send(5)) return false;
        return log_bytes() < grown / 4;
      },
      20000));
  c.kill();
  QVERIFY(c.start({"--shards", "4"}));
  const int64_t now = SystemClock::instance().now_s();
  const json q = c.get("/api/query?metric=idle.hits&step=60&from=" + std::to_string(now - 600) +
                       "&to=" + std::to_string(now + 60));
  QCOMPARE(static_cast<int64_t>(total(q)), sent);
}

QTEST_GUILESS_MAIN(TestDurability)
#include "tst_durability.moc"
