// StatsD / DogStatsD ingest: the parser as tables of must-parse / must-not-parse lines, and the
// listener over real UDP and unix datagram sockets with an injected clock.
#include <QtTest>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <sstream>

#include "ingest/statsd_listener.h"
#include "ingest/statsd_parser.h"

using namespace tally;
using namespace tally::collector;

Q_DECLARE_METATYPE(QList<double>)

namespace {

std::string sv(const QByteArray& b) {
  return std::string(b.constData(), static_cast<size_t>(b.size()));
}

// Collects what a listener hands to its sink; thread-safe.
class Collected {
 public:
  StatsdSink sink() {
    return [this](std::vector<StatsdSample>&& batch) {
      std::lock_guard lock(mu_);
      ++calls_;
      for (auto& s : batch) samples_.push_back(std::move(s));
    };
  }
  std::vector<StatsdSample> samples() const {
    std::lock_guard lock(mu_);
    return samples_;
  }
  // Sum of values per "metric{tags}" for one type.
  std::map<std::string, double> sums(StatsdType type) const {
    std::lock_guard lock(mu_);
    std::map<std::string, double> out;
    for (const auto& s : samples_) {
      if (s.type == type) out[s.metric + "{" + tags_to_string(s.tags) + "}"] += s.value;
    }
    return out;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return samples_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<StatsdSample> samples_;
  int calls_ = 0;
};

// A UDP client socket sending to 127.0.0.1:port.
class UdpSender {
 public:
  explicit UdpSender(uint16_t port) : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(port);
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  ~UdpSender() { ::close(fd_); }
  bool send(const std::string& payload) {
    return ::sendto(fd_, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&addr_),
                    sizeof addr_) == static_cast<ssize_t>(payload.size());
  }

 private:
  int fd_;
  sockaddr_in addr_{};
};

bool send_unix(const std::string& path, const std::string& payload) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ssize_t n = ::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&addr),
                       sizeof addr);
  ::close(fd);
  return n == static_cast<ssize_t>(payload.size());
}

std::shared_ptr<spdlog::logger> string_logger(std::ostringstream& out) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("statsd-test", sink);
  logger->set_pattern("level=%l %v");
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::trace);
  return logger;
}

constexpr int64_t kT0Ms = 1'700'000'000'000;  // a whole second

}  // namespace

class TestStatsd : public QObject {
  Q_OBJECT
 private slots:
  void mustParse_data();
  void mustParse();
  void mustNotParse_data();
  void mustNotParse();
  void tagKeyMapping_data();
  void tagKeyMapping();
  void packetWithBadLineInTheMiddle();
  void packetLineEndings_data();
  void packetLineEndings();
  void sampleRateScalingIsExact();
  void observationWeight_data();
  void observationWeight();
  void failedMultiValueLineAppendsNothing();

  void udpSumsAreExact();
  void udpPortZeroAndPortInUse();
  void setsBecomeGaugesWhenTheBucketCloses();
  void setsAreFlushedOnStop();
  void gaugeDeltasAreResolvedPerSeries();
  void gaugeDeltasPassThroughWhenNotResolved();
  void unixDatagramSocket();
  void unixSocketStaleFileReplacedLiveOneRefused();
  void truncatedUnixDatagramCountsTheCutLine();
  void rejectsAreCountedAndLoggedAtABoundedRate();
  void sinkExceptionIsCountedNotFatal();
  void offDisablesUdp();
  void badAddressesAreClearErrors_data();
  void badAddressesAreClearErrors();
};

// ---------------------------------------------------------------------------------------------
// Parser tables

