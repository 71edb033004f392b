// Coverage: the real collector records when it ran (coverage.sqlite), and /api/query zero-fills
// counters only in that time. Before the first start, while stopped and after a SIGKILL (from the
// last heartbeat on) a step without stored data is absent: a gap, not a zero. Data sent with the
// real SDK comes back exact throughout.
#include <QtTest>

#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "collector_process.h"
#include "storage/coverage_format.h"
#include "tally/client.h"

using namespace tally;
using namespace tally::testing;

namespace {

using Spans = std::vector<std::pair<double, double>>;  // [start, end] in unix seconds

int64_t now_ms() {
  return SystemClock::instance().now_ms();
}

// Sleeps until the wall clock is in the first 700 ms of a second, so a count made now lands in
// the second read just before it.
int64_t start_of_a_second() {
  while (now_ms() % 1000 >= 700) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return now_ms() / 1000;
}

Spans coverage(const CollectorProcess& c, int64_t from) {
  const json j = c.get("/api/coverage?from=" + std::to_string(from));
  Spans out;
  for (const auto& s : j.value("covered", json::array()))
    out.emplace_back(s[0].get<double>(), s[1].get<double>());
  return out;
}

bool covered(const Spans& spans, int64_t t) {
  for (const auto& [a, b] : spans)
    if (a < static_cast<double>(t + 1) && b > static_cast<double>(t)) return true;
  return false;
}

// The points of the one series of `metric`, step 1 s, sum, from `from` to now; {-1: status} when
// the answer is not one series.
std::map<int64_t, double> points(const CollectorProcess& c, const std::string& metric, int64_t from,
                                 int64_t* to = nullptr) {
  const json q = c.get("/api/query?metric=" + metric +
                       "&fn=sum&step=1&from=" + std::to_string(from) + "&to=now");
  std::map<int64_t, double> out;
  if (!q.contains("series") || q["series"].size() != 1) return {{-1, q.value("_status", 0)}};
  for (const auto& p : q["series"][0]["points"]) out[p[0].get<int64_t>()] = p[1].get<double>();
  if (to) *to = q["to"].get<int64_t>();
  return out;
}

// Checks the answer step by step: a step is there exactly when it shares time with the coverage
// or holds data, and is 0 unless it holds data.
void check_answer(const std::map<int64_t, double>& got, int64_t from, int64_t to,
                  const Spans& spans, const std::map<int64_t, double>& sent) {
  for (int64_t t = from; t < to; ++t) {
    const auto it = got.find(t);
    const auto data = sent.find(t);
    const bool want = covered(spans, t) || data != sent.end();
    QVERIFY2((it != got.end()) == want,
             qPrintable(QString("second %1 (%2 s from the start): %3, expected %4")
                            .arg(t)
                            .arg(t - from)
                            .arg(it != got.end() ? "present" : "absent")
                            .arg(want ? "present" : "absent")));
    if (it != got.end()) QCOMPARE(it->second, data != sent.end() ? data->second : 0.0);
  }
  double total = 0, want_total = 0;
  for (const auto& [t, v] : got) total += v;
  for (const auto& [t, v] : sent) want_total += v;
  QCOMPARE(total, want_total);
}

std::unique_ptr<Client> client_for(const CollectorProcess& c) {
  ClientOptions o;
  o.endpoint = c.ingest();
  o.flush_interval = std::chrono::milliseconds(100);
  o.ack_timeout = std::chrono::milliseconds(500);
  return std::make_unique<Client>(o);
}

// Counts v now, in a second of its own; returns that second.
int64_t count_now(Client& client, const std::string& metric, double v) {
  const int64_t s = start_of_a_second();
  client.count(metric, v);
  return s;
}

}  // namespace

class TestCoverage : public QObject {
  Q_OBJECT
 private slots:
  void timeBeforeTheFirstStartIsAGap();
  void aStoppedCollectorLeavesAGap();
  void aKilledCollectorsGapStartsAtItsLastHeartbeat();
};

// Started at T, a counter sent from T+2 s: a query from T-60 s has no points before the coverage
// began, zeros in covered seconds without data, and the exact sums.
void TestCoverage::timeBeforeTheFirstStartIsAGap() {
  const int64_t before_ms = now_ms();
  CollectorProcess c;
  QVERIFY(c.start());
  const int64_t ready_ms = now_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  auto client = client_for(c);
  std::map<int64_t, double> sent;
  sent[count_now(*client, "cov.first", 5)] = 5;
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  sent[count_now(*client, "cov.first", 7)] = 7;
  QVERIFY(client->flush(std::chrono::seconds(10)));
  const int64_t from = before_ms / 1000 - 60;
  QVERIFY(eventually([&] { return points(c, "cov.first", from).size() > 2; }));
  QVERIFY(eventually([&] {
    double t = 0;
    for (const auto& [k, v] : points(c, "cov.first", from)) t += v;
    return t == 12;
  }));

  const Spans spans = coverage(c, from);
  QCOMPARE(spans.size(), size_t(1));
  // Began between the launch and the ready file; runs up to now.
  QVERIFY2(spans[0].first * 1000 >= static_cast<double>(before_ms) &&
               spans[0].first * 1000 <= static_cast<double>(ready_ms),
           qPrintable(QString::number(spans[0].first)));
  int64_t to = 0;
  const auto got = points(c, "cov.first", from, &to);
  QVERIFY(spans[0].second >= static_cast<double>(to - 1));
  // The first point is the second the coverage began in; nothing before it.
  QCOMPARE(got.begin()->first, static_cast<int64_t>(spans[0].first));
  QVERIFY(got.begin()->first >= before_ms / 1000);
  check_answer(got, from, to, spans, sent);
}

