// The operator's commands against real processes. Backup and restore: `tally backup` of a running
// collector while a producer keeps sending, `tally restore` into a new data directory, and a second
// collector on it that must answer exactly as at some moment during the backup: batch i adds i, so
// the restored total is k(k+1)/2 for one k between the batches acknowledged before the backup began
// and those acknowledged when it ended (a lost or doubled batch gives no such k). Then damaged,
// unfinished and misdirected backups are refused and change nothing.
#include <QtTest>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli_run.h"
#include "collector_process.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::testing;
namespace fs = std::filesystem;

namespace {

using Run = CliRun;

QString url(const CollectorProcess& c) {
  return QString("http://127.0.0.1:%1").arg(c.http_port());
}

// The total of metric bk.hits at a step, over the last hour.
int64_t stored_total(const CollectorProcess& c, int step) {
  const int64_t now = SystemClock::instance().now_s();
  const json q = c.get("/api/query?metric=bk.hits&fn=sum&step=" + std::to_string(step) +
                       "&from=" + std::to_string(now - 3600) + "&to=" + std::to_string(now + 120));
  return static_cast<int64_t>(total(q));
}

// The name of the write-ahead log's oldest segment ("<first lsn>.log", zero-padded, so names
// sort as their LSNs do); "" when there is none or the directory changed under the listing.
std::string oldest_segment(const CollectorProcess& c) {
  std::string oldest;
  std::error_code ec;
  fs::directory_iterator it(fs::path(c.data_dir().toStdString()) / "wal", ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() == ".log" && (oldest.empty() || p.filename().string() < oldest))
      oldest = p.filename().string();
  }
  return ec ? std::string() : oldest;
}

}  // namespace

class TestBackup : public QObject {
  Q_OBJECT
 private slots:
  void backupDuringIngestRestoresExactly();
  void damagedOrUnfinishedBackupsAreRefused();
  void misdirectedBackupsAreRefused();
  void reloadAppliesTheLogLevelAndNamesTheRest();
};

// `tally reload` (as SIGHUP) reads the configuration file again: the log level changes at once;
// a setting that only a start applies (here lateness) is named in the log; a file that does not
// load changes nothing and says why.
void TestBackup::reloadAppliesTheLogLevelAndNamesTheRest() {
  QTemporaryDir tmp;
  const QString conf = tmp.path() + "/collector.toml", log = tmp.path() + "/collector.log",
                ready = tmp.path() + "/ready.json";
  auto write_conf = [&](const std::string& extra) {
    std::ofstream(conf.toStdString(), std::ios::trunc)
        << "data_dir = \"" << tmp.path().toStdString() << "/data\"\n"
        << "http = \"127.0.0.1:0\"\ningest = \"tcp://127.0.0.1:*\"\nlive = \"off\"\n"
        << "statsd = \"off\"\nshards = 2\nlog_file = \"" << log.toStdString() << "\"\n"
        << extra;
  };
  write_conf("log_level = \"info\"\n");
  QProcess c;
  c.start(TALLY_COLLECTOR_BIN, {"--config", conf, "--ready-file", ready});
  QVERIFY(eventually([&] { return QFileInfo::exists(ready); }));
  std::ifstream in(ready.toStdString());
  const json r = json::parse(in);
  const QString collector = QString("http://127.0.0.1:%1").arg(r["http_port"].get<int>());
  auto log_text = [&] {
    std::ifstream l(log.toStdString());
    return std::string((std::istreambuf_iterator<char>(l)), std::istreambuf_iterator<char>());
  };
  // Unchanged file: nothing to say.
  Run run = run_tally_cli({"--collector", collector, "reload"});
  QVERIFY2(run.code == 0, qPrintable(run.err));
  QVERIFY(log_text().find("event=reload_needs_restart") == std::string::npos);
  // Debug logging and a longer lateness.
  write_conf("log_level = \"debug\"\nlateness = \"5s\"\n");
  run = run_tally_cli({"--collector", collector, "reload"});
  QVERIFY2(run.code == 0, qPrintable(run.err));
  QVERIFY2(
      run.out.contains("log level debug") && run.out.contains("settings that need a restart: 1"),
      qPrintable(run.out));
  std::string text = log_text();
  QVERIFY2(text.find("event=log_level_changed from=info to=debug") != std::string::npos,
           text.c_str());
  QVERIFY2(text.find("event=reload_needs_restart setting=lateness") != std::string::npos,
           text.c_str());
  // A file that does not load: refused, the running settings stay.
  write_conf("log_level = \"loud\"\n");
  run = run_tally_cli({"--collector", collector, "reload"});
  QCOMPARE(run.code, 3);
  QVERIFY2(run.err.contains("log_level"), qPrintable(run.err));
  c.terminate();
  QVERIFY(c.waitForFinished(20000));
  QCOMPARE(c.exitCode(), 0);
}