void TestStatsd::mustParse_data() {
  QTest::addColumn<QByteArray>("line");
  QTest::addColumn<QString>("metric");
  QTest::addColumn<QString>("tags");  // canonical "k=v,k2=v2"
  QTest::addColumn<QString>("type");
  QTest::addColumn<QList<double>>("values");
  QTest::addColumn<double>("rate");
  QTest::addColumn<bool>("delta");
  QTest::addColumn<QByteArray>("member");
  QTest::addColumn<qint64>("timestamp");

  using L = QList<double>;
  auto row = [](const char* name, const char* line, const char* metric, const char* tags,
                const char* type, L values, double rate = 1, bool delta = false,
                const char* member = "", qint64 ts = 0) {
    QTest::newRow(name) << QByteArray(line) << QString(metric) << QString(tags) << QString(type)
                        << values << rate << delta << QByteArray(member) << ts;
  };
  // Counters
  row("counter", "api.errors:1|c", "api.errors", "", "counter", {1});
  row("counter float", "bytes.sent:2.5|c", "bytes.sent", "", "counter", {2.5});
  row("counter negative", "queue.depth:-3|c", "queue.depth", "", "counter", {-3});
  row("counter plus sign", "a:+4|c", "a", "", "counter", {4});
  row("counter zero", "a:0|c", "a", "", "counter", {0});
  row("counter exponent", "a:1e3|c", "a", "", "counter", {1000});
  row("counter leading dot", "a:.5|c", "a", "", "counter", {0.5});
  row("counter rate scales", "a:1|c|@0.1", "a", "", "counter", {10}, 0.1);
  row("counter rate half", "a:3|c|@0.5", "a", "", "counter", {6}, 0.5);
  row("counter rate 1", "a:3|c|@1", "a", "", "counter", {3}, 1.0);
  row("name with dash underscore", "_svc-1.req_total:1|c", "_svc-1.req_total", "", "counter", {1});
  // Gauges
  row("gauge set", "cpu.load:0.75|g", "cpu.load", "", "gauge", {0.75});
  row("gauge delta plus", "conns:+5|g", "conns", "", "gauge", {5}, 1, true);
  row("gauge delta minus", "conns:-2|g", "conns", "", "gauge", {-2}, 1, true);
  row("gauge rate ignored", "conns:7|g|@0.5", "conns", "", "gauge", {7}, 0.5);
  // Distributions
  row("timer", "api.latency:320|ms", "api.latency", "", "distribution", {320});
  row("timer rate kept", "api.latency:320|ms|@0.25", "api.latency", "", "distribution", {320},
      0.25);
  row("histogram", "size:1024|h", "size", "", "distribution", {1024});
  row("distribution", "size:-1.5|d", "size", "", "distribution", {-1.5});
  // Sets
  row("set", "users.unique:alice|s", "users.unique", "", "set", {0}, 1, false, "alice");
  row("set member with colon", "ips:10.0.0.1:443|s", "ips", "", "set", {0}, 1, false,
      "10.0.0.1:443");
  row("set numeric member", "ids:42|s", "ids", "", "set", {0}, 1, false, "42");
  // DogStatsD tags
  row("tags", "api.errors:1|c|#region:eu,status:500", "api.errors", "region=eu,status=500",
      "counter", {1});
  row("tags sorted", "a:1|c|#z:1,a:2,m:3", "a", "a=2,m=3,z=1", "counter", {1});
  row("tag without value is true", "a:1|c|#canary,env:prod", "a", "canary=true,env=prod", "counter",
      {1});
  row("tag value with colons", "a:1|c|#url:http://x:80/p", "a", "url=http://x:80/p", "counter",
      {1});
  row("tag value utf8 and spaces", "a:1|c|#city:M\xc3\xbcnchen Ost", "a", "city=M\xc3\xbcnchen Ost",
      "counter", {1});
  row("tag spaces trimmed", "a:1|c|#env: prod , region :eu", "a", "env=prod,region=eu", "counter",
      {1});
  row("empty tag elements skipped", "a:1|c|#env:prod,,region:eu,", "a", "env=prod,region=eu",
      "counter", {1});
  row("empty tag section", "a:1|c|#", "a", "", "counter", {1});
  row("tag key slash mapped", "a:1|c|#app.kubernetes.io/name:web", "a",
      "app.kubernetes.io_name=web", "counter", {1});
  row("tag key digit first mapped", "a:1|c|#2xx:yes", "a", "_2xx=yes", "counter", {1});
  row("rate then tags", "a:1|c|@0.5|#k:v", "a", "k=v", "counter", {2}, 0.5);
  row("tags then rate", "a:1|c|#k:v|@0.5", "a", "k=v", "counter", {2}, 0.5);
  // DogStatsD extensions
  row("container id ignored",
      "a:1|c|#k:v|c:83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0c918c8d93df19a9de6f3fe1d", "a", "k=v",
      "counter", {1});
  row("timestamp", "a:1|c|T1700000000", "a", "", "counter", {1}, 1, false, "", 1700000000);
  row("unknown lowercase field skipped", "a:1|c|e:it-false,cn-x|card:low", "a", "", "counter", {1});
  // DogStatsD 1.1 multi-value
  row("multi-value histogram", "lat:1:2:3|h|#k:v", "lat", "k=v", "distribution", {1, 2, 3});
  row("multi-value counter scaled", "a:1:2|c|@0.5", "a", "", "counter", {2, 4}, 0.5);
  row("multi-value gauge deltas", "g:+1:-2|g", "g", "", "gauge", {1, -2}, 1, true);
  // Limits
  row("200-byte name", (std::string(200, 'n') + ":1|c").c_str(), std::string(200, 'n').c_str(), "",
      "counter", {1});
}

