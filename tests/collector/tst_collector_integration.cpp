// Integration tests: the real tally-collector as a child process on loopback ports with a temp
// data directory, fed by the real SDK or by hand-made batches over a real DEALER socket, checked
// through the real HTTP API. Every count is compared exactly.
#include <QFile>
#include <QUdpSocket>
#include <QtTest>

#include <sqlite3.h>

#include <atomic>
#include <set>
#include <thread>

#include "batch_builder.h"
#include "collector_process.h"
#include "tally/client.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::testing;

namespace {

int64_t now_s() {
  return SystemClock::instance().now_s();
}

std::string q(const std::string& metric, int64_t from, int64_t to, const std::string& extra = "") {
  return "/api/query?metric=" + metric + "&from=" + std::to_string(from) +
         "&to=" + std::to_string(to) + extra;
}

std::map<std::string, double> by_tag(const json& answer, const std::string& key) {
  std::map<std::string, double> out;
  for (const auto& s : answer["series"]) {
    double t = 0;
    for (const auto& p : s["points"]) t += p[1].get<double>();
    out[s["tags"].value(key, std::string("<none>"))] = t;
  }
  return out;
}

// Reads a live-stream subscriber until an update for bucket t with this state and value comes;
// false when none came by the deadline.
bool saw_update(zmq::socket_t& sub, int64_t t, wire::LiveUpdate::State state, double value) {
  return eventually([&] {
    zmq::message_t topic, payload;
    while (sub.recv(topic, zmq::recv_flags::dontwait)) {
      (void)sub.recv(payload);
      wire::LiveBatch lb;
      if (!lb.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) continue;
      for (const auto& u : lb.updates())
        if (u.time() == t && u.state() == state && u.value() == value) return true;
    }
    return false;
  });
}

}  // namespace

class TestCollectorIntegration : public QObject {
  Q_OBJECT
 private slots:
  void millionIncrementsFromFourThreadsComeBackExactly();
  void filtersAndGroupBySelectTheRightSeries();
  void sumsAgreeAcrossResolutions();
  void latePointIsMergedAndPublishedAsCorrection();
  void liveStreamCarriesOnlyWhatSubscribersWant();
  void openBucketKeepsItsPartialsAfterACheckpoint();
  void duplicateBatchCountsOnce();
  void malformedFrameAndInvalidNameAreRejectedWhileServingCorrectTotals();
  void dataAndDeduplicationSurviveACleanRestart();
  void gaugesAndDistributionsThroughTheSdk();
  void badQueriesGetClearErrors();
  void statsdLinesOverUdpCountExactly();
  void thirtyDayQueryReadsHourlyRollupsAndEqualsWhatWasSent();
  void changedRetentionAppliesToExistingDataOnTheNextStart();
};

void TestCollectorIntegration::millionIncrementsFromFourThreadsComeBackExactly() {
  CollectorProcess c;
  QVERIFY(c.start());
  const int64_t start = now_s();
  {
    ClientOptions o;
    o.endpoint = c.ingest();
    o.flush_interval = std::chrono::milliseconds(200);
    Client client(o);
    std::vector<Counter> handles;
    for (int i = 0; i < 100; ++i)
      handles.push_back(client.counter("test.hits", {{"series", std::to_string(i)}}));
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 250000; ++i) {
          if (i % 2)
            handles[static_cast<size_t>((i + t) % 100)].add();
          else
            client.count("test.hits", 1, {{"series", std::to_string((i + t) % 100)}});
        }
      });
    }
    for (auto& th : threads) th.join();
    QVERIFY(client.flush(std::chrono::seconds(20)));
    QCOMPARE(client.stats().batches_dropped, uint64_t(0));
  }
  const int64_t end = now_s() + 2;
  json all = c.get(q("test.hits", start - 5, end));
  QCOMPARE(all["_status"].get<int>(), 200);
  QCOMPARE(total(all), 1000000.0);
  json grouped = c.get(q("test.hits", start - 5, end, "&group_by=series"));
  QCOMPARE(grouped["series"].size(), size_t(100));
  for (const auto& [k, v] : by_tag(grouped, "series")) QCOMPARE(v, 10000.0);
  // Auto step over the same range reads the same data at a coarser step.
  json coarse = c.get(q("test.hits", start - 60, end + 60, "&step=auto&points=10"));
  QCOMPARE(total(coarse), 1000000.0);
}

