// Upgrades: a data directory written by Tally 0.1.0 (commit 65b6d54; data/upgrade/ says how it
// was made: stored buckets plus a write-ahead log left by a SIGKILL) opens in this collector,
// which replays 0.1.0's log and answers the exact totals at every resolution; it keeps working
// on it (new points add to old series) and opens it again after a restart. The first start logs
// the migration before and after (event=migration_started, event=migration_done) and records
// the writer in the TALLY file; the second start logs neither. A directory that a newer Tally
// wrote is refused with a clear message and left byte for byte as it was.
#include <QtTest>

#include <filesystem>
#include <fstream>
#include <map>

#include "batch_builder.h"
#include "collector_process.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::testing;
namespace fs = std::filesystem;

namespace {

// The retention the fixture was written with: every resolution kept for 100 years.
const QStringList kFixtureArgs = {"--retention", "1s:100y,10s:100y,1m:100y,1h:100y"};

// Unpacks the 0.1.0 fixture into dir; returns its creation time (unix seconds), 0 on failure.
int64_t unpack_fixture(const QString& dir) {
  QProcess tar;
  tar.start("tar", {"-C", dir, "-xzf", QString(TALLY_TEST_DATA) + "/upgrade/0.1.0-data.tar.gz"});
  if (!tar.waitForFinished(30000) || tar.exitCode() != 0) return 0;
  std::ifstream in((dir + "/created_unix").toStdString());
  int64_t t = 0;
  in >> t;
  return t;
}

// Per value of tag `k` (or "" without group_by), the sum of metric's points in [from, to).
std::map<std::string, double> sums(const CollectorProcess& c, const std::string& metric,
                                   const std::string& fn, int64_t step, int64_t from, int64_t to,
                                   bool by_k) {
  const json q = c.get("/api/query?metric=" + metric + "&fn=" + fn +
                       "&step=" + std::to_string(step) + "&from=" + std::to_string(from) +
                       "&to=" + std::to_string(to) + (by_k ? "&group_by=k" : ""));
  std::map<std::string, double> out;
  if (!q.contains("series")) {
    out["error"] = -1;
    return out;
  }
  for (const auto& s : q["series"]) {
    const std::string key = by_k ? s["tags"].value("k", "") : "";
    for (const auto& p : s["points"])
      if (!p[1].is_null()) out[key] += p[1].get<double>();
  }
  return out;
}

std::map<std::string, std::string> read_dir(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    files[fs::relative(e.path(), dir).string()] =
        std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  return files;
}

}  // namespace

class TestUpgrade : public QObject {
  Q_OBJECT
 private slots:
  void dataFrom010OpensWithExactTotals();
  void dataFromANewerTallyIsRefusedUntouched();
  void historyWithoutACoverageRecordIsZeroFilledFromItsFirstBucket();
};