void TestBackup::backupDuringIngestRestoresExactly() {
  QTemporaryDir tmp;
  const QString backup = tmp.path() + "/backup", restored = tmp.path() + "/restored";
  CollectorProcess a;
  // Small log segments and a 1 s checkpoint: segments are deleted behind the checkpoints all the
  // time, so a backup that let them go between its snapshots and its copy of the log would lose
  // batches.
  // A pause between the snapshots and the copy of the log lets several checkpoints pass there.
  QVERIFY(a.start({"--checkpoint", "1s", "--lateness", "1s", "--wal-segment-bytes", "4096",
                   "--debug-backup-pause", "4s"}));
  std::atomic<int64_t> acked{0};
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    RawProducer p(a.ingest());
    for (uint64_t seq = 1; !stop.load(); ++seq) {
      wire::Batch b;
      b.set_producer_id(4242);
      b.set_seq(seq);
      if (seq == 1) {
        auto* d = b.add_defs();
        d->set_ref(1);
        d->set_metric("bk.hits");
        d->set_kind(wire::COUNTER);
      }
      b.mutable_counters()->add_refs(1);
      b.mutable_counters()->add_times(SystemClock::instance().now_s());
      b.mutable_counters()->add_values(static_cast<double>(seq));
      auto ack = p.send(b);
      if (!ack || ack->code() != wire::Ack::OK) return;  // the test's checks below then fail
      acked.store(static_cast<int64_t>(seq));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // paces the load
    }
  });
  QVERIFY(eventually([&] { return acked.load() >= 300; }));
  // The log is cut behind checkpoints: the backup starts once the oldest segment has gone.
  const std::string first = oldest_segment(a);
  QVERIFY(!first.empty());
  QVERIFY(eventually([&] {
    const std::string now = oldest_segment(a);
    return !now.empty() && now > first;
  }));
  const json covered_a = a.get("/api/coverage?from=-1h");
  QVERIFY2(covered_a["covered"].size() == 1, covered_a.dump().c_str());
  const int64_t before = acked.load();
  const Run r = run_tally_cli({"--collector", url(a), "backup", backup});
  const int64_t after = acked.load();
  QVERIFY2(r.code == 0, qPrintable(r.err));
  QVERIFY2(r.out.startsWith("backup written to " + backup), qPrintable(r.out));
  QVERIFY(eventually([&] { return acked.load() >= after + 100; }));  // ingest went on
  stop = true;
  producer.join();
  const int64_t sent = acked.load();
  QVERIFY(eventually([&] { return stored_total(a, 1) == sent * (sent + 1) / 2; }));
  QCOMPARE(a.stop(), 0);

  const Run rr = run_tally_cli({"restore", backup, restored});
  QVERIFY2(rr.code == 0, qPrintable(rr.err));
  CollectorProcess b(restored);
  QVERIFY(b.start());
  const int64_t got = stored_total(b, 1);
  int64_t k = before;
  while (k < after && k * (k + 1) / 2 < got) ++k;
  qInfo(
      "acknowledged %lld before the backup, %lld when it ended; the restored total is batch "
      "1..%lld",
      static_cast<long long>(before), static_cast<long long>(after), static_cast<long long>(k));
  QCOMPARE(got, k * (k + 1) / 2);
  for (int step : {10, 60}) QCOMPARE(stored_total(b, step), got);
  // The coverage record came with the backup: the restored collector knows when `a` began.
  const json covered_b = b.get("/api/coverage?from=-1h");
  QVERIFY2(!covered_b["covered"].empty(), covered_b.dump().c_str());
  QCOMPARE(covered_b["covered"][0][0].get<double>(), covered_a["covered"][0][0].get<double>());
  // The restored collector takes new batches on top (the producer's sequence goes on).
  QCOMPARE(b.stop(), 0);
}

void TestBackup::damagedOrUnfinishedBackupsAreRefused() {
  QTemporaryDir tmp;
  const QString backup = tmp.path() + "/backup";
  {
    CollectorProcess a;
    QVERIFY(a.start());
    RawProducer p(a.ingest());
    wire::Batch b;
    b.set_producer_id(7);
    b.set_seq(1);
    auto* d = b.add_defs();
    d->set_ref(1);
    d->set_metric("bk.hits");
    d->set_kind(wire::COUNTER);
    b.mutable_counters()->add_refs(1);
    b.mutable_counters()->add_times(SystemClock::instance().now_s());
    b.mutable_counters()->add_values(5);
    QCOMPARE(p.send(b)->code(), wire::Ack::OK);
    const Run r = run_tally_cli({"--collector", url(a), "backup", backup});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QCOMPARE(a.stop(), 0);
  }
  // A byte changed in a shard file: refused by name, nothing written.
  const std::string shard = (backup + "/shard-01.sqlite").toStdString();
  {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x5a');
  }
  const QString target = tmp.path() + "/restored";
  Run r = run_tally_cli({"restore", backup, target});
  QCOMPARE(r.code, 3);
  QVERIFY2(r.err.contains("backup file shard-01.sqlite differs from what was backed up"),
           qPrintable(r.err));
  QVERIFY(!QFileInfo::exists(target));
  // Without its manifest it is an unfinished backup.
  fs::remove((backup + "/MANIFEST.json").toStdString());
  r = run_tally_cli({"restore", backup, target});
  QCOMPARE(r.code, 4);
  QVERIFY2(r.err.contains("holds no MANIFEST.json"), qPrintable(r.err));
  QVERIFY(!QFileInfo::exists(target));
}

void TestBackup::misdirectedBackupsAreRefused() {
  CollectorProcess a;
  QVERIFY(a.start());
  QTemporaryDir tmp;
  // Inside the data directory.
  Run r = run_tally_cli({"--collector", url(a), "backup", a.data_dir() + "/backup"});
  QCOMPARE(r.code, 3);
  QVERIFY2(r.err.contains("is inside the data directory"), qPrintable(r.err));
  // Into a directory that holds something.
  std::ofstream((tmp.path() + "/keep.txt").toStdString()) << "mine\n";
  r = run_tally_cli({"--collector", url(a), "backup", tmp.path()});
  QCOMPARE(r.code, 3);
  QVERIFY2(r.err.contains("exists and is not empty"), qPrintable(r.err));
  QVERIFY(QFileInfo::exists(tmp.path() + "/keep.txt"));
  // Restore into a data directory that holds something.
  r = run_tally_cli({"restore", tmp.path(), a.data_dir()});
  QVERIFY(r.code != 0);
  QCOMPARE(a.stop(), 0);
}

QTEST_GUILESS_MAIN(TestBackup)
#include "tst_backup.moc"