void TestCollectorIntegration::filtersAndGroupBySelectTheRightSeries() {
  CollectorProcess c;
  QVERIFY(c.start());
  RawProducer p(c.ingest());
  const int64_t t = now_s() - 30;
  BatchBuilder b(42, 1);
  b.def(1, "api.errors", {{"endpoint", "/a"}, {"status", "500"}})
      .def(2, "api.errors", {{"endpoint", "/a"}, {"status", "503"}})
      .def(3, "api.errors", {{"status", "500"}, {"endpoint", "/b"}})  // tag order does not matter
      .def(4, "api.errors", {{"endpoint", "/c"}})
      .count(1, t, 3)
      .count(2, t, 5)
      .count(3, t, 7)
      .count(4, t, 11);
  auto ack = p.send(b.b);
  QVERIFY(ack);
  QCOMPARE(ack->code(), wire::Ack::OK);

  struct Case {
    std::string extra;
    double expected;
    size_t series;
  };
  const Case cases[] = {
      {"", 26, 1},
      {"&filter=endpoint%3D/a", 8, 1},
      {"&filter=status!%3D500", 16, 1},  // absent status counts as "" (the /c series)
      {"&filter=status%3D~50.", 15, 1},
      {"&filter=endpoint%3D~/[ab]&filter=status%3D500", 10, 1},
      {"&filter=endpoint%3D/zzz", 0, 0},
      {"&group_by=endpoint", 26, 3},
      {"&group_by=status", 26, 3},  // 500, 503 and the series without status
      {"&group_by=endpoint,status", 26, 4},
  };
  for (const auto& cs : cases) {
    json r = c.get(q("api.errors", t - 10, t + 10, cs.extra));
    QCOMPARE(r["_status"].get<int>(), 200);
    QVERIFY2(r["series"].size() == cs.series, cs.extra.c_str());
    if (cs.series) QVERIFY2(total(r) == cs.expected, cs.extra.c_str());
  }
  auto byEndpoint =
      by_tag(c.get(q("api.errors", t - 10, t + 10, "&group_by=endpoint")), "endpoint");
  QCOMPARE(byEndpoint["/a"], 8.0);
  QCOMPARE(byEndpoint["/b"], 7.0);
  QCOMPARE(byEndpoint["/c"], 11.0);
  auto byStatus = by_tag(c.get(q("api.errors", t - 10, t + 10, "&group_by=status")), "status");
  QCOMPARE(byStatus["500"], 10.0);
  QCOMPARE(byStatus["503"], 5.0);
  QCOMPARE(byStatus["<none>"], 11.0);

  json tags = c.get("/api/tags?metric=api.errors");
  QCOMPARE(tags["tags"]["endpoint"], json({"/a", "/b", "/c"}));
  QCOMPARE(tags["tags"]["status"], json({"500", "503"}));
  json metrics = c.get("/api/metrics?search=api.");
  QCOMPARE(metrics["metrics"].size(), size_t(1));
  QCOMPARE(metrics["metrics"][0]["series"].get<int>(), 4);
  QCOMPARE(metrics["metrics"][0]["kind"].get<std::string>(), std::string("counter"));
}

void TestCollectorIntegration::sumsAgreeAcrossResolutions() {
  CollectorProcess c;
  QVERIFY(c.start());
  RawProducer p(c.ingest());
  // Three whole minutes of points, one per second, values 1..180, ending well before the watermark.
  const int64_t t0 = bucket_start(now_s() - 400, 60);
  BatchBuilder b(7, 1);
  b.def(1, "res.check", {{"k", "v"}});
  double expected = 0;
  for (int i = 0; i < 180; ++i) {
    b.count(1, t0 + i, i + 1);
    expected += i + 1;
  }
  QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
  json prev;
  for (const char* step : {"1", "10", "60"}) {
    json r;
    QVERIFY(eventually([&] {
      r = c.get(q("res.check", t0, t0 + 180, std::string("&step=") + step));
      return total(r) == expected;
    }));
    QCOMPARE(r["resolution"].get<int>(), std::atoi(step));
  }
  // Per minute, every resolution gives the same three numbers.
  for (const char* step : {"1", "10", "60"}) {
    json r = c.get(q("res.check", t0, t0 + 180, std::string("&step=") + step));
    double minute[3] = {0, 0, 0};
    for (const auto& pt : r["series"][0]["points"])
      minute[(pt[0].get<int64_t>() - t0) / 60] += pt[1].get<double>();
    QCOMPARE(minute[0], 1830.0);  // 1..60
    QCOMPARE(minute[1], 5430.0);  // 61..120
    QCOMPARE(minute[2], 9030.0);  // 121..180
  }
  json rate = c.get(q("res.check", t0, t0 + 60, "&step=60&fn=rate"));
  QCOMPARE(rate["series"][0]["points"][0][1].get<double>(), 1830.0 / 60);
}