void TestStatsd::mustParse() {
  QFETCH(QByteArray, line);
  QFETCH(QString, metric);
  QFETCH(QString, tags);
  QFETCH(QString, type);
  QFETCH(QList<double>, values);
  QFETCH(double, rate);
  QFETCH(bool, delta);
  QFETCH(QByteArray, member);
  QFETCH(qint64, timestamp);

  std::vector<StatsdSample> out;
  auto err = parse_statsd_line(sv(line), out);
  QVERIFY2(!err, err ? err->message.c_str() : "");
  QCOMPARE(out.size(), static_cast<size_t>(values.size()));
  for (qsizetype i = 0; i < values.size(); ++i) {
    const StatsdSample& s = out[static_cast<size_t>(i)];
    QCOMPARE(QString::fromStdString(s.metric), metric);
    QCOMPARE(QString::fromStdString(tags_to_string(s.tags)), tags);
    QCOMPARE(QString(statsd_type_name(s.type)), type);
    QCOMPARE(s.value, values[i]);
    QCOMPARE(s.sample_rate, rate);
    QCOMPARE(s.delta, delta);
    QCOMPARE(QByteArray::fromStdString(s.set_member), member);
    QCOMPARE(static_cast<qint64>(s.timestamp_s), timestamp);
    QVERIFY(validate_metric_name(s.metric).is_ok());
    QVERIFY(validate_tags(s.tags).is_ok());
  }
}

void TestStatsd::mustNotParse_data() {
  QTest::addColumn<QByteArray>("line");
  QTest::addColumn<QString>("reason");
  QTest::addColumn<QString>("says");  // a fragment of the message

  auto row = [](const char* name, QByteArray line, const char* reason, const char* says) {
    QTest::newRow(name) << line << QString(reason) << QString(says);
  };
  row("no colon", "api.errors|c", "syntax", "no ':'");
  row("no type", "api.errors:1", "syntax", "'|type'");
  row("bare name", "api.errors", "syntax", "no ':'");
  row("empty name", ":1|c", "metric_name", "empty");
  row("name with space", "api errors:1|c", "metric_name", "invalid character");
  row("name with slash", "api/errors:1|c", "metric_name", "invalid character");
  row("name digit first", "1api:1|c", "metric_name", "start");
  row("name 201 bytes", QByteArray(201, 'n') + ":1|c", "metric_name", "limit");
  row("empty value", "a:|c", "value", "empty value");
  row("word value", "a:abc|c", "value", "not a finite number");
  row("nan", "a:nan|g", "value", "not a finite number");
  row("inf", "a:inf|ms", "value", "not a finite number");
  row("double sign", "a:+-1|g", "value", "not a finite number");
  row("trailing junk", "a:1x|c", "value", "not a finite number");
  row("space in value", "a:1 |c", "value", "not a finite number");
  row("hex", "a:0x10|c", "value", "not a finite number");
  row("huge", "a:1e400|c", "value", "not a finite number");
  row("multi-value empty", "a:1::2|h", "value", "empty value");
  row("empty set member", "a:|s", "value", "empty set member");
  row("unknown type", "a:1|x", "type", "unknown type");
  row("empty type", "a:1|", "type", "unknown type");
  row("type case", "a:1|C", "type", "unknown type");
  row("rate zero", "a:1|c|@0", "sample_rate", "(0, 1]");
  row("rate above one", "a:1|c|@1.5", "sample_rate", "(0, 1]");
  row("rate negative", "a:1|c|@-0.5", "sample_rate", "(0, 1]");
  row("rate word", "a:1|c|@x", "sample_rate", "(0, 1]");
  row("rate twice", "a:1|c|@0.5|@0.5", "field", "twice");
  row("tags twice", "a:1|c|#a:1|#b:2", "field", "twice");
  row("empty field", "a:1|c||#k:v", "field", "empty");
  row("trailing pipe", "a:1|c|", "field", "empty");
  row("unknown field", "a:1|c|!x", "field", "unknown field");
  row("uppercase unknown field", "a:1|c|X:1", "field", "unknown field");
  row("timestamp not a number", "a:1|c|Tabc", "timestamp", "positive integer");
  row("timestamp zero", "a:1|c|T0", "timestamp", "positive integer");
  row("timestamp junk", "a:1|c|T17x", "timestamp", "positive integer");
  row("tag empty value", "a:1|c|#env:", "tags", "empty value");
  row("tag empty key", "a:1|c|#:prod", "tags", "empty key");
  row("tag duplicate key", "a:1|c|#env:a,env:b", "tags", "twice");
  row("tag duplicate after mapping", "a:1|c|#a/b:1,a_b:2", "tags", "twice");
  row("tag control char",
      "a:1|c|#env:a\x01"
      "b",
      "tags", "control");
  row("tag bad utf8", "a:1|c|#env:\xff", "tags", "UTF-8");
  row("tag value 201 bytes", "a:1|c|#k:" + QByteArray(201, 'v'), "tags", "limit");
  row("tag key 101 bytes", "a:1|c|#" + QByteArray(101, 'k') + ":v", "tags", "limit");
  QByteArray many = "a:1|c|#";
  for (int i = 0; i < 33; ++i) many += "k" + QByteArray::number(i) + ":v,";
  row("33 tags", many, "tags", "more than 32");
  row("event", "_e{5,4}:title|text|#k:v", "event", "not supported");
  row("service check", "_sc|redis.up|0|#k:v", "service_check", "not supported");
}