void TestUpgrade::dataFrom010OpensWithExactTotals() {
  QTemporaryDir tmp;
  const int64_t created = unpack_fixture(tmp.path());
  QVERIFY2(created > 0, "cannot unpack data/upgrade/0.1.0-data.tar.gz");
  const QString data = tmp.path() + "/data";
  const int64_t from = created - 300, to = created + 300;
  std::map<std::string, double> hits = {{"a", 15}, {"b", 10}, {"wal", 300}};
  for (int start = 0; start < 2; ++start) {
    CollectorProcess c(data);
    const QString log = tmp.path() + "/collector-" + QString::number(start) + ".log";
    QVERIFY2(c.start(kFixtureArgs + QStringList{"--log-file", log}),
             "the collector did not start on 0.1.0's data directory");
    {
      std::ifstream in(log.toStdString());
      const std::string text((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
      const size_t began = text.find("event=migration_started");
      const size_t done = text.find("event=migration_done");
      const size_t opened = text.find("event=opened");
      QVERIFY2(opened != std::string::npos, text.c_str());
      if (start == 0) {
        // Before anything is opened, and after the log is replayed, in that order.
        QVERIFY2(began != std::string::npos && done != std::string::npos, text.c_str());
        QVERIFY2(began < text.find("event=wal_replayed") &&
                     text.find("event=wal_replayed") < done && done < opened,
                 text.c_str());
        QVERIFY2(text.find("from=1 from_version=0.1.0 to=2", began) != std::string::npos,
                 text.c_str());
        QVERIFY2(text.find("changes=\"none needed\"", done) != std::string::npos, text.c_str());
        std::ifstream marker((data + "/TALLY").toStdString());
        const std::string m((std::istreambuf_iterator<char>(marker)),
                            std::istreambuf_iterator<char>());
        QVERIFY2(m.find("writer_revision=2\n") != std::string::npos, m.c_str());
      } else {
        QVERIFY2(began == std::string::npos && done == std::string::npos, text.c_str());
      }
    }
    for (int64_t step : {1, 10, 60, 3600}) {
      const int64_t f = bucket_start(from, step), t = bucket_start(to, step) + step;
      QCOMPARE(sums(c, "upgrade.hits", "sum", step, f, t, true), hits);
      QCOMPARE(sums(c, "upgrade.statsd", "sum", step, f, t, false),
               (std::map<std::string, double>{{"", 7}}));
      QCOMPARE(sums(c, "upgrade.latency", "count", step, f, t, false),
               (std::map<std::string, double>{{"", 3}}));
      QCOMPARE(sums(c, "upgrade.depth", "max", step, f, t, false),
               (std::map<std::string, double>{{"", 7}}));
    }
    if (start == 0) {
      // New points on 0.1.0's series, by a producer of today.
      RawProducer p(c.ingest());
      BatchBuilder b(99, 1);
      b.def(1, "upgrade.hits", {{"k", "a"}}).count(1, created + 10, 1000);
      QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
      QVERIFY(eventually([&] {
        return sums(c, "upgrade.hits", "sum", 60, bucket_start(from, 60), to + 60, true)["a"] ==
               1015;
      }));
      hits["a"] = 1015;  // what the second start must show at every resolution
    }
    QCOMPARE(c.stop(), 0);
  }
}

void TestUpgrade::dataFromANewerTallyIsRefusedUntouched() {
  QTemporaryDir tmp;
  QVERIFY(unpack_fixture(tmp.path()) > 0);
  const fs::path data = (tmp.path() + "/data").toStdString();
  // A later Tally's directory: its marker says format 2.
  std::string marker;
  {
    std::ifstream in(data / "TALLY");
    marker.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  const size_t at = marker.find("format=1");
  QVERIFY(at != std::string::npos);
  marker.replace(at, 8, "format=2");
  std::ofstream(data / "TALLY", std::ios::trunc) << marker;
  const auto before = read_dir(data);
  QProcess p;
  p.setProcessChannelMode(QProcess::MergedChannels);
  p.start(TALLY_COLLECTOR_BIN,
          QStringList{"--data-dir", QString::fromStdString(data.string()), "--http", "127.0.0.1:0",
                      "--ingest", "tcp://127.0.0.1:*", "--live", "off", "--statsd", "off"} +
              kFixtureArgs);
  QVERIFY(p.waitForFinished(30000));
  QVERIFY(p.exitCode() != 0);
  const QString out = QString::fromUtf8(p.readAll());
  QVERIFY2(out.contains("format 2, this collector reads format 1"), qPrintable(out));
  QVERIFY(read_dir(data) == before);
}

// 0.1.0 kept no record of when it ran. Its history counts as covered from its earliest stored
// bucket on (so an upgrade does not turn old zeros into gaps); before that bucket, nothing.
void TestUpgrade::historyWithoutACoverageRecordIsZeroFilledFromItsFirstBucket() {
  QTemporaryDir tmp;
  const int64_t created = unpack_fixture(tmp.path());
  QVERIFY(created > 0);
  const QString data = tmp.path() + "/data";
  QVERIFY(!fs::exists((data + "/coverage.sqlite").toStdString()));
  CollectorProcess c(data);
  QVERIFY(c.start(kFixtureArgs));
  const int64_t from = created - 300, to = created + 300;
  const json q = c.get("/api/query?metric=upgrade.hits&fn=sum&step=1&from=" + std::to_string(from) +
                       "&to=" + std::to_string(to));
  QCOMPARE(q["series"].size(), size_t(1));
  std::map<int64_t, double> got;
  for (const auto& p : q["series"][0]["points"]) got[p[0].get<int64_t>()] = p[1].get<double>();
  QVERIFY(!got.empty());
  // The fixture's first points came within two seconds of `created`.
  const int64_t first = got.begin()->first;
  QVERIFY2(first >= created && first <= created + 2, qPrintable(QString::number(first - created)));
  QVERIFY(got.begin()->second > 0);  // the first point is data, not a zero before it
  // From there on every second is there: zero-filled up to now.
  for (int64_t t = first; t < to; ++t) QVERIFY2(got.count(t), qPrintable(QString::number(t)));
  double total = 0;
  for (const auto& [t, v] : got) total += v;
  QCOMPARE(total, 325.0);  // a 15, b 10, wal 300
  // The record now says so, from the first bucket on.
  const json cov = c.get("/api/coverage?from=" + std::to_string(from));
  QVERIFY2(cov["covered"].size() == 1, cov.dump().c_str());
  QCOMPARE(cov["covered"][0][0].get<double>(), static_cast<double>(first));
  QCOMPARE(c.stop(), 0);
  QVERIFY(fs::exists((data + "/coverage.sqlite").toStdString()));
}

QTEST_GUILESS_MAIN(TestUpgrade)
#include "tst_upgrade.moc"