void TestCollectorIntegration::latePointIsMergedAndPublishedAsCorrection() {
  CollectorProcess c;
  QVERIFY(c.start({"--lateness", "1s"}));
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "late.metric");
  sub.connect(c.live());
  RawProducer p(c.ingest());
  const int64_t t = now_s();
  QCOMPARE(p.send(BatchBuilder(9, 1).def(1, "late.metric", {}).count(1, t, 2).b)->code(),
           wire::Ack::OK);
  auto saw = [&](wire::LiveUpdate::State state, double value) {
    return saw_update(sub, t, state, value);
  };
  // The bucket closes (FINAL, value 2) and leaves memory; then a point for it arrives late.
  QVERIFY(saw(wire::LiveUpdate::FINAL, 2));
  json closed = c.get(q("late.metric", t, t + 1, "&step=1"));
  QCOMPARE(total(closed), 2.0);
  QVERIFY(!closed["series"][0].contains("partial_from"));
  QCOMPARE(p.send(BatchBuilder(9, 2).count(1, t, 3).b)->code(), wire::Ack::OK);
  QVERIFY(saw(wire::LiveUpdate::CORRECTION, 5));
  QCOMPARE(total(c.get(q("late.metric", t, t + 1, "&step=1"))), 5.0);
  for (const char* step : {"10", "60"})
    QCOMPARE(total(c.get(q("late.metric", t - 60, t + 60, std::string("&step=") + step))), 5.0);
  auto [status, metrics] = c.get_raw("/metrics");
  QVERIFY2(metrics.find("\ntally_late_points_total 1\n") != std::string::npos,
           metrics.substr(metrics.find("\ntally_late_points_total "), 40).c_str());
}

void TestCollectorIntegration::liveStreamCarriesOnlyWhatSubscribersWant() {
  // The live socket knows what its subscribers want (XPUB): with nobody listening no update is
  // built or sent; with one subscriber to live.a, live.b's buckets never go out, and every update
  // counted as published is one the subscriber received.
  CollectorProcess c;
  QVERIFY(c.start({"--lateness", "1s"}));
  RawProducer p(c.ingest());
  const int64_t t0 = now_s();
  QCOMPARE(p.send(BatchBuilder(21, 1)
                      .def(1, "live.a", {})
                      .def(2, "live.b", {})
                      .count(1, t0, 1)
                      .count(2, t0, 1)
                      .b)
               ->code(),
           wire::Ack::OK);
  // Both buckets close (their FINAL would go out) with nobody subscribed.
  QVERIFY(eventually([&] {
    return total(c.get(q("live.b", t0, t0 + 1, "&step=1"))) == 1 &&
           !c.get(q("live.b", t0, t0 + 1, "&step=1"))["series"][0].contains("partial_from");
  }));
  QCOMPARE(metric(c, "tally_live_updates_total"), 0.0);
  QCOMPARE(metric(c, "tally_live_topics"), 0.0);

  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "live.a");
  sub.connect(c.live());
  QVERIFY(eventually([&] { return metric(c, "tally_live_topics") == 1; }));
  // Points for both metrics each second, until live.a's open bucket has gone out as PARTIAL and
  // its first bucket as FINAL.
  uint64_t seq = 2, received = 0;
  bool partial = false, final_seen = false;
  std::set<std::string> topics;
  auto drain = [&] {
    zmq::message_t topic, payload;
    while (sub.recv(topic, zmq::recv_flags::dontwait)) {
      (void)sub.recv(payload);
      topics.insert(topic.to_string());
      wire::LiveBatch lb;
      QVERIFY(lb.ParseFromArray(payload.data(), static_cast<int>(payload.size())));
      received += static_cast<uint64_t>(lb.updates_size());
      for (const auto& u : lb.updates()) {
        partial |= u.state() == wire::LiveUpdate::PARTIAL;
        final_seen |= u.state() == wire::LiveUpdate::FINAL;
      }
    }
  };
  QVERIFY(eventually([&] {
    const int64_t t = now_s();
    (void)p.send(BatchBuilder(21, seq++).count(1, t, 1).count(2, t, 1).b);
    drain();
    return partial && final_seen;
  }));
  // Quiet: every update counted as published has arrived.
  QVERIFY(eventually([&] {
    drain();
    return metric(c, "tally_live_updates_total") == double(received);
  }));
  QCOMPARE(topics, (std::set<std::string>{"live.a"}));
  sub.close();
  QVERIFY(eventually([&] { return metric(c, "tally_live_topics") == 0; }));
}