void TestStatsd::mustNotParse() {
  QFETCH(QByteArray, line);
  QFETCH(QString, reason);
  QFETCH(QString, says);
  std::vector<StatsdSample> out;
  auto err = parse_statsd_line(sv(line), out);
  QVERIFY2(err.has_value(), "line parsed but must not");
  QCOMPARE(QString(statsd_reject_name(err->reason)), reason);
  QVERIFY2(QString::fromStdString(err->message).contains(says), err->message.c_str());
  QVERIFY(out.empty());
}

void TestStatsd::tagKeyMapping_data() {
  QTest::addColumn<QByteArray>("raw");
  QTest::addColumn<QByteArray>("mapped");
  QTest::newRow("kept") << QByteArray("k8s.pod-name_x") << QByteArray("k8s.pod-name_x");
  QTest::newRow("slash") << QByteArray("a/b") << QByteArray("a_b");
  QTest::newRow("space and equals") << QByteArray("a b=c") << QByteArray("a_b_c");
  QTest::newRow("digit first") << QByteArray("9k") << QByteArray("_9k");
  QTest::newRow("dot first") << QByteArray(".k") << QByteArray("_.k");
  QTest::newRow("dash first") << QByteArray("-k") << QByteArray("_-k");
  QTest::newRow("utf8 one per code point")
      << QByteArray("caf\xc3\xa9\xe2\x82\xac") << QByteArray("caf__");
}

void TestStatsd::tagKeyMapping() {
  QFETCH(QByteArray, raw);
  QFETCH(QByteArray, mapped);
  std::string out = map_statsd_tag_key(sv(raw));
  QCOMPARE(QByteArray::fromStdString(out), mapped);
  QVERIFY(validate_tag_key(out).is_ok());
}

void TestStatsd::packetWithBadLineInTheMiddle() {
  const std::string packet = "a:1|c|#k:v\nbad line\nb:2|g\n_e{1,1}:t|x\nc:3|ms\n";
  std::vector<StatsdSample> samples;
  std::vector<StatsdLineError> errors;
  auto counts = parse_statsd_packet(packet, samples, errors);
  QCOMPARE(counts.lines_ok, size_t{3});
  QCOMPARE(counts.lines_rejected, size_t{2});
  QCOMPARE(samples.size(), size_t{3});
  QCOMPARE(samples[0].metric, std::string("a"));
  QCOMPARE(samples[1].metric, std::string("b"));
  QCOMPARE(samples[2].metric, std::string("c"));
  QCOMPARE(errors.size(), size_t{2});
  QCOMPARE(errors[0].line_number, size_t{2});
  QCOMPARE(errors[0].line, std::string_view("bad line"));
  QCOMPARE(errors[0].reason, StatsdReject::kSyntax);
  QCOMPARE(errors[1].line_number, size_t{4});
  QCOMPARE(errors[1].reason, StatsdReject::kEvent);
}

void TestStatsd::packetLineEndings_data() {
  QTest::addColumn<QByteArray>("packet");
  QTest::addColumn<int>("ok");
  QTest::addColumn<int>("rejected");
  QTest::newRow("single no newline") << QByteArray("a:1|c") << 1 << 0;
  QTest::newRow("trailing newline") << QByteArray("a:1|c\n") << 1 << 0;
  QTest::newRow("crlf") << QByteArray("a:1|c\r\nb:2|c\r\n") << 2 << 0;
  QTest::newRow("empty lines skipped") << QByteArray("\n\na:1|c\n\n\nb:1|c\n\n") << 2 << 0;
  QTest::newRow("only newlines") << QByteArray("\n\r\n\n") << 0 << 0;
  QTest::newRow("empty") << QByteArray("") << 0 << 0;
  QTest::newRow("stray cr inside is a bad value") << QByteArray("a:1\r|c\n") << 0 << 1;
  QTest::newRow("nul byte is a bad value") << QByteArray("a:1\0|c\nb:1|c", 12) << 1 << 1;
}

void TestStatsd::packetLineEndings() {
  QFETCH(QByteArray, packet);
  QFETCH(int, ok);
  QFETCH(int, rejected);
  std::vector<StatsdSample> samples;
  std::vector<StatsdLineError> errors;
  auto counts = parse_statsd_packet(sv(packet), samples, errors);
  QCOMPARE(static_cast<int>(counts.lines_ok), ok);
  QCOMPARE(static_cast<int>(counts.lines_rejected), rejected);
  QCOMPARE(static_cast<int>(errors.size()), rejected);
}

