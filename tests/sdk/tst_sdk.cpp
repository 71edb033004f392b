// SDK tests over a real ZeroMQ socket: a FakeCollector (ROUTER on a random 127.0.0.1 port)
// decodes batches, sums them exactly and answers Acks. Bucket boundaries come from a
// ManualClock, moved by hand and followed by an explicit flush(); no test waits for a second.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

#include "fake_collector.h"
#include "tally/client.h"

using namespace tally;
using tally::test::FakeCollector;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // a whole second, in ms
constexpr int64_t kS0 = kT0 / 1000;

ClientOptions options_for(const FakeCollector& c, const Clock* clock = nullptr) {
  ClientOptions o;
  o.endpoint = c.endpoint();
  o.clock = clock;
  o.close_timeout = 3s;
  return o;
}

// A loopback port nothing listens on (bound once by ZeroMQ, then released).
std::string unused_endpoint() {
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  s.bind("tcp://127.0.0.1:*");
  return s.get(zmq::sockopt::last_endpoint);
}

size_t deliveries_of(const FakeCollector& c, uint64_t seq) {
  auto all = c.received();
  return static_cast<size_t>(
      std::count_if(all.begin(), all.end(), [&](const auto& b) { return b.seq() == seq; }));
}

}  // namespace

class TestSdk : public QObject {
  Q_OBJECT
 private slots:
  void exactTotalsFromFourThreads();
  void bucketsFollowTheInjectedClock();
  void producerIdAndSequenceNumbers();
  void tagOrderDoesNotMatter();
  void withheldAckIsResentWithSameSeq();
  void unknownRefResendsDefinitions();
  void unavailableIsResentLater();
  void slowCollectorGetsOneBatchInFlight();
  void resendsBackOffExponentially();
  void unavailableHonoursRetryAfter();
  void pendingBytesBoundDropsOldest();
  void invalidAckIsCountedNotResent();
  void boundedBufferKeepsNewestAndCountsDrops();
  void collectorRestartLosesNothing();
  void destructorDeliversPending();
  void exitedThreadsAreStillFlushed();
  void gaugesKeepLastMinMaxSumCount();
  void distributionsCountSumExactQuantilesWithinOnePercent();
  void invalidInputIsRejectedClearly_data();
  void invalidInputIsRejectedClearly();
  void kindConflictAndNonFiniteValues();
  void seriesLimitBoundsMemory();
  void defaultHandlesAreHarmless();
};

void TestSdk::exactTotalsFromFourThreads() {
  // Real clock: the flush thread samples concurrently with the writers; nothing may be lost
  // or counted twice.
  FakeCollector collector;
  Client client(options_for(collector));
  constexpr int kThreads = 4, kPerThread = 250'000, kSeries = 100;
  std::vector<Counter> handles;
  for (int s = 0; s < kSeries; ++s)
    handles.push_back(
        client.counter("test.hits", {{"series", std::to_string(s)}, {"kind", "handle"}}));
  std::vector<std::string> names;
  for (int s = 0; s < kSeries; ++s) names.push_back(std::to_string(s));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        int s = (i + t) % kSeries;
        if (i % 2 == 0)
          handles[static_cast<size_t>(s)].add();
        else
          client.count("test.hits", 1,
                       {{"kind", "direct"}, {"series", names[static_cast<size_t>(s)]}});
      }
    });
  }
  for (auto& th : threads) th.join();
  QVERIFY(client.flush(10s));
  double total = 0;
  for (int s = 0; s < kSeries; ++s) {
    double h = collector.counter_total("test.hits{kind=handle,series=" + std::to_string(s) + "}");
    double d = collector.counter_total("test.hits{kind=direct,series=" + std::to_string(s) + "}");
    QCOMPARE(h, double(kThreads * kPerThread / kSeries / 2));
    QCOMPARE(d, double(kThreads * kPerThread / kSeries / 2));
    total += h + d;
  }
  QCOMPARE(total, double(kThreads) * kPerThread);
  auto st = client.stats();
  QCOMPARE(st.series, uint64_t(2 * kSeries));
  QCOMPARE(st.batches_acked, st.batches_sent);
  QCOMPARE(st.invalid_values, uint64_t(0));
}