void TestCollectorIntegration::openBucketKeepsItsPartialsAfterACheckpoint() {
  // A checkpoint writes open buckets to storage and keeps only what arrives after it in memory.
  // A watched bucket still goes out as PARTIAL with its whole value (what the checkpoint wrote
  // merged with what came since), not only at its FINAL a lateness later.
  CollectorProcess c;
  QVERIFY(c.start({"--lateness", "20s", "--checkpoint", "1s"}));
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "ckpt.metric");
  sub.connect(c.live());
  QVERIFY(eventually([&] { return metric(c, "tally_live_topics") == 1; }));
  RawProducer p(c.ingest());
  const int64_t t = now_s();
  QCOMPARE(p.send(BatchBuilder(31, 1).def(1, "ckpt.metric", {}).count(1, t, 5).b)->code(),
           wire::Ack::OK);
  auto saw = [&](wire::LiveUpdate::State state, double value) {
    return saw_update(sub, t, state, value);
  };
  QVERIFY(saw(wire::LiveUpdate::PARTIAL, 5));
  // A checkpoint has written the open bucket (nothing can be final within the 20 s lateness).
  QVERIFY(eventually([&] { return metric(c, "tally_buckets_written_total") > 0; }));
  QCOMPARE(p.send(BatchBuilder(31, 2).count(1, t, 3).b)->code(), wire::Ack::OK);
  QVERIFY(saw(wire::LiveUpdate::PARTIAL, 8));
  QCOMPARE(total(c.get(q("ckpt.metric", t, t + 1, "&step=1"))), 8.0);
}

void TestCollectorIntegration::duplicateBatchCountsOnce() {
  CollectorProcess c;
  QVERIFY(c.start());
  RawProducer p(c.ingest());
  const int64_t t = now_s() - 20;
  auto batch = BatchBuilder(11, 1).def(1, "dup.metric", {}).count(1, t, 4).b;
  QCOMPARE(p.send(batch)->code(), wire::Ack::OK);
  QCOMPARE(p.send(batch)->code(), wire::Ack::DUPLICATE);
  QCOMPARE(p.send(batch)->code(), wire::Ack::DUPLICATE);
  // Out of order is fine: seq 3 then the missing 2, each once.
  QCOMPARE(p.send(BatchBuilder(11, 3).count(1, t, 10).b)->code(), wire::Ack::OK);
  QCOMPARE(p.send(BatchBuilder(11, 2).count(1, t, 100).b)->code(), wire::Ack::OK);
  QCOMPARE(p.send(BatchBuilder(11, 2).count(1, t, 100).b)->code(), wire::Ack::DUPLICATE);
  QVERIFY(eventually([&] { return total(c.get(q("dup.metric", t - 5, t + 5))) == 114; }));
  auto [s, metrics] = c.get_raw("/metrics");
  QVERIFY(metrics.find("tally_batches_duplicate_total 3\n") != std::string::npos);
}