void TestStatsd::sampleRateScalingIsExact() {
  // Rates whose reciprocals are whole numbers scale exactly: the total is what was counted.
  struct Case {
    const char* rate;
    int lines;
    double expected;
  };
  for (Case c : {Case{"0.5", 1000, 2000}, Case{"0.25", 1000, 4000}, Case{"0.1", 1000, 10000},
                 Case{"0.01", 100, 10000}, Case{"0.2", 500, 2500}}) {
    std::string packet;
    for (int i = 0; i < c.lines; ++i) packet += std::string("hits:1|c|@") + c.rate + "\n";
    std::vector<StatsdSample> samples;
    std::vector<StatsdLineError> errors;
    parse_statsd_packet(packet, samples, errors);
    QVERIFY(errors.empty());
    double total = 0;
    for (const auto& s : samples) total += s.value;
    QCOMPARE(total, c.expected);
  }
}

void TestStatsd::observationWeight_data() {
  QTest::addColumn<double>("rate");
  QTest::addColumn<quint64>("weight");
  QTest::newRow("1") << 1.0 << quint64(1);
  QTest::newRow("0.5") << 0.5 << quint64(2);
  QTest::newRow("0.1") << 0.1 << quint64(10);
  QTest::newRow("0.01") << 0.01 << quint64(100);
  QTest::newRow("0.3 rounds") << 0.3 << quint64(3);
  QTest::newRow("0.75 at least one") << 0.75 << quint64(1);
  QTest::newRow("0.4 rounds up") << 0.4 << quint64(3);
}

void TestStatsd::observationWeight() {
  QFETCH(double, rate);
  QFETCH(quint64, weight);
  StatsdSample s;
  s.type = StatsdType::kDistribution;
  s.sample_rate = rate;
  QCOMPARE(static_cast<quint64>(s.observation_weight()), weight);
}

void TestStatsd::failedMultiValueLineAppendsNothing() {
  std::vector<StatsdSample> out;
  QVERIFY(!parse_statsd_line("x:9|c", out));
  QVERIFY(parse_statsd_line("a:1:2:oops|h", out).has_value());
  QCOMPARE(out.size(), size_t{1});
  QCOMPARE(out[0].metric, std::string("x"));
}

// ---------------------------------------------------------------------------------------------
// Listener over real sockets

void TestStatsd::udpSumsAreExact() {
  Collected got;
  ManualClock clock(kT0Ms + 250);
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  opt.logger = spdlog::default_logger();
  StatsdListener listener(opt, got.sink(), clock);
  QVERIFY(listener.start().is_ok());
  QVERIFY(listener.udp_port() != 0);

  // 200 packets of 10 lines: counters with rates, gauges, distributions, one bad line each.
  UdpSender sender(listener.udp_port());
  for (int p = 0; p < 200; ++p) {
    std::string packet;
    packet += "api.errors:1|c|#region:eu\n";
    packet += "api.errors:1|c|@0.5|#region:eu\n";  // counts 2
    packet += "api.errors:1|c|@0.1|#region:us\n";  // counts 10
    packet += "bytes:2.5|c\n";
    packet += "not a line\n";
    packet += "lat:10:20|ms|#region:eu\n";
    packet += "lat:5|h|@0.5|#region:eu\r\n";
    packet += "depth:" + std::to_string(p) + "|g\n";
    packet += "conns:+1|g\n";
    packet += "size:100|d";
    QVERIFY(sender.send(packet));
    if (p % 50 == 49)
      QTRY_COMPARE(listener.counters().packets, uint64_t(p + 1));  // pace the loopback
  }
  QTRY_COMPARE(listener.counters().packets, uint64_t{200});
  QTRY_COMPARE(listener.counters().lines_ok, uint64_t{200 * 9});
  QTRY_COMPARE(got.size(), size_t{200 * 10});
  listener.stop();  // counters are final once the thread is joined
  StatsdCounters c = listener.counters();
  QCOMPARE(c.rejected(StatsdReject::kSyntax), uint64_t{200});
  QCOMPARE(c.lines_rejected_total(), uint64_t{200});
  QCOMPARE(c.samples, uint64_t{200 * 10});
  QVERIFY(c.bytes > 200 * 100);

  auto counters = got.sums(StatsdType::kCounter);
  QCOMPARE(counters["api.errors{region=eu}"], 200.0 * 3);
  QCOMPARE(counters["api.errors{region=us}"], 200.0 * 10);
  QCOMPARE(counters["bytes{}"], 200.0 * 2.5);
  auto dists = got.sums(StatsdType::kDistribution);
  QCOMPARE(dists["lat{region=eu}"], 200.0 * 35);
  QCOMPARE(dists["size{}"], 200.0 * 100);
  uint64_t lat_weight = 0;
  double conns = -1;
  double last_depth = -1;
  for (const auto& s : got.samples()) {
    QCOMPARE(s.timestamp_s, kT0Ms / 1000);  // stamped with the injected clock
    if (s.metric == "lat") lat_weight += s.observation_weight();
    if (s.metric == "conns") conns = s.value;
    QVERIFY(!s.delta);  // the listener applied the gauge deltas
    if (s.metric == "depth") last_depth = s.value;
  }
  QCOMPARE(lat_weight, uint64_t{200 * 4});
  QCOMPARE(conns, 200.0);       // 200 times "+1"
  QCOMPARE(last_depth, 199.0);  // one socket, one thread: datagrams arrive in order
}