// Stopped cleanly, down for 4 s, started again: the stopped span is absent, the rest zero-filled,
// the totals exact.
void TestCoverage::aStoppedCollectorLeavesAGap() {
  CollectorProcess c;
  QVERIFY(c.start());
  const int64_t from = now_ms() / 1000 - 10;
  std::map<int64_t, double> sent;
  {
    auto client = client_for(c);
    sent[count_now(*client, "cov.stop", 3)] = 3;
    QVERIFY(client->flush(std::chrono::seconds(10)));
  }
  QCOMPARE(c.stop(), 0);
  const int64_t stopped_ms = now_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(4000));
  const int64_t restart_ms = now_ms();
  QVERIFY(c.start());
  auto client = client_for(c);
  sent[count_now(*client, "cov.stop", 4)] = 4;
  QVERIFY(client->flush(std::chrono::seconds(10)));
  QVERIFY(eventually([&] {
    double t = 0;
    for (const auto& [k, v] : points(c, "cov.stop", from)) t += v;
    return t == 7;
  }));

  const Spans spans = coverage(c, from);
  QCOMPARE(spans.size(), size_t(2));
  // The first run ends when it stopped (its exact end), the second begins after the restart.
  QVERIFY2(spans[0].second * 1000 <= static_cast<double>(stopped_ms) &&
               spans[0].second * 1000 >= static_cast<double>(stopped_ms - 20000),
           qPrintable(QString::number(spans[0].second)));
  QVERIFY(spans[1].first * 1000 >= static_cast<double>(restart_ms));
  QVERIFY(spans[1].first - spans[0].second >= 3.9);
  int64_t to = 0;
  const auto got = points(c, "cov.stop", from, &to);
  int64_t missing = 0;
  for (int64_t t = static_cast<int64_t>(spans[0].second); t < static_cast<int64_t>(spans[1].first);
       ++t)
    missing += got.count(t) ? 0 : 1;
  QVERIFY2(missing >= 3, qPrintable(QString::number(missing)));
  check_answer(got, from, to, spans, sent);
}

// SIGKILL: the record ends at the last heartbeat, at most kHeartbeatMs before the kill; the gap
// starts there. Nothing acknowledged is lost.
void TestCoverage::aKilledCollectorsGapStartsAtItsLastHeartbeat() {
  CollectorProcess c;
  QVERIFY(c.start());
  const int64_t from = now_ms() / 1000 - 10;
  std::map<int64_t, double> sent;
  {
    auto client = client_for(c);
    sent[count_now(*client, "cov.kill", 2)] = 2;
    QVERIFY(client->flush(std::chrono::seconds(10)));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // a heartbeat or two
  const int64_t kill_ms = now_ms();
  c.kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(4000));
  QVERIFY(c.start());
  auto client = client_for(c);
  sent[count_now(*client, "cov.kill", 6)] = 6;
  QVERIFY(client->flush(std::chrono::seconds(10)));
  QVERIFY(eventually([&] {
    double t = 0;
    for (const auto& [k, v] : points(c, "cov.kill", from)) t += v;
    return t == 8;
  }));

  const Spans spans = coverage(c, from);
  QCOMPARE(spans.size(), size_t(2));
  const double end_ms = spans[0].second * 1000;
  const int64_t beat = collector::coverage_format::kHeartbeatMs;
  // 300 ms for the heartbeat thread's own lateness on a busy machine.
  QVERIFY2(
      end_ms <= static_cast<double>(kill_ms) && end_ms >= static_cast<double>(kill_ms - beat - 300),
      qPrintable(
          QString("ended %1 ms before the kill").arg(static_cast<double>(kill_ms) - end_ms)));
  int64_t to = 0;
  const auto got = points(c, "cov.kill", from, &to);
  // The first second missing after the first run.
  int64_t gap = static_cast<int64_t>(spans[0].first);
  while (got.count(gap)) ++gap;
  QVERIFY2(gap * 1000 >= kill_ms - beat - 1300 && gap * 1000 <= kill_ms + 1000,
           qPrintable(QString("the gap starts %1 ms before the kill").arg(kill_ms - gap * 1000)));
  check_answer(got, from, to, spans, sent);
}

QTEST_GUILESS_MAIN(TestCoverage)
#include "tst_coverage.moc"