void TestCollectorIntegration::malformedFrameAndInvalidNameAreRejectedWhileServingCorrectTotals() {
  CollectorProcess c;
  QVERIFY(c.start());
  RawProducer p(c.ingest());
  const int64_t t = now_s() - 20;
  QCOMPARE(p.send(BatchBuilder(5, 1).def(1, "good.metric", {}).count(1, t, 6).b)->code(),
           wire::Ack::OK);

  auto garbage = p.send_frame(std::string("\xff\xff\xff\xff not a protobuf", 20));
  QVERIFY(garbage);
  QCOMPARE(garbage->code(), wire::Ack::INVALID);
  QVERIFY(garbage->reason().find("malformed") != std::string::npos);

  // A valid series next to an invalid one: the whole batch is refused, nothing is created.
  auto bad = p.send(BatchBuilder(5, 2)
                        .def(1, "good.metric", {})
                        .def(2, "1bad name", {})
                        .def(3, "other.new", {})
                        .count(1, t, 1000)
                        .count(3, t, 1)
                        .b);
  QVERIFY(bad);
  QCOMPARE(bad->code(), wire::Ack::INVALID);
  QVERIFY2(bad->reason().find("metric name") != std::string::npos, bad->reason().c_str());
  auto badTag = p.send(
      BatchBuilder(5, 3).def(4, "good.metric", {{"k", std::string(201, 'v')}}).count(4, t, 1).b);
  QCOMPARE(badTag->code(), wire::Ack::INVALID);
  QVERIFY(badTag->reason().find("tag value") != std::string::npos);
  auto kind = p.send(BatchBuilder(5, 4).def(5, "good.metric", {{"x", "y"}}, wire::GAUGE).b);
  QCOMPARE(kind->code(), wire::Ack::INVALID);
  QVERIFY(kind->reason().find("is a counter") != std::string::npos);
  auto ragged = BatchBuilder(5, 5).count(1, t, 1).b;
  ragged.mutable_counters()->add_times(t);
  QCOMPARE(p.send(ragged)->code(), wire::Ack::INVALID);
  auto unknown = p.send(BatchBuilder(5, 6).count(77, t, 1).b);
  QCOMPARE(unknown->code(), wire::Ack::UNKNOWN_REF);
  QCOMPARE(unknown->unknown_refs_size(), 1);
  QCOMPARE(unknown->unknown_refs(0), 77u);
  auto nan = p.send(BatchBuilder(5, 7).count(1, t, std::nan("")).b);
  QCOMPARE(nan->code(), wire::Ack::INVALID);

  // The collector still serves and still counts exactly.
  QCOMPARE(p.send(BatchBuilder(5, 8).count(1, t, 4).b)->code(), wire::Ack::OK);
  QVERIFY(eventually([&] { return total(c.get(q("good.metric", t - 5, t + 5))) == 10; }));
  json metrics = c.get("/api/metrics?search=other");
  QCOMPARE(metrics["metrics"].size(), size_t(0));
  auto [s, prom] = c.get_raw("/metrics");
  QVERIFY(prom.find("tally_batches_rejected_total 6\n") != std::string::npos);
  QVERIFY(prom.find("tally_batches_unknown_ref_total 1\n") != std::string::npos);
  QCOMPARE(c.get("/healthz")["status"].get<std::string>(), std::string("ok"));
}

void TestCollectorIntegration::dataAndDeduplicationSurviveACleanRestart() {
  CollectorProcess c;
  QVERIFY(c.start());
  const int64_t t = now_s();
  auto first = BatchBuilder(13, 1)
                   .def(1, "restart.metric", {{"a", "b"}})
                   .count(1, t - 100, 5)
                   .count(1, t, 7)
                   .b;
  {
    RawProducer p(c.ingest());
    QCOMPARE(p.send(first)->code(), wire::Ack::OK);
  }
  QVERIFY(eventually([&] { return total(c.get(q("restart.metric", t - 200, t + 5))) == 12; }));
  QCOMPARE(c.stop(), 0);
  QVERIFY(c.start());
  json after = c.get(q("restart.metric", t - 200, t + 5));
  QVERIFY2(total(after) == 12.0, after.dump().c_str());
  RawProducer p(c.ingest());
  // The same batch again is still a duplicate; the refs are remembered, so seq 2 needs no defs.
  QCOMPARE(p.send(first)->code(), wire::Ack::DUPLICATE);
  QCOMPARE(p.send(BatchBuilder(13, 2).count(1, t, 1).b)->code(), wire::Ack::OK);
  QVERIFY(eventually([&] { return total(c.get(q("restart.metric", t - 200, t + 5))) == 13; }));
  for (const char* step : {"10", "60"})
    QCOMPARE(total(c.get(q("restart.metric", t - 240, t + 60, std::string("&step=") + step))),
             13.0);
}