void TestStatsd::udpPortZeroAndPortInUse() {
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  StatsdListener first(opt, got.sink());
  QVERIFY(first.start().is_ok());
  const uint16_t port = first.udp_port();
  QVERIFY(port != 0);

  opt.udp = "127.0.0.1:" + std::to_string(port);
  StatsdListener second(opt, got.sink());
  Status s = second.start();
  QVERIFY(!s.is_ok());
  QCOMPARE(s.code(), StatusCode::kIoError);
  QVERIFY2(s.message().find("127.0.0.1:" + std::to_string(port)) != std::string::npos,
           s.message().c_str());
  QVERIFY2(s.message().find("in use") != std::string::npos, s.message().c_str());
  QCOMPARE(second.udp_port(), uint16_t{0});
  first.stop();
  first.stop();  // idempotent
}

void TestStatsd::setsBecomeGaugesWhenTheBucketCloses() {
  Collected got;
  ManualClock clock(kT0Ms + 100);
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  StatsdListener listener(opt, got.sink(), clock);
  QVERIFY(listener.start().is_ok());
  UdpSender sender(listener.udp_port());

  QVERIFY(sender.send(
      "users:alice|s|#app:web\nusers:bob|s|#app:web\nusers:alice|s|#app:web\nusers:carol|s"));
  QVERIFY(sender.send("users:bob|s|#app:web\nusers:dave|s|#app:web\nother:1|c"));
  QTRY_COMPARE(listener.counters().lines_ok, uint64_t{7});
  QTRY_COMPARE(got.size(), size_t{1});  // the counter; the sets are still open
  clock.set_ms(kT0Ms + 900);
  QTest::qWait(120);  // the listener checks open sets every 50 ms: nothing may close yet
  QCOMPARE(got.size(), size_t{1});

  // The next second: new members go to a new bucket; the first bucket closes.
  clock.set_ms(kT0Ms + 1000);
  QTRY_COMPARE(listener.counters().sets_emitted, uint64_t{2});
  QVERIFY(sender.send("users:erin|s|#app:web"));
  QTRY_COMPARE(listener.counters().lines_ok, uint64_t{8});
  clock.set_ms(kT0Ms + 2000);
  QTRY_COMPARE(listener.counters().sets_emitted, uint64_t{3});
  QTRY_COMPARE(got.size(), size_t{4});  // the counter and three gauges

  std::vector<std::tuple<std::string, int64_t, double>> gauges;
  for (const auto& s : got.samples()) {
    QVERIFY(s.type != StatsdType::kSet);
    if (s.type == StatsdType::kGauge) {
      QVERIFY(!s.delta);
      gauges.emplace_back(s.metric + "{" + tags_to_string(s.tags) + "}", s.timestamp_s, s.value);
    }
  }
  std::sort(gauges.begin(), gauges.end());
  const int64_t t0 = kT0Ms / 1000;
  QCOMPARE(gauges.size(), size_t{3});
  QCOMPARE(gauges[0], std::make_tuple(std::string("users{app=web}"), t0, 3.0));  // alice bob dave
  QCOMPARE(gauges[1], std::make_tuple(std::string("users{app=web}"), t0 + 1, 1.0));
  QCOMPARE(gauges[2], std::make_tuple(std::string("users{}"), t0, 1.0));
}

void TestStatsd::setsAreFlushedOnStop() {
  Collected got;
  ManualClock clock(kT0Ms);
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  opt.max_set_members = 2;
  StatsdListener listener(opt, got.sink(), clock);
  QVERIFY(listener.start().is_ok());
  UdpSender sender(listener.udp_port());
  // The |T timestamp picks the bucket; a third unique member is over the limit and counted.
  QVERIFY(
      sender.send("u:a|s|T1600000000\nu:b|s|T1600000000\nu:a|s|T1600000000\nu:c|s|T1600000000"));
  QTRY_COMPARE(listener.counters().lines_ok, uint64_t{4});
  listener.stop();
  QCOMPARE(listener.counters().set_members_dropped, uint64_t{1});
  QCOMPARE(listener.counters().sets_emitted, uint64_t{1});
  auto samples = got.samples();
  QCOMPARE(samples.size(), size_t{1});
  QCOMPARE(samples[0].type, StatsdType::kGauge);
  QCOMPARE(samples[0].value, 2.0);
  QCOMPARE(samples[0].timestamp_s, int64_t{1600000000});
}