void TestSdk::bucketsFollowTheInjectedClock() {
  FakeCollector collector;
  ManualClock clock(kT0 + 250);
  Client client(options_for(collector, &clock));
  auto c = client.counter("test.events");
  c.add(3);
  clock.set_ms(kT0 + 1000);  // the second boundary: the 3 belong to second kS0
  QVERIFY(client.flush(5s));
  c.add(5);
  client.count("test.events", 2);
  clock.set_ms(kT0 + 2000);
  QVERIFY(client.flush(5s));
  c.add(7);  // a flush mid-second puts the value in the current second
  clock.set_ms(kT0 + 2400);
  QVERIFY(client.flush(5s));
  auto points = collector.counter_points("test.events");
  QCOMPARE(points.size(), size_t(3));
  QCOMPARE(points[kS0], 3.0);
  QCOMPARE(points[kS0 + 1], 7.0);
  QCOMPARE(points[kS0 + 2], 7.0);
}

void TestSdk::producerIdAndSequenceNumbers() {
  FakeCollector collector;
  ManualClock clock(kT0);
  auto opts = options_for(collector, &clock);
  opts.producer_id = 0xC0FFEE;
  Client client(opts);
  QCOMPARE(client.producer_id(), uint64_t(0xC0FFEE));
  for (int i = 0; i < 3; ++i) {
    client.count("test.seq");
    QVERIFY(client.flush(5s));
  }
  QVERIFY(client.flush(1s));  // nothing recorded: no empty batch, no sequence number used
  auto got = collector.received();
  QCOMPARE(got.size(), size_t(3));
  for (size_t i = 0; i < got.size(); ++i) {
    QCOMPARE(got[i].producer_id(), uint64_t(0xC0FFEE));
    QCOMPARE(got[i].seq(), uint64_t(i + 1));
  }
  // The definition travels until a batch carrying it is acknowledged, then never again.
  QCOMPARE(got[0].defs_size(), 1);
  QCOMPARE(got[1].defs_size(), 0);
  QCOMPARE(got[0].defs(0).metric(), std::string("test.seq"));
  QCOMPARE(got[0].defs(0).kind(), wire::COUNTER);

  Client other(options_for(collector, &clock));
  Client third(options_for(collector, &clock));
  QVERIFY(other.producer_id() != 0);
  QVERIFY(other.producer_id() != third.producer_id());
}

void TestSdk::tagOrderDoesNotMatter() {
  FakeCollector collector;
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  client.count("test.tags", 1, {{"a", "1"}, {"b", "2"}});
  client.count("test.tags", 1, {{"b", "2"}, {"a", "1"}});
  client.counter("test.tags", {{"b", "2"}, {"a", "1"}}).add();
  Tags owned{{"a", "1"}, {"b", "2"}};
  client.count("test.tags", 1, owned);
  client.count("test.tags", 1, {{"a", "1"}, {"b", "3"}});
  QVERIFY(client.flush(5s));
  QCOMPARE(collector.counter_total("test.tags{a=1,b=2}"), 4.0);
  QCOMPARE(collector.counter_total("test.tags{a=1,b=3}"), 1.0);
  QCOMPARE(client.stats().series, uint64_t(2));
}

void TestSdk::withheldAckIsResentWithSameSeq() {
  FakeCollector collector;
  collector.set_policy([](const wire::Batch&, int previous) {
    return previous == 0 ? FakeCollector::Reply::kWithhold : FakeCollector::Reply::kProcess;
  });
  ManualClock clock(kT0);
  auto opts = options_for(collector, &clock);
  opts.ack_timeout = 2000ms;
  Client client(opts);
  client.count("test.resend", 4);
  QVERIFY(!client.flush(300ms));
  QCOMPARE(deliveries_of(collector, 1), size_t(1));
  clock.advance_ms(1999);
  QTest::qWait(50);  // a negative check: a resend now would reach the collector within this
  QCOMPARE(deliveries_of(collector, 1), size_t(1));  // not before the ack timeout
  clock.advance_ms(1);
  QVERIFY(client.flush(5s));
  auto got = collector.received();
  QCOMPARE(got.size(), size_t(2));
  QCOMPARE(got[0].seq(), uint64_t(1));
  QCOMPARE(got[1].seq(), uint64_t(1));
  QCOMPARE(got[1].counters().values(0), got[0].counters().values(0));
  QCOMPARE(collector.counter_total("test.resend"), 4.0);
  auto st = client.stats();
  QCOMPARE(st.batches_sent, uint64_t(1));
  QCOMPARE(st.batches_resent, uint64_t(1));
  QCOMPARE(st.batches_acked, uint64_t(1));
  QCOMPARE(st.batches_pending, uint64_t(0));
}