void TestCollectorIntegration::gaugesAndDistributionsThroughTheSdk() {
  CollectorProcess c;
  QVERIFY(c.start());
  const int64_t start = now_s();
  {
    ClientOptions o;
    o.endpoint = c.ingest();
    Client client(o);
    auto depth = client.gauge("queue.depth", {{"queue", "q1"}});
    for (int v : {5, 9, 2, 7}) depth.set(v);
    auto lat = client.distribution("api.latency_ms", {{"endpoint", "/login"}});
    for (int i = 1; i <= 1000; ++i) lat.observe(i);
    QVERIFY(client.flush(std::chrono::seconds(10)));
  }
  const int64_t end = now_s() + 2;
  json mx = c.get(q("queue.depth", start - 5, end, "&fn=max&step=60"));
  json mn = c.get(q("queue.depth", start - 5, end, "&fn=min&step=60"));
  json cnt = c.get(q("queue.depth", start - 5, end, "&fn=count&step=60"));
  double maxv = 0, minv = 1e9;
  for (const auto& p : mx["series"][0]["points"]) maxv = std::max(maxv, p[1].get<double>());
  for (const auto& p : mn["series"][0]["points"]) minv = std::min(minv, p[1].get<double>());
  QCOMPARE(maxv, 9.0);
  QCOMPARE(minv, 2.0);
  QCOMPARE(total(cnt), 4.0);
  QCOMPARE(total(c.get(q("api.latency_ms", start - 5, end, "&fn=count&step=60"))), 1000.0);
  QCOMPARE(total(c.get(q("api.latency_ms", start - 5, end, "&fn=sum&step=60"))), 500500.0);
  json h = c.get("/api/histogram?metric=api.latency_ms&from=" + std::to_string(start - 5) +
                 "&to=" + std::to_string(end));
  QCOMPARE(h["count"].get<int>(), 1000);
  QCOMPARE(h["min"].get<double>(), 1.0);
  QCOMPARE(h["max"].get<double>(), 1000.0);
  QVERIFY(std::abs(h["p50"].get<double>() - 500) <= 5.0);
  QVERIFY(std::abs(h["p99"].get<double>() - 990) <= 9.9);
  uint64_t binned = 0;
  for (const auto& b : h["buckets"]) binned += b["count"].get<uint64_t>();
  QCOMPARE(binned, uint64_t(1000));
  QVERIFY(h["buckets"].size() <= 60);
  json hm = c.get("/api/heatmap?metric=api.latency_ms&step=60&from=" + std::to_string(start - 5) +
                  "&to=" + std::to_string(end));
  uint64_t hm_count = 0;
  for (const auto& col : hm["columns"]) hm_count += col["count"].get<uint64_t>();
  QCOMPARE(hm_count, uint64_t(1000));
}

void TestCollectorIntegration::badQueriesGetClearErrors() {
  CollectorProcess c;
  QVERIFY(c.start());
  RawProducer p(c.ingest());
  QCOMPARE(p.send(BatchBuilder(3, 1).def(1, "q.metric", {}).count(1, now_s() - 10, 1).b)->code(),
           wire::Ack::OK);
  QVERIFY(eventually([&] { return c.get("/api/metrics")["metrics"].size() > 0; }));
  struct Case {
    std::string path;
    int status;
    std::string words;
  };
  const Case cases[] = {
      {"/api/query", 400, "missing parameter 'metric'"},
      {"/api/query?metric=q.metric&fn=median", 400, "unknown fn"},
      {"/api/query?metric=q.metric&fn=p99", 400, "needs a distribution"},
      {"/api/query?metric=q.metric&filter=k%3D~(", 400, "bad regex"},
      {"/api/query?metric=q.metric&filter=novalue", 400, "must be key=value"},
      {"/api/query?metric=q.metric&from=-1h&to=-2h", 400, "'to' must be after 'from'"},
      {"/api/query?metric=q.metric&from=yesterday", 400, "from:"},
      {"/api/query?metric=q.metric&step=0s", 400, "step:"},
      {"/api/query?metric=q.metric&step=1&from=-30d", 400, "larger step"},
      {"/api/query?metric=nope.metric", 404, "unknown metric"},
      {"/api/query?metric=bad%20name", 400, "metric:"},
      {"/api/histogram?metric=q.metric", 400, "needs a distribution"},
      {"/api/tags?metric=nope", 404, "unknown metric"},
      {"/api/nothing", 404, "no such endpoint"},
  };
  for (const auto& cs : cases) {
    json r = c.get(cs.path);
    QVERIFY2(r["_status"].get<int>() == cs.status, (cs.path + " -> " + r.dump()).c_str());
    QVERIFY2(r["error"].get<std::string>().find(cs.words) != std::string::npos,
             (cs.path + " -> " + r.dump()).c_str());
  }
  QCOMPARE(c.get("/healthz")["status"].get<std::string>(), std::string("ok"));
}