void TestStatsd::gaugeDeltasAreResolvedPerSeries() {
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  opt.max_gauge_series = 2;
  StatsdListener listener(opt, got.sink());
  QVERIFY(listener.start().is_ok());
  UdpSender sender(listener.udp_port());
  // A delta on an unseen gauge starts from 0; a plain value sets; deltas add to the last value;
  // the same metric with other tags is another gauge; a third series is over the limit.
  QVERIFY(
      sender.send("g:+2|g|#h:a\ng:10|g|#h:a\ng:-3|g|#h:a\ng:+1:+1|g|#h:a\ng:+5|g|#h:b\ng:+7|g|#h:"
                  "c\ng:+7|g|#h:c"));
  QTRY_COMPARE(got.size(), size_t{8});
  std::vector<std::pair<std::string, double>> values;
  for (const auto& s : got.samples()) {
    QVERIFY(!s.delta);
    values.emplace_back(tags_to_string(s.tags), s.value);
  }
  const std::vector<std::pair<std::string, double>> want{{"h=a", 2}, {"h=a", 10}, {"h=a", 7},
                                                         {"h=a", 8}, {"h=a", 9},  {"h=b", 5},
                                                         {"h=c", 7}, {"h=c", 7}};
  QCOMPARE(values, want);
  listener.stop();
  QCOMPARE(listener.counters().gauge_deltas_untracked, uint64_t{2});
}

void TestStatsd::gaugeDeltasPassThroughWhenNotResolved() {
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  opt.resolve_gauge_deltas = false;
  StatsdListener listener(opt, got.sink());
  QVERIFY(listener.start().is_ok());
  UdpSender sender(listener.udp_port());
  QVERIFY(sender.send("g:+2|g\ng:-3|g\ng:4|g"));
  QTRY_COMPARE(got.size(), size_t{3});
  auto s = got.samples();
  QCOMPARE(std::make_pair(s[0].value, s[0].delta), std::make_pair(2.0, true));
  QCOMPARE(std::make_pair(s[1].value, s[1].delta), std::make_pair(-3.0, true));
  QCOMPARE(std::make_pair(s[2].value, s[2].delta), std::make_pair(4.0, false));
}

void TestStatsd::unixDatagramSocket() {
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  const std::string path = dir.filePath("statsd.sock").toStdString();
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = "off";
  opt.unix_path = path;
  StatsdListener listener(opt, got.sink());
  QVERIFY(listener.start().is_ok());
  QCOMPARE(listener.udp_port(), uint16_t{0});
  QVERIFY(QFileInfo(QString::fromStdString(path)).exists());
  QCOMPARE(QFileInfo(QString::fromStdString(path)).permissions() & QFileDevice::WriteOther,
           QFileDevice::WriteOther);

  for (int i = 0; i < 100; ++i)
    QVERIFY(send_unix(path, "jobs.done:1|c|#queue:mail\njobs.done:2|c|@0.5|#queue:mail"));
  QTRY_COMPARE(listener.counters().lines_ok, uint64_t{200});
  QTRY_COMPARE(got.sums(StatsdType::kCounter)["jobs.done{queue=mail}"], 500.0);
  listener.stop();
  QVERIFY(!QFileInfo::exists(QString::fromStdString(path)));  // removed on stop
}

