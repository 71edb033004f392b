// Hostile input against the real collector process, with well-formed SDK traffic alongside.
//
// Each row of hostileInput_data() sends one kind of bad input (a UDP datagram, a raw ZeroMQ
// frame or an HTTP request) while a producer thread sends well-formed counter batches. Every row
// asserts: the collector is still up, /healthz answers 200 (the bad input did not make storage
// look broken), the bad input was counted under the named /metrics line, and the well-formed
// traffic's total is exact (what the producer saw acknowledged is what a query returns).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QtTest>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <limits>
#include <thread>

#include "batch_builder.h"
#include "collector_process.h"
#include "tally/common/sketch.h"

using namespace tally::testing;
using tally::Sketch;
namespace wire = tally::wire;

namespace {

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool send_udp(uint16_t port, const std::string& payload) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ssize_t n = ::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&addr),
                       sizeof addr);
  ::close(fd);
  return n == static_cast<ssize_t>(payload.size());
}

// Sends well-formed counter batches (one point of 1 per batch) until stopped; counts what was
// acknowledged OK. A batch that is not acknowledged is sent again with the same sequence number,
// as the SDK does.
class GoodTraffic {
 public:
  GoodTraffic(std::string endpoint, uint64_t producer, std::string metric)
      : endpoint_(std::move(endpoint)), producer_(producer), metric_(std::move(metric)) {}
  ~GoodTraffic() { stop(); }
  void start() {
    stop_ = false;
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t acked() const { return acked_.load(); }

 private:
  void run() {
    RawProducer p(endpoint_);
    while (!stop_) {
      BatchBuilder b(producer_, seq_);
      b.def(1, metric_, {{"src", "good"}}).count(1, now_s(), 1);
      auto ack = p.send(b.b);
      // DUPLICATE: an earlier copy whose Ack came too late was stored; durable all the same.
      if (ack && (ack->code() == wire::Ack::OK || ack->code() == wire::Ack::DUPLICATE)) {
        ++acked_;
        ++seq_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a steady trickle, not a test
                                                                   // wait
    }
  }
  std::string endpoint_;
  uint64_t producer_;
  std::string metric_;
  uint64_t seq_ = 1;
  std::atomic<uint64_t> acked_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A thread that runs fn(stop) until stopped; stopped and joined when it goes out of scope, so a
// failing check cannot leave it running.
class Loop {
 public:
  template <typename Fn>
  explicit Loop(Fn fn) : thread_([this, fn] { fn(stop_); }) {}
  ~Loop() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Closes every descriptor in fds when the test ends, however it ends.
struct FdsCloser {
  std::vector<int>& fds;
  ~FdsCloser() {
    for (int fd : fds) ::close(fd);
  }
};

std::string frame(const BatchBuilder& b) {
  return b.b.SerializeAsString();
}

Sketch sketch_with_sum(double v, uint64_t n) {
  Sketch s;
  s.add(v, n);
  return s;
}

}  // namespace

class TestHostile : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase();
  void cleanupTestCase();
  void hostileInput_data();
  void hostileInput();
  void idleAndSlowConnectionsDoNotStallHealthz();
  void thousandsOfIdleAndSlowConnectionsAreShed();
  void stalledBodiesAndIdleKeepAliveGiveWorkersBack();
  void queryPastItsDeadlineIsRefusedWhileItRuns();
  void restartAfterOverflowingValuesIsHealthy();
  void invalidUtf8FramesWriteNothingToStderr();

 private:
  std::string metrics() const { return collector_.get_raw("/metrics").second; }
  double flushes() const {
    auto m = metrics();
    return metric_value(m, "tally_flush_latency_seconds_count") +
           metric_value(m, "tally_flush_errors_total");
  }
  double good_total() const {
    auto q = collector_.get("/api/query?metric=hostile.good&from=-1h&to=now&step=1h");
    return q["_status"] == 404 ? 0 : total(q);  // 404: nothing sent yet
  }

  CollectorProcess collector_;
  uint64_t next_producer_ = 1000;
};

const QStringList kArgs = {"--statsd",     "127.0.0.1:0",
                           "--checkpoint", "1s",
                           "--lateness",   "1s",
                           "--limit",      "batch_max_points=1000",
                           "--limit",      "batch_max_defs=100",
                           "--limit",      "query_max_series=3",
                           "--limit",      "query_max_samples=50000"};

// TALLY_HOSTILE_NO_LIMIT_FLAGS=1 leaves out the --limit flags, to run the suite against a
// collector from before they existed (that is how its rows were seen failing).
QStringList args() {
  if (qEnvironmentVariableIsSet("TALLY_HOSTILE_NO_LIMIT_FLAGS")) return kArgs.mid(0, 6);
  return kArgs;
}

void TestHostile::initTestCase() {
  // thousandsOfIdleAndSlowConnectionsAreShed opens 3000 sockets; the collector inherits this.
  rlimit rl{};
  QCOMPARE(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = std::max<rlim_t>(rl.rlim_cur, std::min<rlim_t>(rl.rlim_max, 8192));
  QCOMPARE(::setrlimit(RLIMIT_NOFILE, &rl), 0);
  QVERIFY(collector_.start(args()));
  QVERIFY(collector_.statsd_port() > 0);
}

void TestHostile::cleanupTestCase() {
  QCOMPARE(collector_.stop(), 0);
}

void TestHostile::hostileInput_data() {
  QTest::addColumn<QString>("channel");   // udp, zmq, http (payload: the request path)
  QTest::addColumn<QByteArray>("setup");  // StatsD lines sent first (udp), may be empty
  QTest::addColumn<QByteArray>("payload");
  QTest::addColumn<QString>("counted");      // the /metrics sample that must go up
  QTest::addColumn<int>("expect");           // zmq: Ack code; http: status; -1: none
  QTest::addColumn<bool>("throughStorage");  // wait until it has been through a flush

  const int64_t t = now_s();
  const double big = std::numeric_limits<double>::max() / 1.5;  // two of them overflow
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto udp = [](const char* name, const std::string& line, const char* counted,
                bool storage = true) {
    QTest::newRow(name) << "udp" << QByteArray() << QByteArray::fromStdString(line) << counted << -1
                        << storage;
  };
  auto zmq = [](const char* name, const std::string& bytes, const char* counted, int ack,
                bool storage = false) {
    QTest::newRow(name) << "zmq" << QByteArray() << QByteArray::fromStdString(bytes) << counted
                        << ack << storage;
  };
  auto http = [](const char* name, const std::string& path, const char* counted, int status,
                 const std::string& setup = {}) {
    QTest::newRow(name) << "http" << QByteArray::fromStdString(setup)
                        << QByteArray::fromStdString(path) << counted << status << false;
  };
  const char* kSum = "tally_limit_hits_total{limit=\"bucket_sum\"}";
  const char* kRejected = "tally_batches_rejected_total";
  const char* kQueriesRejected = "tally_queries_rejected_total";
  const int kOk = wire::Ack::OK, kInvalid = wire::Ack::INVALID;

  // Values that are finite alone but not once merged into one bucket.
  // A sampled DogStatsD distribution adds value / rate to the sum: 2e308 is refused by the parser.
  udp("statsd 1e308 at rate 0.5", "hostile.lat1:1e308|d|@0.5\n",
      "tally_statsd_rejected_total{reason=\"value\"}");
  udp("statsd two 1e308 in one line", "hostile.lat2:1e308:1e308|d\n", kSum);
  udp("statsd two 1e308 counters", "hostile.c3:1e308|c\nhostile.c3:1e308|c\n", kSum);
  udp("statsd 1e308 counter at rate 0.1", "hostile.c4:1e308|c|@0.1\n",
      "tally_statsd_rejected_total{reason=\"value\"}");
  zmq("sdk counters overflow in one second",
      frame(BatchBuilder(1, 1).def(1, "hostile.c5", {}).count(1, t, big).count(1, t, big)), kSum,
      kOk, true);
  zmq("sdk gauges overflow in one second",
      frame(BatchBuilder(2, 1)
                .def(1, "hostile.g6", {}, wire::GAUGE)
                .gauge(1, t, 1, 1, 1, big, 1)
                .gauge(1, t, 1, 1, 1, big, 1)),
      kSum, kOk, true);
  zmq("sdk gauge counts overflow in one second",
      frame(BatchBuilder(3, 1)
                .def(1, "hostile.g7", {}, wire::GAUGE)
                .gauge(1, t, 1, 1, 1, 1, UINT64_MAX / 2 + 1)
                .gauge(1, t, 1, 1, 1, 1, UINT64_MAX / 2 + 1)),
      "tally_limit_hits_total{limit=\"bucket_count\"}", kOk, true);
  zmq("sdk distributions overflow in one second",
      frame(BatchBuilder(4, 1)
                .def(1, "hostile.d8", {}, wire::DISTRIBUTION)
                .dist(1, t, sketch_with_sum(big, 1))
                .dist(1, t, sketch_with_sum(big, 1))),
      kSum, kOk, true);

  udp("statsd invalid UTF-8 name", "hostile.\xff\xfe:1|c\n",
      "tally_statsd_rejected_total{reason=\"metric_name\"}", false);
  udp("statsd NaN value", "hostile.nan2:nan|c\n", "tally_statsd_rejected_total{reason=\"value\"}",
      false);
  udp(
      "statsd 2000 values on one line",
      "hostile.many_values:" +
          [] {
            std::string v;
            for (int i = 0; i < 2000; ++i) v += i ? ":1" : "1";
            return v;
          }() +
          "|d\n",
      "tally_statsd_rejected_total{reason=\"values_per_line\"}", false);

  // Decode budgets: checked before anything is built.
  {
    BatchBuilder b(5, 1);
    b.def(1, "hostile.span", {}, wire::DISTRIBUTION);
    auto* d = b.b.add_distributions();
    d->set_ref(1);
    d->set_time(t);
    auto* sk = d->mutable_sketch();
    sk->set_count(2);
    sk->set_sum(2);
    sk->set_min(1);
    sk->set_max(1);
    for (int k : {-8000, 8000}) {
      sk->add_pos_keys(k);
      sk->add_pos_counts(1);
    }
    zmq("sketch keys -8000 and +8000", frame(b),
        "tally_limit_hits_total{limit=\"sketch_key_span\"}", kInvalid);
  }
  {
    BatchBuilder b(6, 1);
    b.def(1, "hostile.bins", {}, wire::DISTRIBUTION);
    auto* d = b.b.add_distributions();
    d->set_ref(1);
    d->set_time(t);
    auto* sk = d->mutable_sketch();
    sk->set_count(5000);
    sk->set_sum(5000);
    sk->set_min(1);
    sk->set_max(1);
    for (int k = 0; k < 5000; ++k) {
      sk->add_pos_keys(k - 2500);
      sk->add_pos_counts(1);
    }
    zmq("sketch with 5000 bins", frame(b), "tally_limit_hits_total{limit=\"sketch_bins\"}",
        kInvalid);
  }
  {
    BatchBuilder b(7, 1);
    b.def(1, "hostile.points", {});
    for (int i = 0; i < 1001; ++i) b.count(1, t, 1);
    zmq("1001 points over a budget of 1000", frame(b),
        "tally_limit_hits_total{limit=\"batch_points\"}", kInvalid);
  }
  {
    BatchBuilder b(8, 1);
    for (uint32_t i = 0; i < 101; ++i) b.def(i + 1, "hostile.flood", {{"i", std::to_string(i)}});
    zmq("definition flood", frame(b), "tally_limit_hits_total{limit=\"batch_defs\"}", kInvalid);
  }
  {
    BatchBuilder b(9, 1);
    b.def(1, "hostile.bytes", {{"pad", std::string(50, 'x')}});
    b.b.set_dropped_batches(0);
    std::string bytes = frame(b);
    // An unknown field pads the frame to just over the 4 MiB default (ZeroMQ drops frames more
    // than 1 KiB above it without a word, so the frame stays within that).
    std::string pad(4u << 20, 'p');
    std::string extra;
    extra.push_back(static_cast<char>((100 << 3) | 2));  // field 100, length-delimited
    uint64_t n = pad.size();
    while (n >= 0x80) {
      extra.push_back(static_cast<char>(n | 0x80));
      n >>= 7;
    }
    extra.push_back(static_cast<char>(n));
    zmq("frame just over max_batch_bytes", bytes + extra + pad,
        "tally_limit_hits_total{limit=\"batch_bytes\"}", kInvalid);
  }

  // Malformed frames and values.
  {
    std::string whole = frame(BatchBuilder(10, 1).def(1, "hostile.trunc", {}).count(1, t, 1));
    zmq("truncated frame", whole.substr(0, whole.size() / 2), kRejected, kInvalid);
  }
  zmq("huge varint", std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12), kRejected,
      kInvalid);
  zmq("random bytes", std::string("\x93\x11\xfa\x02\x7f\x00\xee\x41\x13", 9), kRejected, kInvalid);
  zmq("empty frame", std::string(), kRejected, kInvalid);
  zmq("NaN counter", frame(BatchBuilder(11, 1).def(1, "hostile.nan", {}).count(1, t, nan)),
      kRejected, kInvalid);
  zmq("+Inf gauge",
      frame(BatchBuilder(12, 1)
                .def(1, "hostile.inf", {}, wire::GAUGE)
                .gauge(1, t, inf, 1, inf, inf, 1)),
      kRejected, kInvalid);
  zmq("-Inf counter", frame(BatchBuilder(13, 1).def(1, "hostile.ninf", {}).count(1, t, -inf)),
      kRejected, kInvalid);
  {
    BatchBuilder b(14, 1);
    b.def(1, "hostile.ragged", {}).count(1, t, 1);
    b.b.mutable_counters()->add_times(t);  // one time too many
    zmq("ragged columns", frame(b), kRejected, kInvalid);
  }
  zmq("invalid UTF-8 metric name",
      frame(BatchBuilder(15, 1).def(1, "hostile.\xff\xfe", {}).count(1, t, 1)), kRejected,
      kInvalid);
  zmq("invalid UTF-8 tag value",
      frame(BatchBuilder(16, 1).def(1, "hostile.utf8", {{"k", "\xc3\x28"}}).count(1, t, 1)),
      kRejected, kInvalid);
  zmq("3 MB tag value",
      frame(BatchBuilder(17, 1)
                .def(1, "hostile.bigtag", {{"k", std::string(3u << 20, 'v')}})
                .count(1, t, 1)),
      kRejected, kInvalid);
  zmq("time far in the past", frame(BatchBuilder(18, 1).def(1, "hostile.old", {}).count(1, 1, 1)),
      "tally_points_rejected_old_total", kOk);
  zmq("time far in the future",
      frame(BatchBuilder(19, 1).def(1, "hostile.future", {}).count(1, INT64_MAX, 1)),
      "tally_points_rejected_future_total", kOk);
  zmq("time INT64_MIN", frame(BatchBuilder(20, 1).def(1, "hostile.min", {}).count(1, INT64_MIN, 1)),
      "tally_points_rejected_old_total", kOk);
  zmq("unknown series ref", frame(BatchBuilder(21, 1).count(77, t, 1)),
      "tally_batches_unknown_ref_total", wire::Ack::UNKNOWN_REF);
  {
    BatchBuilder b(22, 1);
    b.b.set_seq(UINT64_MAX);
    b.def(1, "hostile.seqmax", {}).count(1, t, 1);
    zmq("seq UINT64_MAX", frame(b), "tally_batches_received_total", kOk);
  }
  zmq("no producer id", frame(BatchBuilder(0, 1).def(1, "hostile.nopid", {}).count(1, t, 1)),
      kRejected, kInvalid);

  // Queries: clamped times, budgets, bad names; each a clear 4xx.
  http("huge query range",
       "/api/query?metric=hostile.good&from=-5000000000000000000&to=5000000000000000000&step=1s",
       "tally_limit_hits_total{limit=\"query_range\"}", 400);
  http("query range past INT64", "/api/query?metric=hostile.good&from=-9223372036854775807&to=now",
       "tally_limit_hits_total{limit=\"query_range\"}", 200);
  http("points per series", "/api/query?metric=hostile.good&from=-7d&step=1s",
       "tally_limit_hits_total{limit=\"query_points\"}", 400);
  http("samples per query", "/api/query?metric=hostile.good&from=-6d&step=10s",
       "tally_limit_hits_total{limit=\"query_samples\"}", 400);
  http("series per query", "/api/query?metric=hostile.many&from=-1h",
       "tally_limit_hits_total{limit=\"query_series\"}", 400,
       "hostile.many:1|c|#k:1\nhostile.many:1|c|#k:2\nhostile.many:1|c|#k:3\n"
       "hostile.many:1|c|#k:4\n");
  http("invalid UTF-8 metric in a query", "/api/query?metric=%FF%FE", kQueriesRejected, 400);
  http("invalid UTF-8 in /api/tags", "/api/tags?metric=hostile.%FF", kQueriesRejected, 400);
  http("invalid UTF-8 in a PromQL query", "/api/v1/query?query=up%7Bk%3D%22%C3%28%22%7D",
       kQueriesRejected, 400);
  http("invalid UTF-8 in the path", "/api/%FF%FE", kQueriesRejected, 400);
  http("invalid UTF-8 filter in a query", "/api/query?metric=hostile.good&filter=k:%C3%28",
       kQueriesRejected, 400);
}

void TestHostile::hostileInput() {
  QFETCH(QString, channel);
  QFETCH(QByteArray, setup);
  QFETCH(QByteArray, payload);
  QFETCH(QString, counted);
  QFETCH(int, expect);
  QFETCH(bool, throughStorage);

  if (!setup.isEmpty()) {
    const double lines = metric_value(metrics(), "tally_statsd_lines_total");
    QVERIFY(send_udp(static_cast<uint16_t>(collector_.statsd_port()), setup.toStdString()));
    QVERIFY(eventually(
        [&] { return metric_value(metrics(), "tally_statsd_lines_total") >= lines + 1; }));
  }
  const double counted_before = metric_value(metrics(), counted.toStdString());
  const double good_before = good_total();
  GoodTraffic good(collector_.ingest(), ++next_producer_ * 1000003, "hostile.good");
  good.start();
  QVERIFY(eventually([&] { return good.acked() > 0; }));

  if (channel == "udp") {
    QVERIFY(send_udp(static_cast<uint16_t>(collector_.statsd_port()), payload.toStdString()));
  } else if (channel == "zmq") {
    // A producer id of its own per row: the same (producer, seq) is a duplicate.
    RawProducer p(collector_.ingest());
    wire::Batch b;
    std::string bytes = payload.toStdString();
    if (bytes.size() < (1u << 20) && b.ParseFromString(bytes) && b.producer_id() > 0 &&
        b.producer_id() < 1000) {
      b.set_producer_id(b.producer_id() + 7919 * ++next_producer_);
      bytes = b.SerializeAsString();
    }
    auto a = p.send_frame(bytes, 5000);
    if (expect < 0) {
      QVERIFY2(!a, "expected no Ack");
    } else {
      QVERIFY2(a, "no Ack");
      QCOMPARE(static_cast<int>(a->code()), expect);
      if (expect != wire::Ack::OK) QVERIFY2(!a->reason().empty() || expect == 3, "no reason");
    }
  } else if (channel == "http") {
    auto [status, body] = collector_.get_raw(payload.toStdString());
    QVERIFY2(status == expect, body.c_str());
    if (status >= 400) QVERIFY2(body.find("\"error\"") != std::string::npos, body.c_str());
  }

  QVERIFY2(
      eventually([&] { return metric_value(metrics(), counted.toStdString()) > counted_before; }),
      qPrintable("not counted: " + counted));
  if (throughStorage) {
    // Two storage transactions later (one checkpoint a second) it has been through storage.
    const double f0 = flushes();
    QVERIFY(eventually([&] { return flushes() >= f0 + 2; }));
  }
  good.stop();

  auto [status, body] = collector_.get_raw("/healthz");
  QVERIFY2(status == 200, body.c_str());
  QCOMPARE(good_total() - good_before, static_cast<double>(good.acked()));
}

void TestHostile::idleAndSlowConnectionsDoNotStallHealthz() {
  // 12 connections that never send a byte and 12 that send half a request line and stop: the
  // HTTP workers must not all be held by them, so /healthz answers before the server's read
  // timeout (2 s) would have freed a held worker: within 1.8 s. (The suite runs alone, see
  // CMakeLists.txt: on a loaded 2-core machine a 1 s bound was missed once by a free worker.)
  std::vector<int> fds;
  for (int i = 0; i < 24; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(collector_.http_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    QCOMPARE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    if (i % 2) QVERIFY(::send(fd, "GET /api/metr", 13, 0) == 13);
    fds.push_back(fd);
  }
  httplib::Client c("127.0.0.1", collector_.http_port());
  c.set_connection_timeout(1, 800000);
  c.set_read_timeout(1, 800000);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.Get("/healthz");
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  for (int fd : fds) ::close(fd);
  QVERIFY2(r, qPrintable(QString("no answer within 1.8 s (%1 ms)").arg(ms)));
  QCOMPARE(r->status, 200);
}

void TestHostile::stalledBodiesAndIdleKeepAliveGiveWorkersBack() {
  // 40 POSTs whose head arrives whole but whose body stops after 10 of 1000 bytes, and 40
  // keep-alive connections that asked once and then stay silent: 80 connections, more than the
  // 32 workers, each past the point where the waiter hands it to one. /healthz must still answer
  // within 1.8 s (under the 2 s body deadline), and the server must end every one of them itself:
  // a stalled body within its deadline (2 s), an idle keep-alive connection after 2 s.
  constexpr int kEach = 40;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int> fds;
  const FdsCloser closer{fds};
  auto open = [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(collector_.http_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      fds.push_back(fd);
    else if (fd >= 0)
      ::close(fd);
    return fds.empty() ? -1 : fds.back();
  };
  auto send_all = [](int fd, const std::string& text) {
    return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == ssize_t(text.size());
  };
  const std::string stalled =
      "POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
      "application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nquery=up+a";
  const std::string once =
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n";
  for (int i = 0; i < kEach; ++i) {
    const int fd = open();
    QVERIFY(fd >= 0);
    QVERIFY(send_all(fd, stalled));
  }
  for (int i = 0; i < kEach; ++i) {
    const int fd = open();
    QVERIFY(fd >= 0);
    QVERIFY(send_all(fd, once));
    pollfd p{fd, POLLIN, 0};
    QVERIFY(::poll(&p, 1, 5000) == 1);
    char head[16] = {};
    QVERIFY(::recv(fd, head, sizeof head - 1, 0) > 12);
    QVERIFY2(std::string(head).starts_with("HTTP/1.1 200"), head);  // the rest is read below
  }

  httplib::Client c("127.0.0.1", collector_.http_port());
  c.set_connection_timeout(1, 800000);
  c.set_read_timeout(1, 800000);
  const auto asked = std::chrono::steady_clock::now();
  auto r = c.Get("/healthz");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - asked)
                      .count();
  QVERIFY2(r, qPrintable(QString("/healthz: no answer within 1.8 s (%1 ms)").arg(ms)));
  QCOMPARE(r->status, 200);

  // Every connection ends from the server's side (EOF or reset; what it said first is drained).
  size_t ended = 0;
  std::vector<bool> done(fds.size(), false);
  while (ended < fds.size() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(12)) {
    std::vector<pollfd> ps;
    std::vector<size_t> at;
    for (size_t i = 0; i < fds.size(); ++i)
      if (!done[i]) {
        ps.push_back({fds[i], POLLIN, 0});
        at.push_back(i);
      }
    if (::poll(ps.data(), ps.size(), 200) <= 0) continue;
    for (size_t k = 0; k < ps.size(); ++k) {
      if (!ps[k].revents) continue;
      char buf[4096];
      const ssize_t n = ::recv(ps[k].fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        done[at[k]] = true;
        ++ended;
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  QVERIFY2(ended == fds.size(), qPrintable(QString("%1 of %2 connections ended by the server "
                                                   "within %3 s")
                                               .arg(ended)
                                               .arg(fds.size())
                                               .arg(secs, 0, 'f', 1)));
  QCOMPARE(collector_.get_raw("/healthz").first, 200);
}

void TestHostile::thousandsOfIdleAndSlowConnectionsAreShed() {
  // 3000 connections at once, half of them idle, half sending a request one byte a second
  // (slowloris), while an SDK producer and a StatsD sender run. /healthz and a real query must
  // answer within 1.8 s (under the 2 s read timeout), every flooding connection must end with a
  // 503 (shed: more than http_max_connections, 512, wait), a 408 (its head never arrived) or a
  // close (idle), and the well-formed totals must be exact.
  constexpr int kConnections = 3000;
  rlimit rl{};
  QCOMPARE(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < kConnections + 256) QSKIP("RLIMIT_NOFILE's hard limit is below 3256");
  const double shed_before =
      metric_value(metrics(), "tally_limit_hits_total{limit=\"http_connections\"}");
  const double good_before = good_total();
  GoodTraffic good(collector_.ingest(), 999999001, "hostile.good");
  good.start();
  std::atomic<uint64_t> statsd_sent{0};
  Loop statsd([&](const std::atomic<bool>& stop) {
    while (!stop) {
      if (send_udp(static_cast<uint16_t>(collector_.statsd_port()), "hostile.conn_statsd:1|c\n"))
        ++statsd_sent;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  QVERIFY(eventually([&] { return good.acked() > 0 && statsd_sent > 0; }));

  // Connected without waiting: a server that accepts slowly must not stall the test.
  std::vector<int> fds;
  const FdsCloser closer{fds};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(collector_.http_port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < kConnections; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    QVERIFY(fd >= 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);  // EINPROGRESS
    fds.push_back(fd);
  }
  Loop drip([&](const std::atomic<bool>& stop) {
    const std::string head =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + std::string(100, 's') + "\r\n\r\n";
    for (size_t at = 0; !stop && at < head.size(); ++at) {
      for (size_t i = 1; i < fds.size(); i += 2)
        (void)::send(fds[i], head.data() + at, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      for (int k = 0; k < 20 && !stop; ++k)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto timed_get = [&](const std::string& path) {
    httplib::Client c("127.0.0.1", collector_.http_port());
    c.set_connection_timeout(1, 800000);
    c.set_read_timeout(1, 800000);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.Get(path.c_str());
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    return std::make_tuple(r ? r->status : 0, r ? r->body : std::string(), ms);
  };
  // Paces the test, not a wait for a state: the flood holds every connection slot for a while
  // before /healthz is asked, and the three asks spread over it.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (int k = 0; k < 3; ++k) {
    auto [status, body, ms] = timed_get("/healthz");
    QVERIFY2(status == 200,
             qPrintable(QString("/healthz during the flood: status %1 after %2 ms %3")
                            .arg(status)
                            .arg(ms)
                            .arg(QString::fromStdString(body))));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // The well-formed senders stop; their totals are read while the flood goes on.
  good.stop();
  statsd.stop();
  auto [status, body, ms] = timed_get("/api/query?metric=hostile.good&from=-1h&to=now&step=1h");
  QVERIFY2(status == 200,
           qPrintable(
               QString("/api/query during the flood: status %1 after %2 ms").arg(status).arg(ms)));
  QCOMPARE(total(json::parse(body)) - good_before, static_cast<double>(good.acked()));

  // Every flooding connection ends: 503 (shed), 408 (its head never came) or closed.
  std::vector<int> ended(fds.size(), 0);  // 0 open, 1 closed, 408, 503
  int open = static_cast<int>(fds.size());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  while (open > 0 && std::chrono::steady_clock::now() < until) {
    for (size_t i = 0; i < fds.size(); ++i) {
      if (ended[i]) continue;
      char buf[64];
      const ssize_t n = ::recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) continue;
      const std::string got = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
      ended[i] = got.starts_with("HTTP/1.1 503") ? 503 : got.starts_with("HTTP/1.1 408") ? 408 : 1;
      if (n > 0 && ended[i] == 1) QFAIL(qPrintable(QString::fromStdString("answered: " + got)));
      --open;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  drip.stop();
  const auto count = [&](int v) { return std::count(ended.begin(), ended.end(), v); };
  qInfo("flood of %d: %ld shed (503), %ld timed out (408), %ld closed, %d still open", kConnections,
        count(503), count(408), count(1), open);
  QCOMPARE(open, 0);
  QVERIFY(count(503) > 0);
  const double shed =
      metric_value(metrics(), "tally_limit_hits_total{limit=\"http_connections\"}") - shed_before;
  // Each shed connection was answered 503; a client whose last byte crossed the close may see a
  // reset instead (counted as closed), so the counter lies between the two.
  QVERIFY2(
      shed >= static_cast<double>(count(503)) && shed <= static_cast<double>(count(503) + count(1)),
      qPrintable(
          QString("tally_limit_hits_total{limit=\"http_connections\"} went up by %1").arg(shed)));

  // StatsD counts are visible once logged (a few milliseconds); every datagram sent on loopback
  // was counted as a line.
  QVERIFY(eventually([&] {
    auto q = collector_.get("/api/query?metric=hostile.conn_statsd&from=-1h&to=now&step=1h");
    return q["_status"] == 200 && total(q) == static_cast<double>(statsd_sent.load());
  }));
  auto [hs, hbody] = collector_.get_raw("/healthz");
  QVERIFY2(hs == 200, hbody.c_str());
}

void TestHostile::queryPastItsDeadlineIsRefusedWhileItRuns() {
  // A store of 500,000 stored distribution buckets (10,000 series x 50 s): with a query_timeout
  // of 1 ms, a percentile over all of it (/api/query) and a PromQL query over it are refused
  // with 400 naming the deadline, counted as limit="query_deadline". The scan itself checks the
  // deadline (every 256 stored chunks or rows), and so does every PromQL node.
  CollectorProcess c;
  const QStringList base = {"--statsd", "off", "--checkpoint", "1s", "--lateness", "1s"};
  QVERIFY(c.start(base));
  constexpr int kSeries = 10000, kSeconds = 50, kPerBatch = 250;
  Sketch sketch;
  for (int v = 1; v <= 20; ++v) sketch.add(v * 1.7, 1);
  const int64_t t0 = now_s() - 100;
  RawProducer p(c.ingest());
  for (int b = 0; b < kSeries / kPerBatch; ++b) {
    BatchBuilder batch(424242, static_cast<uint64_t>(b + 1));
    for (uint32_t i = 0; i < kPerBatch; ++i)
      batch.def(i + 1, "hostile_deadline", {{"s", std::to_string(b * kPerBatch + i)}},
                wire::DISTRIBUTION);
    for (uint32_t i = 0; i < kPerBatch; ++i)
      for (int k = 0; k < kSeconds; ++k) batch.dist(i + 1, t0 + k, sketch);
    auto ack = p.send(batch.b);
    QVERIFY2(ack && ack->code() == wire::Ack::OK, ack ? ack->reason().c_str() : "no Ack");
  }
  const std::string range = "/api/query?metric=hostile_deadline&from=" + std::to_string(t0) +
                            "&to=" + std::to_string(t0 + kSeconds) + "&step=1s";
  QVERIFY(eventually([&] { return total(c.get(range + "&fn=count")) == 20.0 * kSeries * kSeconds; },
                     30000));
  QCOMPARE(c.stop(), 0);

  QVERIFY(c.start(base + QStringList{"--limit", "query_timeout=1ms"}));
  const char* kHits = "tally_limit_hits_total{limit=\"query_deadline\"}";
  const double hits_before = metric_value(c.get_raw("/metrics").second, kHits);
  for (const std::string& path :
       {range + "&fn=p99",
        "/api/v1/query?query=sum(hostile_deadline_count)&time=" + std::to_string(t0 + kSeconds)}) {
    const auto start = std::chrono::steady_clock::now();
    auto [status, body] = c.get_raw(path);
    qInfo("%s: %d after %lld ms", path.c_str(), status,
          static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - start)
                                     .count()));
    QVERIFY2(status == 400 && body.find("deadline") != std::string::npos,
             qPrintable(QString("%1: %2 %3")
                            .arg(QString::fromStdString(path))
                            .arg(status)
                            .arg(QString::fromStdString(body.substr(0, 200)))));
  }
  QCOMPARE(metric_value(c.get_raw("/metrics").second, kHits), hits_before + 2);
  QCOMPARE(c.stop(), 0);
}

void TestHostile::restartAfterOverflowingValuesIsHealthy() {
  // What was logged replays through the same checks after a restart.
  QCOMPARE(collector_.stop(), 0);
  QVERIFY(collector_.start(args()));
  const double f0 = flushes();
  GoodTraffic good(collector_.ingest(), 999999937, "hostile.after_restart");
  good.start();
  QVERIFY(eventually([&] { return flushes() >= f0 + 2; }));
  good.stop();
  auto [status, body] = collector_.get_raw("/healthz");
  QVERIFY2(status == 200, body.c_str());
  auto q = collector_.get("/api/query?metric=hostile.after_restart&from=-1h&to=now&step=1h");
  QCOMPARE(total(q), static_cast<double>(good.acked()));
}

QTEST_GUILESS_MAIN(TestHostile)
// Protobuf writes a stderr line for every string that is not valid UTF-8 when it parses, so a
// client could write lines as fast as it sends frames, past the log's level, rate limit and
// rotation. Each such frame is answered INVALID and counted; stderr holds only the collector's log.
void TestHostile::invalidUtf8FramesWriteNothingToStderr() {
  QTemporaryDir tmp;
  CollectorProcess c(tmp.path() + "/data");
  c.set_stderr_file(tmp.path() + "/stderr.log");
  QVERIFY(c.start());
  RawProducer p(c.ingest());
  const int64_t t = now_s();
  for (uint64_t i = 0; i < 200; ++i) {
    auto a = p.send_frame(
        frame(BatchBuilder(5000 + i, 1).def(1, "hostile.\xff\xfe", {}).count(1, t, 1)), 5000);
    QVERIFY2(a, "no Ack");
    QCOMPARE(static_cast<int>(a->code()), static_cast<int>(wire::Ack::INVALID));
  }
  QCOMPARE(metric_value(c.get_raw("/metrics").second, "tally_batches_rejected_total"), 200.0);
  c.stop();
  QFile f(tmp.path() + "/stderr.log");
  QVERIFY(f.open(QIODevice::ReadOnly));
  const QByteArray text = f.readAll();
  QVERIFY2(text.contains("event=opened"), "the collector's log is not in the captured stderr");
  QVERIFY2(!text.contains("libprotobuf"),
           qPrintable(QString::number(text.count("libprotobuf")) + " protobuf lines, e.g. " +
                      text.mid(text.indexOf("[libprotobuf"), 200)));
}

#include "tst_hostile.moc"