void TestCollectorIntegration::statsdLinesOverUdpCountExactly() {
  CollectorProcess c;
  QVERIFY(c.start({"--statsd", "127.0.0.1:0"}));
  QVERIFY(c.statsd_port() > 0);
  QUdpSocket udp;
  const int64_t start = now_s();
  auto send = [&](const QByteArray& packet) {
    QCOMPARE(
        udp.writeDatagram(packet, QHostAddress::LocalHost, static_cast<quint16>(c.statsd_port())),
        packet.size());
  };
  for (int i = 0; i < 100; ++i)
    send("ad.click:1|c|#campaign:spring,country:de\nad.click:2|c|@0.5|#campaign:spring,country:fr");
  send(
      "ad.click:1|c\nbroken "
      "line\nad.click:x|c\nlat.ms:10|ms\nlat.ms:20|h|#endpoint:/a\nq.len:5|g\nq.len:+3|g\n"
      "_e{5,4}:title|text|#k:v\n_sc|redis.up|0");
  send("ad.click:1|g");  // ad.click is a counter: refused, counted
  QVERIFY(eventually([&] { return total(c.get(q("ad.click", start - 5, now_s() + 2))) == 501; }));
  auto byCountry =
      by_tag(c.get(q("ad.click", start - 5, now_s() + 2, "&group_by=country")), "country");
  QCOMPARE(byCountry["de"], 100.0);
  QCOMPARE(byCountry["fr"], 400.0);  // 2 at @0.5 counts 4
  QCOMPARE(byCountry["<none>"], 1.0);
  QVERIFY(eventually(
      [&] { return total(c.get(q("lat.ms", start - 5, now_s() + 2, "&fn=count"))) == 2; }));
  json last = c.get(q("q.len", start - 5, now_s() + 2, "&fn=max&step=60"));
  double mx = 0;
  for (const auto& p : last["series"][0]["points"]) mx = std::max(mx, p[1].get<double>());
  QCOMPARE(mx, 5.0);  // dogstatsd dialect: "+3" sets the gauge to 3, as the Agent does
  QVERIFY(eventually([&] {
    auto [st, prom] = c.get_raw("/metrics");
    return prom.find("\ntally_statsd_rejected_total{reason=\"kind_conflict\"} 1\n") !=
           std::string::npos;
  }));
  // A name and a tag key Tally does not allow are stored mapped; the API shows the originals.
  send("api latency:1|c|#app.kubernetes.io/name:web");
  const std::string stored = "U__api_20_latency";
  QVERIFY(eventually([&] {
    const json metrics = c.get("/api/metrics");
    for (const auto& m : metrics["metrics"])
      if (m["name"] == stored) return m.value("original", "") == "api latency";
    return false;
  }));
  json tags = c.get("/api/tags?metric=" + stored);
  QCOMPARE(tags["original"].get<std::string>(), std::string("api latency"));
  QCOMPARE(tags["original_keys"]["U__app.kubernetes.io_2f_name"].get<std::string>(),
           std::string("app.kubernetes.io/name"));
  QCOMPARE(tags["tags"]["U__app.kubernetes.io_2f_name"][0].get<std::string>(), std::string("web"));
  // One series per reason; events and service checks are their own kinds, not rejects.
  auto [st, prom] = c.get_raw("/metrics");
  for (const char* line :
       {"tally_statsd_rejected_total{reason=\"syntax\"} 1\n",
        "tally_statsd_rejected_total{reason=\"value\"} 1\n",
        "tally_statsd_rejected_total{reason=\"event\"} 0\n",
        "tally_statsd_rejected_total{reason=\"service_check\"} 0\n",
        "tally_statsd_events_total 1\n", "tally_statsd_service_checks_total 1\n"})
    QVERIFY2(prom.find(std::string("\n") + line) != std::string::npos, line);
}

void TestCollectorIntegration::thirtyDayQueryReadsHourlyRollupsAndEqualsWhatWasSent() {
  CollectorProcess c;
  QVERIFY(c.start());
  RawProducer p(c.ingest());
  const int64_t now = now_s();
  // One point every 37 minutes over the last 30 days, values 1, 2, 3, ...
  BatchBuilder b(21, 1);
  b.def(1, "month.metric", {{"k", "v"}});
  double expected = 0;
  int n = 0;
  for (int64_t t = now - 30 * 86400 + 600; t < now - 60; t += 37 * 60) {
    b.count(1, t, ++n);
    expected += n;
  }
  QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
  json r;
  QVERIFY(eventually([&] {
    r = c.get(q("month.metric", now - 30 * 86400, now, "&step=auto"));
    return total(r) == expected;
  }));
  QCOMPARE(r["resolution"].get<int>(), 3600);  // the planner read the 1 h rollups
  QCOMPARE(total(c.get(q("month.metric", now - 30 * 86400, now, "&step=1d"))), expected);
  QCOMPARE(total(c.get(q("month.metric", now - 30 * 86400, now, "&step=1h"))), expected);
}