void TestSdk::unknownRefResendsDefinitions() {
  FakeCollector collector;
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  auto c = client.counter("test.wiped", {{"host", "a"}});
  c.add();
  QVERIFY(client.flush(5s));
  collector.forget_refs();  // the collector lost its dictionary
  c.add(2);
  QVERIFY(client.flush(5s));
  auto got = collector.received();
  QCOMPARE(got.size(), size_t(3));
  QCOMPARE(got[1].seq(), uint64_t(2));
  QCOMPARE(got[1].defs_size(), 0);
  QCOMPARE(got[2].seq(), uint64_t(2));  // the same batch again ...
  QCOMPARE(got[2].defs_size(), 1);      // ... now with the definition
  QCOMPARE(got[2].defs(0).metric(), std::string("test.wiped"));
  QCOMPARE(got[2].defs(0).tags(0).key(), std::string("host"));
  QCOMPARE(collector.counter_total("test.wiped{host=a}"), 3.0);
  QCOMPARE(client.stats().unknown_ref_acks, uint64_t(1));
  c.add();
  QVERIFY(client.flush(5s));
  QCOMPARE(collector.received().back().defs_size(), 0);  // acknowledged again: not repeated
}

void TestSdk::unavailableIsResentLater() {
  FakeCollector collector;
  collector.set_policy([](const wire::Batch&, int previous) {
    return previous == 0 ? FakeCollector::Reply::kUnavailable : FakeCollector::Reply::kProcess;
  });
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  client.count("test.unavailable", 9);
  QVERIFY(!client.flush(300ms));
  QCOMPARE(client.stats().unavailable_acks, uint64_t(1));
  clock.advance_ms(2000);
  QVERIFY(client.flush(5s));
  QCOMPARE(collector.counter_total("test.unavailable"), 9.0);
  QCOMPARE(client.stats().batches_resent, uint64_t(1));
}

// While the first batch waits for its ack, nothing else is sent; the batches behind it then go
// without the definitions it carried.
void TestSdk::slowCollectorGetsOneBatchInFlight() {
  FakeCollector collector;
  std::atomic<bool> hold{true};
  collector.set_policy([&](const wire::Batch& b, int) {
    return b.seq() == 1 && hold.load() ? FakeCollector::Reply::kWithhold
                                       : FakeCollector::Reply::kProcess;
  });
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  for (int i = 0; i < 3; ++i) {
    client.count("test.window");
    client.count("test.window", 1, {{"i", std::to_string(i)}});
    QVERIFY(!client.flush(0ms));
    QTRY_COMPARE(client.stats().batches_sent, uint64_t(i + 1));
  }
  QTest::qWait(200);  // a negative check: what would have been sent is sent by now
  QCOMPARE(collector.received_count(), size_t(1));
  QCOMPARE(client.stats().batches_in_flight, uint64_t(1));
  hold.store(false);
  clock.advance_ms(2000);  // the ack timeout: seq 1 again, acknowledged, then 2 and 3
  QVERIFY(client.flush(5s));
  auto got = collector.received();
  QCOMPARE(got.size(), size_t(4));
  QCOMPARE(got[1].seq(), uint64_t(1));
  QCOMPARE(got[0].defs_size(), 2);
  QCOMPARE(got[2].seq(), uint64_t(2));
  QCOMPARE(got[2].defs_size(), 1);  // its own new series only, not test.window again
  QCOMPARE(got[3].defs_size(), 1);
  QCOMPARE(collector.counter_total("test.window"), 3.0);
  QCOMPARE(collector.counter_total("test.window{i=2}"), 1.0);
  QCOMPARE(client.stats().ack_timeouts, uint64_t(1));
}