void TestStatsd::unixSocketStaleFileReplacedLiveOneRefused() {
  QTemporaryDir dir;
  const std::string path = dir.filePath("s.sock").toStdString();
  {
    // A stale socket file: bound, then its process "died" without removing it.
    int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    QCOMPARE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = "off";
  opt.unix_path = path;
  StatsdListener live(opt, got.sink());
  QVERIFY(live.start().is_ok());

  StatsdListener second(opt, got.sink());
  Status s = second.start();
  QVERIFY(!s.is_ok());
  QVERIFY2(s.message().find("in use") != std::string::npos, s.message().c_str());
  QVERIFY(send_unix(path, "a:1|c"));  // the live one still owns the path
  QTRY_COMPARE(live.counters().lines_ok, uint64_t{1});

  QFile plain(dir.filePath("plain"));
  QVERIFY(plain.open(QIODevice::WriteOnly));
  plain.close();
  opt.unix_path = dir.filePath("plain").toStdString();
  StatsdListener third(opt, got.sink());
  s = third.start();
  QVERIFY(!s.is_ok());
  QVERIFY2(s.message().find("not a socket") != std::string::npos, s.message().c_str());
}

void TestStatsd::truncatedUnixDatagramCountsTheCutLine() {
  QTemporaryDir dir;
  const std::string path = dir.filePath("t.sock").toStdString();
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = "off";
  opt.unix_path = path;
  StatsdListener listener(opt, got.sink());
  QVERIFY(listener.start().is_ok());
  // 7,000 lines of 10 bytes = 70,000 bytes: more than the 64 KiB receive buffer.
  std::string big;
  for (int i = 0; i < 7000; ++i) big += "big.x:1|c\n";
  QVERIFY(send_unix(path, big));
  QTRY_COMPARE(listener.counters().packets, uint64_t{1});
  listener.stop();  // counters are final once the thread is joined
  StatsdCounters c = listener.counters();
  QCOMPARE(c.rejected(StatsdReject::kTruncated), uint64_t{1});
  QCOMPARE(c.lines_ok, uint64_t{64 * 1024 / 10});  // every complete line before the cut
  QCOMPARE(c.lines_rejected_total(), uint64_t{1});
}

void TestStatsd::rejectsAreCountedAndLoggedAtABoundedRate() {
  std::ostringstream log;
  Collected got;
  ManualClock clock(kT0Ms);
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  opt.logger = string_logger(log);
  StatsdListener listener(opt, got.sink(), clock);
  QVERIFY(listener.start().is_ok());
  UdpSender sender(listener.udp_port());

  QVERIFY(sender.send("ok:1|c\nbad name:1|c\n_sc|x|0\na:1|zz\n"));
  QVERIFY(sender.send("a:\"q\"|c"));
  QTRY_COMPARE(listener.counters().lines_rejected_total(), uint64_t{4});
  clock.advance_ms(1000);
  QVERIFY(sender.send("a:1|c|@7"));
  QTRY_COMPARE(listener.counters().lines_rejected_total(), uint64_t{5});
  listener.stop();

  StatsdCounters c = listener.counters();
  QCOMPARE(c.rejected(StatsdReject::kMetricName), uint64_t{1});
  QCOMPARE(c.rejected(StatsdReject::kServiceCheck), uint64_t{1});
  QCOMPARE(c.rejected(StatsdReject::kType), uint64_t{1});
  QCOMPARE(c.rejected(StatsdReject::kValue), uint64_t{1});
  QCOMPARE(c.rejected(StatsdReject::kSampleRate), uint64_t{1});
  QCOMPARE(c.lines_ok, uint64_t{1});

  QStringList rejects;
  for (const QString& l : QString::fromStdString(log.str()).split('\n'))
    if (l.contains("event=statsd_reject")) rejects << l;
  QCOMPARE(rejects.size(), 2);  // one per second, however many lines were bad
  QCOMPARE(rejects[0], QString("level=warning event=statsd_reject reason=metric_name line_number=2 "
                               "detail=\"metric name has an "
                               "invalid character; allowed: [A-Za-z0-9_.:-]: 'bad name'\" "
                               "line=\"bad name:1|c\" suppressed=0"));
  QVERIFY2(rejects[1].contains("reason=sample_rate") && rejects[1].contains("suppressed=3"),
           qPrintable(rejects[1]));
}

void TestStatsd::sinkExceptionIsCountedNotFatal() {
  std::ostringstream log;
  std::atomic<int> calls{0};
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  opt.logger = string_logger(log);
  StatsdListener listener(opt, [&](std::vector<StatsdSample>&&) {
    if (calls.fetch_add(1) == 0) throw std::runtime_error("shard queue full");
  });
  QVERIFY(listener.start().is_ok());
  UdpSender sender(listener.udp_port());
  QVERIFY(sender.send("a:1|c"));
  QTRY_COMPARE(listener.counters().sink_errors, uint64_t{1});
  QVERIFY(sender.send("a:1|c"));
  QTRY_COMPARE(calls.load(), 2);
  listener.stop();
  QVERIFY(QString::fromStdString(log.str()).contains(
      "event=statsd_sink_error error=\"shard queue full\""));
}

void TestStatsd::offDisablesUdp() {
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = "off";
  StatsdListener listener(opt, got.sink());
  QVERIFY(listener.start().is_ok());
  QCOMPARE(listener.udp_port(), uint16_t{0});
  listener.stop();
}

void TestStatsd::badAddressesAreClearErrors_data() {
  QTest::addColumn<QString>("udp");
  QTest::addColumn<QString>("unix_path");
  QTest::addColumn<QString>("says");
  QTest::newRow("no port") << "127.0.0.1"
                           << ""
                           << "host:port";
  QTest::newRow("port not a number") << "127.0.0.1:http"
                                     << ""
                                     << "invalid port";
  QTest::newRow("port too big") << "127.0.0.1:70000"
                                << ""
                                << "invalid port";
  QTest::newRow("empty host") << ":8125"
                              << ""
                              << "host:port";
  QTest::newRow("unknown host") << "no-such-host.invalid:8125"
                                << ""
                                << "no-such-host.invalid";
  QTest::newRow("unix path too long") << "off" << QString(200, 'p') << "limit";
  QTest::newRow("unix dir missing") << "off"
                                    << "/nonexistent-dir/statsd.sock"
                                    << "cannot bind unix socket";
}

void TestStatsd::badAddressesAreClearErrors() {
  QFETCH(QString, udp);
  QFETCH(QString, unix_path);
  QFETCH(QString, says);
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = udp.toStdString();
  opt.unix_path = unix_path.toStdString();
  StatsdListener listener(opt, got.sink());
  Status s = listener.start();
  QVERIFY(!s.is_ok());
  QVERIFY2(QString::fromStdString(s.message()).contains(says), s.message().c_str());
}

QTEST_GUILESS_MAIN(TestStatsd)
#include "tst_statsd.moc"