// Every table name in the data directory's shard files.
static QStringList shard_tables(const QString& data_dir) {
  QStringList out;
  for (const QFileInfo& fi : QDir(data_dir).entryInfoList({"shard-*.sqlite"}, QDir::Files)) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(fi.filePath().toUtf8().constData(), &db, SQLITE_OPEN_READONLY, nullptr) !=
        SQLITE_OK) {
      sqlite3_close(db);
      return {};
    }
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type='table'", -1, &st, nullptr);
    while (st && sqlite3_step(st) == SQLITE_ROW)
      out << QString::fromUtf8(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  return out;
}

void TestCollectorIntegration::changedRetentionAppliesToExistingDataOnTheNextStart() {
  CollectorProcess c;
  const QString log = c.temp_path() + "/collector.log";
  QVERIFY(c.start({"--retention", "1s:1h,1m:1d", "--log-file", log}));
  const int64_t now = now_s();
  BatchBuilder b(31, 1);
  b.def(1, "ret.metric", {});
  double all = 0, recent = 0;
  for (int i = 0; i < 50; ++i) {  // one point a minute over the last 50 minutes
    const int64_t t = now - 3000 + i * 60;
    b.count(1, t, i + 1);
    all += i + 1;
    if (t >= now - 600 + 60) recent += i + 1;
  }
  {
    RawProducer p(c.ingest());
    QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
  }
  QVERIFY(eventually(
      [&] { return total(c.get(q("ret.metric", now - 3600, now + 1, "&step=60"))) == all; }));
  QCOMPARE(c.stop(), 0);

  // A 10 s resolution appears (filled from the 1 s data) and 1 s keeps only 10 minutes.
  QVERIFY(c.start({"--retention", "1s:10m,10s:1d,1m:1d", "--log-file", log}));
  json tens = c.get(q("ret.metric", now - 3600, now + 1, "&step=10"));
  QCOMPARE(tens["resolution"].get<int>(), 10);
  QCOMPARE(total(tens), all);
  QCOMPARE(total(c.get(q("ret.metric", now - 3600, now + 1, "&step=60"))), all);
  // The last 10 minutes still read at 1 s; older 1 s data is deleted by the retention pass (whole
  // storage windows at a time), and the planner reads older ranges from the coarser resolutions.
  QCOMPARE(total(c.get(q("ret.metric", now - 600 + 60, now + 1, "&step=1"))), recent);
  json older = c.get(q("ret.metric", now - 3600, now - 600, "&step=auto"));
  QVERIFY(older["resolution"].get<int>() >= 10);
  QFile f(log);
  QVERIFY(f.open(QIODevice::ReadOnly));
  const QByteArray text = f.readAll();
  QVERIFY(text.contains("event=retention_change resolution=1s old=1h new=10m action=drop_older"));
  QVERIFY(text.contains("event=retention_change resolution=10s action=added filled_from=1s"));
  QVERIFY(!text.contains("action=drop "));
  QCOMPARE(c.stop(), 0);

  // 1 m leaves the list: its buckets are deleted (logged first), and 1 m steps read the 10 s data.
  QVERIFY(shard_tables(c.data_dir()).contains("chunk_60"));
  QVERIFY(c.start({"--retention", "1s:10m,10s:1d", "--log-file", log}));
  json minutes = c.get(q("ret.metric", now - 3600, now + 1, "&step=60"));
  QCOMPARE(minutes["resolution"].get<int>(), 10);
  QCOMPARE(total(minutes), all);
  f.seek(0);
  const QByteArray after = f.readAll();
  const qsizetype warned =
      after.indexOf("event=retention_change resolution=1m old=1d action=drop ");
  QVERIFY(warned >= 0);
  QVERIFY(after.indexOf("event=retention_change resolution=1m action=dropped freed_bytes=") >
          warned);
  QCOMPARE(c.stop(), 0);
  const QStringList tables = shard_tables(c.data_dir());
  QVERIFY2(!tables.isEmpty(), "no shard files");
  for (const QString& t : tables) QVERIFY2(!t.endsWith("_60"), qPrintable("left behind: " + t));
  QVERIFY(tables.contains("chunk_10"));
}

QTEST_GUILESS_MAIN(TestCollectorIntegration)
#include "tst_collector_integration.moc"