// Attempt n waits ack_timeout * 2^(n-1), +0..50 % from the second on.
void TestSdk::resendsBackOffExponentially() {
  FakeCollector collector;
  collector.set_policy([](const wire::Batch&, int previous) {
    return previous < 3 ? FakeCollector::Reply::kWithhold : FakeCollector::Reply::kProcess;
  });
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  client.count("test.backoff", 1);
  QVERIFY(!client.flush(0ms));
  QTRY_COMPARE(deliveries_of(collector, 1), size_t(1));
  clock.advance_ms(2000);
  QTRY_COMPARE(deliveries_of(collector, 1), size_t(2));
  clock.advance_ms(3999);  // the second attempt waits at least 4 s
  QTest::qWait(100);       // a negative check: an early attempt would have arrived by now
  QCOMPARE(deliveries_of(collector, 1), size_t(2));
  clock.advance_ms(2001);  // and at most 6 s
  QTRY_COMPARE(deliveries_of(collector, 1), size_t(3));
  clock.advance_ms(7999);  // the third at least 8 s
  QTest::qWait(100);       // a negative check, as above
  QCOMPARE(deliveries_of(collector, 1), size_t(3));
  clock.advance_ms(4001);
  QVERIFY(client.flush(5s));
  QCOMPARE(deliveries_of(collector, 1), size_t(4));
  QCOMPARE(client.stats().ack_timeouts, uint64_t(3));
  QCOMPARE(collector.counter_total("test.backoff"), 1.0);
}

// UNAVAILABLE with a hint: nothing at all is sent before it has passed.
void TestSdk::unavailableHonoursRetryAfter() {
  FakeCollector collector;
  collector.set_retry_after_ms(5000);
  collector.set_policy([](const wire::Batch& b, int previous) {
    return b.seq() == 1 && previous == 0 ? FakeCollector::Reply::kUnavailable
                                         : FakeCollector::Reply::kProcess;
  });
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  client.count("test.retry_after", 2);
  QVERIFY(!client.flush(0ms));
  QTRY_COMPARE(client.stats().unavailable_acks, uint64_t(1));
  client.count("test.retry_after", 3);
  QVERIFY(!client.flush(0ms));
  QTRY_COMPARE(client.stats().batches_sent, uint64_t(2));
  clock.advance_ms(4999);
  QTest::qWait(100);  // a negative check: a send before the hint would have arrived by now
  QCOMPARE(collector.received_count(), size_t(1));  // neither the refused batch nor the next
  clock.advance_ms(2501);
  QVERIFY(client.flush(5s));
  QCOMPARE(collector.counter_total("test.retry_after"), 5.0);
  QCOMPARE(client.stats().batches_resent, uint64_t(1));
}

// The byte bound: with no collector, the oldest batches go once the serialised bytes pass it.
void TestSdk::pendingBytesBoundDropsOldest() {
  std::string endpoint = unused_endpoint();
  ManualClock clock(kT0);
  ClientOptions opts;
  opts.endpoint = endpoint;
  opts.clock = &clock;
  opts.max_pending_bytes = 4096;
  opts.close_timeout = 1s;
  Client client(opts);
  std::vector<Counter> hs;
  for (int j = 0; j < 100; ++j)
    hs.push_back(client.counter("test.bytes", {{"j", std::to_string(j)}}));
  for (int i = 1; i <= 10; ++i) {
    for (auto& h : hs) h.add();
    QVERIFY(!client.flush(0ms));
    QTRY_COMPARE(client.stats().batches_sent, uint64_t(i));
  }
  auto st = client.stats();
  QVERIFY2(st.pending_bytes <= 4096, std::to_string(st.pending_bytes).c_str());
  QVERIFY(st.batches_dropped > 0);
  QCOMPARE(st.batches_dropped + st.batches_pending, uint64_t(10));
  QCOMPARE(st.points_dropped, st.batches_dropped * 100);

  FakeCollector collector(endpoint);
  QVERIFY(client.flush(10s));
  QCOMPARE(collector.counter_total("test.bytes{j=7}"), double(st.batches_pending));
}

void TestSdk::invalidAckIsCountedNotResent() {
  FakeCollector collector;
  collector.set_policy([](const wire::Batch&, int) { return FakeCollector::Reply::kInvalid; });
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  client.count("test.rejected", 1);
  client.count("test.rejected", 1, {{"x", "y"}});
  QVERIFY(client.flush(5s));  // resolved: rejected batches are not pending
  auto st = client.stats();
  QCOMPARE(st.batches_rejected, uint64_t(1));
  QCOMPARE(st.points_dropped, uint64_t(2));
  QVERIFY2(QString::fromStdString(client.last_error()).contains("schema mismatch (test)"),
           client.last_error().c_str());
  clock.advance_ms(10'000);
  QTest::qWait(100);  // a negative check: a rejected batch is never resent, however long
  QCOMPARE(collector.received_count(), size_t(1));
}

void TestSdk::boundedBufferKeepsNewestAndCountsDrops() {
  std::string endpoint = unused_endpoint();
  ManualClock clock(kT0);
  ClientOptions opts;
  opts.endpoint = endpoint;
  opts.clock = &clock;
  opts.max_pending_batches = 3;
  opts.close_timeout = 1s;
  Client client(opts);
  for (int i = 1; i <= 10; ++i) {
    client.count("test.buffered", i);
    QVERIFY(!client.flush(0ms));
    QTRY_COMPARE(client.stats().batches_sent, uint64_t(i));
  }
  auto st = client.stats();
  QCOMPARE(st.batches_dropped, uint64_t(7));
  QCOMPARE(st.batches_pending, uint64_t(3));
  QCOMPARE(st.points_dropped, uint64_t(7));

  FakeCollector collector(endpoint);  // the collector comes up
  QVERIFY(client.flush(10s));
  auto got = collector.received();
  QCOMPARE(got.size(), size_t(3));
  QCOMPARE(got[0].seq(), uint64_t(8));
  QCOMPARE(got[2].seq(), uint64_t(10));
  QCOMPARE(got[0].dropped_batches(), uint64_t(7));
  QCOMPARE(collector.counter_total("test.buffered"), 8.0 + 9.0 + 10.0);
}

void TestSdk::collectorRestartLosesNothing() {
  ManualClock clock(kT0);
  std::string endpoint;
  double before = 0;
  auto opts = ClientOptions{};
  opts.clock = &clock;
  opts.close_timeout = 3s;
  std::unique_ptr<Client> client;
  auto hits = [&] { return client->counter("test.restart", {{"host", "a"}}); };
  {
    FakeCollector first;
    endpoint = first.endpoint();
    opts.endpoint = endpoint;
    client = std::make_unique<Client>(opts);
    hits().add(5);
    QVERIFY(client->flush(5s));
    before = first.counter_total("test.restart{host=a}");
  }  // the collector goes away, with its ref dictionary
  hits().add(7);
  QVERIFY(!client->flush(300ms));
  FakeCollector second(endpoint);  // a new, empty collector on the same port
  // The batch may have gone into the dying connection; the ack timeout covers that case.
  clock.advance_ms(2000);
  QVERIFY(client->flush(10s));
  QCOMPARE(before, 5.0);
  QCOMPARE(second.counter_total("test.restart{host=a}"), 7.0);
  auto st = client->stats();
  QCOMPARE(st.batches_acked, uint64_t(2));
  QCOMPARE(st.batches_dropped, uint64_t(0));
  QCOMPARE(st.unknown_ref_acks, uint64_t(1));  // the new collector asked for the definition
}

void TestSdk::destructorDeliversPending() {
  FakeCollector collector;
  {
    Client client(options_for(collector));
    auto c = client.counter("test.goodbye", {{"via", "handle"}});
    c.add(40);
    c.add(2);
  }  // no flush(): the destructor delivers
  QCOMPARE(collector.counter_total("test.goodbye{via=handle}"), 42.0);
  QCOMPARE(collector.accepted_batches(), size_t(1));
}

void TestSdk::exitedThreadsAreStillFlushed() {
  FakeCollector collector;
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  for (int t = 0; t < 8; ++t) {
    std::thread([&] {
      client.count("test.shortlived", 1, {{"pool", "workers"}});
      client.observe("test.shortlived.ms", 5.0);
    }).join();
  }
  QVERIFY(client.flush(5s));
  QCOMPARE(collector.counter_total("test.shortlived{pool=workers}"), 8.0);
  QCOMPARE(collector.distribution("test.shortlived.ms").count(), uint64_t(8));
  // Retired thread states are released after their last sample; recording goes on.
  client.count("test.shortlived", 1, {{"pool", "workers"}});
  QVERIFY(client.flush(5s));
  QCOMPARE(collector.counter_total("test.shortlived{pool=workers}"), 9.0);
}

void TestSdk::gaugesKeepLastMinMaxSumCount() {
  FakeCollector collector;
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  auto depth = client.gauge("test.queue.depth", {{"queue", "mail"}});
  std::thread([&] {
    depth.set(5);
    depth.set(1);
  }).join();
  depth.set(7);
  client.set_gauge("test.queue.depth", 3, {{"queue", "mail"}});  // the last one
  clock.set_ms(kT0 + 1000);
  QVERIFY(client.flush(5s));
  depth.set(10);
  clock.set_ms(kT0 + 2000);
  QVERIFY(client.flush(5s));
  auto points = collector.gauge_points("test.queue.depth{queue=mail}");
  QCOMPARE(points.size(), size_t(2));
  const auto& p = points[kS0];
  QCOMPARE(p.count, uint64_t(4));
  QCOMPARE(p.last, 3.0);
  QCOMPARE(p.min, 1.0);
  QCOMPARE(p.max, 7.0);
  QCOMPARE(p.sum, 16.0);
  QCOMPARE(points[kS0 + 1].count, uint64_t(1));
  QCOMPARE(points[kS0 + 1].last, 10.0);
}

void TestSdk::distributionsCountSumExactQuantilesWithinOnePercent() {
  FakeCollector collector;
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  auto latency = client.distribution("test.latency_ms", {{"endpoint", "/cart"}});
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(3.0, 1.0);
  std::vector<double> values(40'000);
  for (double& v : values) v = dist(rng);
  // Half through the handle on this thread, half by direct calls on another, over two seconds.
  std::thread other([&] {
    for (size_t i = 1; i < values.size(); i += 2)
      client.observe("test.latency_ms", values[i], {{"endpoint", "/cart"}});
  });
  for (size_t i = 0; i < values.size(); i += 2) latency.observe(values[i]);
  other.join();
  clock.set_ms(kT0 + 1000);
  QVERIFY(client.flush(5s));
  latency.observe(0.0);
  latency.observe(-2.5);
  values.push_back(0.0);
  values.push_back(-2.5);
  clock.set_ms(kT0 + 2000);
  QVERIFY(client.flush(5s));

  Sketch got = collector.distribution("test.latency_ms{endpoint=/cart}");
  QCOMPARE(got.count(), uint64_t(values.size()));
  double sum = 0;
  for (double v : values) sum += v;
  QVERIFY(std::abs(got.sum() - sum) <= 1e-9 * std::abs(sum));
  std::sort(values.begin(), values.end());
  QCOMPARE(got.min(), values.front());
  QCOMPARE(got.max(), values.back());
  for (double q : {0.5, 0.75, 0.9, 0.99, 0.999}) {
    double exact = values[static_cast<size_t>(q * double(values.size() - 1))];
    double est = got.quantile(q);
    QVERIFY2(std::abs(est - exact) <= kSketchRelativeAccuracy * std::abs(exact) * (1 + 1e-9),
             qPrintable(QString("q=%1 exact=%2 sketch=%3").arg(q).arg(exact).arg(est)));
  }
}

void TestSdk::invalidInputIsRejectedClearly_data() {
  QTest::addColumn<QString>("metric");
  QTest::addColumn<QStringList>("tags");  // "key=value"
  QTest::addColumn<QString>("why");       // a word the error must contain
  QTest::newRow("empty name") << "" << QStringList{} << "empty";
  QTest::newRow("digit first") << "9lives" << QStringList{} << "start";
  QTest::newRow("space in name") << "user signup" << QStringList{} << "invalid character";
  QTest::newRow("name too long") << QString(201, 'a') << QStringList{} << "limit";
  QTest::newRow("tag key with space") << "ok.metric" << QStringList{"bad key=v"} << "tag key";
  QTest::newRow("empty tag value") << "ok.metric" << QStringList{"k="} << "tag value";
  QTest::newRow("control char in value") << "ok.metric" << QStringList{"k=a\tb"} << "control";
  QTest::newRow("duplicate key") << "ok.metric" << QStringList{"k=1", "k=2"} << "twice";
  QStringList many;
  for (int i = 0; i < 33; ++i) many << QString("k%1=v").arg(i);
  QTest::newRow("33 tags") << "ok.metric" << many << "limit";
}

void TestSdk::invalidInputIsRejectedClearly() {
  QFETCH(QString, metric);
  QFETCH(QStringList, tags);
  QFETCH(QString, why);
  FakeCollector collector;
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  Tags t;
  for (const QString& kv : tags) {
    auto eq = kv.indexOf('=');
    t.push_back(Tag{kv.left(eq).toStdString(), kv.mid(eq + 1).toStdString()});
  }
  std::string name = metric.toStdString();
  QVERIFY(!Client::validate(name, t));

  Counter c = client.counter(name, t);
  QVERIFY(!c.valid());
  QVERIFY2(QString::fromStdString(client.last_error()).contains(why), client.last_error().c_str());
  c.add();
  c.add();
  client.count(name, 1, t);
  client.observe(name, 1.5, t);
  client.set_gauge(name, 2, t);
  QVERIFY(!client.gauge(name, t).valid());
  client.distribution(name, t).observe(1);
  auto st = client.stats();
  QCOMPARE(st.invalid_values, uint64_t(6));
  QCOMPARE(st.series, uint64_t(0));
  QVERIFY(client.flush(1s));
  QCOMPARE(client.stats().batches_sent, uint64_t(0));
  QCOMPARE(collector.received_count(), size_t(0));
}

void TestSdk::kindConflictAndNonFiniteValues() {
  FakeCollector collector;
  ManualClock clock(kT0);
  Client client(options_for(collector, &clock));
  client.count("test.mixed", 1, {{"a", "1"}});
  auto g = client.gauge("test.mixed", {{"a", "2"}});  // same metric, other kind
  QVERIFY(!g.valid());
  QVERIFY2(QString::fromStdString(client.last_error()).contains("is a counter"),
           client.last_error().c_str());
  client.observe("test.mixed", 1, {{"a", "1"}});  // known series, wrong kind
  QCOMPARE(client.stats().invalid_values, uint64_t(1));

  auto c = client.counter("test.finite");
  c.add(std::nan(""));
  c.add(INFINITY);
  client.count("test.finite", -INFINITY);
  client.observe("test.finite.ms", std::nan(""));
  c.add(2);
  QCOMPARE(client.stats().invalid_values, uint64_t(5));
  QVERIFY2(QString::fromStdString(client.last_error()).contains("non-finite"),
           client.last_error().c_str());
  QVERIFY(client.flush(5s));
  QCOMPARE(collector.counter_total("test.finite"), 2.0);
  QCOMPARE(collector.counter_total("test.mixed{a=1}"), 1.0);
}

void TestSdk::seriesLimitBoundsMemory() {
  FakeCollector collector;
  ManualClock clock(kT0);
  auto opts = options_for(collector, &clock);
  opts.max_series = 2;
  Client client(opts);
  for (int i = 0; i < 5; ++i) client.count("test.user", 1, {{"id", std::to_string(i)}});
  auto st = client.stats();
  QCOMPARE(st.series, uint64_t(2));
  QCOMPARE(st.invalid_values, uint64_t(3));
  QVERIFY2(QString::fromStdString(client.last_error()).contains("series limit"),
           client.last_error().c_str());
}

void TestSdk::defaultHandlesAreHarmless() {
  Counter c;
  Gauge g;
  Distribution d;
  c.add();
  g.set(1);
  d.observe(1);
  QVERIFY(!c.valid() && !g.valid() && !d.valid());
}

QTEST_GUILESS_MAIN(TestSdk)
#include "tst_sdk.moc"
