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

#include "ingest/statsd_line_cache.h"
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
  // Lines the samples stand for: a counter from the listener's line cache sums `count` lines.
  uint64_t lines() const {
    std::lock_guard lock(mu_);
    uint64_t n = 0;
    for (const auto& s : samples_) n += s.type == StatsdType::kCounter ? s.count : 1;
    return n;
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
  void timestampsOutsideTheLimitsAreRejected_data();
  void timestampsOutsideTheLimitsAreRejected();
  void tagsDroppedAreCountedAndTheLineKept_data();
  void tagsDroppedAreCountedAndTheLineKept();
  void budgetsPerLineAndDatagram();
  void eventsAndServiceChecksAreCountedNotRejected();
  void eventFields_data();
  void eventFields();
  void eventTagsAreCappedAcrossTagSections();
  void packetWithBadLineInTheMiddle();
  void packetLineEndings_data();
  void packetLineEndings();
  void sampleRateScalingIsExact();
  void sampledDistributionWeights_data();
  void sampledDistributionWeights();
  void failedMultiValueLineAppendsNothing();
  void lineCacheSumsAsTheParserDoes_data();
  void lineCacheSumsAsTheParserDoes();
  void lineCacheStaysInItsBudget();

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

namespace {
// One line through parse_statsd_packet; nullopt when it parsed.
std::optional<StatsdLineError> parse_line(const std::string& line, std::vector<StatsdSample>& out,
                                          StatsdDialect dialect = StatsdDialect::kDogStatsd,
                                          StatsdPacketCounts* counts_out = nullptr,
                                          int64_t now_s = 0) {
  StatsdParseOptions o;
  o.dialect = dialect;
  o.now_s = now_s;
  o.max_age_s = 2 * 365 * 86400;
  o.max_future_s = 600;
  std::vector<StatsdLineError> errors;
  StatsdPacketCounts c = parse_statsd_packet(line, o, out, errors);
  if (counts_out) *counts_out = c;
  if (errors.empty()) return std::nullopt;
  StatsdLineError e = errors.front();
  e.line = {};
  return e;
}
StatsdDialect dialect_of(const QString& s) {
  return s == "etsy" ? StatsdDialect::kEtsy : StatsdDialect::kDogStatsd;
}
}  // namespace

void TestStatsd::mustParse_data() {
  QTest::addColumn<QByteArray>("line");
  QTest::addColumn<QString>("dialect");
  QTest::addColumn<QString>("metric");
  QTest::addColumn<QString>("tags");  // canonical "k=v,k2=v2" as stored (mapped keys)
  QTest::addColumn<QString>("type");
  QTest::addColumn<QList<double>>("values");
  QTest::addColumn<quint64>("count");  // distribution observations per value
  QTest::addColumn<bool>("delta");
  QTest::addColumn<QByteArray>("member");
  QTest::addColumn<qint64>("timestamp");

  using L = QList<double>;
  auto row = [](const char* name, QByteArray line, const char* metric, const char* tags,
                const char* type, L values, quint64 count = 1, bool delta = false,
                const char* member = "", qint64 ts = 0, const char* dialect = "dogstatsd") {
    QTest::newRow(name) << line << QString(dialect) << QString::fromUtf8(metric)
                        << QString::fromUtf8(tags) << QString(type) << values << count << delta
                        << QByteArray(member) << ts;
  };
  // Counters
  row("counter", "api.errors:1|c", "api.errors", "", "counter", {1});
  row("counter float", "bytes.sent:2.5|c", "bytes.sent", "", "counter", {2.5});
  row("counter negative", "queue.depth:-3|c", "queue.depth", "", "counter", {-3});
  row("counter plus sign", "a:+4|c", "a", "", "counter", {4});
  row("counter zero", "a:0|c", "a", "", "counter", {0});
  row("counter exponent", "a:1e3|c", "a", "", "counter", {1000});
  row("counter leading dot", "a:.5|c", "a", "", "counter", {0.5});
  row("counter rate scales", "a:1|c|@0.1", "a", "", "counter", {10});
  row("counter rate half", "a:3|c|@0.5", "a", "", "counter", {6});
  row("counter rate 1", "a:3|c|@1", "a", "", "counter", {3});
  row("counter rate above one divides", "a:3|c|@1.5", "a", "", "counter", {2});
  row("counter |T not scaled (dogstatsd)", "a:3|c|@0.5|T1700000000", "a", "", "counter", {3}, 1,
      false, "", 1700000000);
  row("counter |T scaled (etsy)", "a:3|c|@0.5|T1700000000", "a", "", "counter", {6}, 1, false, "",
      1700000000, "etsy");
  row("name with dash underscore", "_svc-1.req_total:1|c", "_svc-1.req_total", "", "counter", {1});
  // Names Tally's rules do not allow are mapped (name_mapping.h), not rejected
  row("name with space mapped", "api errors:1|c", "U__api_20_errors", "", "counter", {1});
  row("name with slash mapped", "api/errors:1|c", "U__api_2f_errors", "", "counter", {1});
  row("name digit first mapped", "1api:1|c", "U___31_api", "", "counter", {1});
  row("name non-ascii mapped", "caf\xc3\xa9:1|c", "U__caf_e9_", "", "counter", {1});
  row("name with marker escaped", "U__x:1|c", "U__U____x", "", "counter", {1});
  // Gauges: absolute in dogstatsd, a signed value is a delta in etsy
  row("gauge set", "cpu.load:0.75|g", "cpu.load", "", "gauge", {0.75});
  row("gauge plus is absolute", "conns:+5|g", "conns", "", "gauge", {5});
  row("gauge minus is absolute", "conns:-2|g", "conns", "", "gauge", {-2});
  row("etsy gauge delta plus", "conns:+5|g", "conns", "", "gauge", {5}, 1, true, "", 0, "etsy");
  row("etsy gauge delta minus", "conns:-2|g", "conns", "", "gauge", {-2}, 1, true, "", 0, "etsy");
  row("etsy gauge set", "conns:7|g", "conns", "", "gauge", {7}, 1, false, "", 0, "etsy");
  row("gauge rate ignored", "conns:7|g|@0.5", "conns", "", "gauge", {7});
  // Distributions: the Agent counts trunc(1/rate); etsy round(1/rate)
  row("timer", "api.latency:320|ms", "api.latency", "", "distribution", {320});
  row("timer sampled", "api.latency:320|ms|@0.25", "api.latency", "", "distribution", {320}, 4);
  row("histogram @0.21 counts 4", "x:666|h|@0.21", "x", "", "distribution", {666}, 4);
  row("etsy histogram @0.21 counts 5", "x:666|h|@0.21", "x", "", "distribution", {666}, 5, false,
      "", 0, "etsy");
  row("distribution @0.3 counts 3", "x:1|d|@0.3", "x", "", "distribution", {1}, 3);
  row("distribution @1.5 counts 1", "x:1|d|@1.5", "x", "", "distribution", {1}, 1);
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
  row("tag spaces kept as the Agent keeps them", "a:1|c|#env: prod", "a", "env= prod", "counter",
      {1});
  row("empty tag elements skipped", "a:1|c|#env:prod,,region:eu,", "a", "env=prod,region=eu",
      "counter", {1});
  row("empty tag section", "a:1|c|#", "a", "", "counter", {1});
  row("tag key slash mapped", "a:1|c|#app.kubernetes.io/name:web", "a",
      "U__app.kubernetes.io_2f_name=web", "counter", {1});
  row("tag key digit first mapped", "a:1|c|#2xx:yes", "a", "U___32_xx=yes", "counter", {1});
  row("tag empty key mapped", "a:1|c|#:v", "a", "U__=v", "counter", {1});
  row("tag several values joined", "a:1|c|#env:b,env:a", "a", "env=a,b", "counter", {1});
  row("tag repeated once", "a:1|c|#env:a,env:a", "a", "env=a", "counter", {1});
  row("tag host empty dropped", "a:1|c|#host:,env:x", "a", "env=x", "counter", {1});
  row("origin tags dropped", "a:1|c|#dd.internal.entity_id:p1,dd.internal.card:high,k:v", "a",
      "k=v", "counter", {1});
  row("rate then tags", "a:1|c|@0.5|#k:v", "a", "k=v", "counter", {2});
  row("tags then rate", "a:1|c|#k:v|@0.5", "a", "k=v", "counter", {2});
  row("rate twice: last wins", "a:1|c|@0.5|@0.25", "a", "", "counter", {4});
  row("tags twice: last wins", "a:1|c|#a:1|#b:2", "a", "b=2", "counter", {1});
  // DogStatsD extensions and forward compatibility
  row("container id dropped",
      "a:1|c|#k:v|c:83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0c918c8d93df19a9de6f3fe1d", "a", "k=v",
      "counter", {1});
  row("timestamp", "a:1|c|T1700000000", "a", "", "counter", {1}, 1, false, "", 1700000000);
  row("origin fields dropped", "a:1|c|e:it-false,cn-x|card:low", "a", "", "counter", {1});
  row("unknown fields ignored", "a:1|c|f:x|f2:y|!x|X:1", "a", "", "counter", {1});
  row("empty field ignored", "a:1|c||#k:v", "a", "k=v", "counter", {1});
  row("trailing pipe ignored", "a:1|c|", "a", "", "counter", {1});
  // DogStatsD 1.1 multi-value
  row("multi-value histogram", "lat:1:2:3|h|#k:v", "lat", "k=v", "distribution", {1, 2, 3});
  row("multi-value empty items skipped", "lat:1::2:|h", "lat", "", "distribution", {1, 2});
  row("multi-value counter scaled", "a:1:2|c|@0.5", "a", "", "counter", {2, 4});
  row("multi-value gauge", "g:+1:-2|g", "g", "", "gauge", {1, -2});
  row("etsy multi-value gauge deltas", "g:+1:-2|g", "g", "", "gauge", {1, -2}, 1, true, "", 0,
      "etsy");
  // Limits
  row("200-byte name", QByteArray(200, 'n') + ":1|c", std::string(200, 'n').c_str(), "", "counter",
      {1});
}

void TestStatsd::mustParse() {
  QFETCH(QByteArray, line);
  QFETCH(QString, dialect);
  QFETCH(QString, metric);
  QFETCH(QString, tags);
  QFETCH(QString, type);
  QFETCH(QList<double>, values);
  QFETCH(quint64, count);
  QFETCH(bool, delta);
  QFETCH(QByteArray, member);
  QFETCH(qint64, timestamp);

  std::vector<StatsdSample> out;
  auto err = parse_line(sv(line), out, dialect_of(dialect));
  QVERIFY2(!err, err ? err->message.c_str() : "");
  QCOMPARE(out.size(), static_cast<size_t>(values.size()));
  for (qsizetype i = 0; i < values.size(); ++i) {
    const StatsdSample& s = out[static_cast<size_t>(i)];
    QCOMPARE(QString::fromStdString(s.metric), metric);
    QCOMPARE(QString::fromStdString(tags_to_string(s.tags)), tags);
    QCOMPARE(QString(statsd_type_name(s.type)), type);
    QCOMPARE(s.value, values[i]);
    QCOMPARE(static_cast<quint64>(s.count), count);
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
  row("no type", "api.errors:1", "syntax", "no '|'");
  row("bare name", "api.errors", "syntax", "no '|'");
  row("empty name", ":1|c", "syntax", "empty metric name");
  row("empty value", "a:|c", "syntax", "empty value");
  row("empty set member", "a:|s", "syntax", "empty value");
  row("only separators", "a:::|h", "syntax", "no value");
  row("name 250 bytes", QByteArray(250, 'n') + ":1|c", "metric_name", "limit");
  row("name mapped beyond 200", QByteArray(100, ' ') + ":1|c", "metric_name", "limit");
  row("name not utf8", "a\xff:1|c", "metric_name", "UTF-8");
  row("word value", "a:abc|c", "value", "not a finite number");
  row("nan", "a:nan|g", "value", "not a finite number");
  row("inf", "a:inf|ms", "value", "not a finite number");
  row("double sign", "a:+-1|g", "value", "not a finite number");
  row("trailing junk", "a:1x|c", "value", "not a finite number");
  row("space in value", "a:1 |c", "value", "not a finite number");
  row("hex", "a:0x10|c", "value", "not a finite number");
  row("huge", "a:1e400|c", "value", "not a finite number");
  row("bad item in a list", "a:1:2:oops|h", "value", "not a finite number");
  row("counter overflows once scaled", "a:1e308|c|@0.01", "value", "not finite");
  row("histogram sum overflows once scaled", "a:1e308|h|@0.01", "value", "not finite");
  row("unknown type", "a:1|x", "type", "unknown type");
  row("empty type", "a:1|", "type", "unknown type");
  row("type case", "a:1|C", "type", "unknown type");
  row("sketch type", "a:CKnv|S", "type", "unknown type");
  row("rate zero", "a:1|c|@0", "sample_rate", ">= 1e-9");
  row("rate negative", "a:1|c|@-0.5", "sample_rate", ">= 1e-9");
  row("rate word", "a:1|c|@x", "sample_rate", ">= 1e-9");
  row("rate tiny", "a:1|c|@1e-300", "sample_rate", ">= 1e-9");
  row("rate empty", "a:1|c|@", "sample_rate", ">= 1e-9");
  row("timestamp not a number", "a:1|c|Tabc", "timestamp", "positive integer");
  row("timestamp empty", "a:1|c|T", "timestamp", "positive integer");
  row("timestamp zero", "a:1|c|T0", "timestamp", "positive integer");
  row("timestamp negative", "a:1|c|T-102348932", "timestamp", "positive integer");
  row("timestamp junk", "a:1|c|T17x", "timestamp", "positive integer");
  row("timestamp beyond int64", "a:1|c|T92233720368547758070", "timestamp", "positive integer");
  row("event lengths do not match", "_e{9,4}:title|text", "event", "malformed event");
  row("event without lengths", "_e{}:title|text", "event", "malformed event");
  row("service check bad status", "_sc|redis.up|x", "service_check", "not 0..3");
  row("service check no status", "_sc|redis.up", "service_check", "malformed service check");
}

void TestStatsd::mustNotParse() {
  QFETCH(QByteArray, line);
  QFETCH(QString, reason);
  QFETCH(QString, says);
  std::vector<StatsdSample> out;
  auto err = parse_line(sv(line), out);
  QVERIFY2(err.has_value(), "line parsed but must not");
  QCOMPARE(QString(statsd_reject_name(err->reason)), reason);
  QVERIFY2(QString::fromStdString(err->message).contains(says), err->message.c_str());
  QVERIFY(out.empty());
}

void TestStatsd::timestampsOutsideTheLimitsAreRejected_data() {
  QTest::addColumn<QByteArray>("line");
  QTest::addColumn<QString>("reason");  // empty: accepted
  const qint64 now = kT0Ms / 1000;
  auto t = [](qint64 ts) { return "a:1|c|T" + QByteArray::number(ts); };
  QTest::newRow("now") << t(now) << "";
  QTest::newRow("two years ago") << t(now - 2 * 365 * 86400) << "";
  QTest::newRow("older") << t(now - 2 * 365 * 86400 - 1) << "timestamp_too_old";
  QTest::newRow("ten minutes ahead") << t(now + 600) << "";
  QTest::newRow("further ahead") << t(now + 601) << "timestamp_too_new";
  QTest::newRow("int64 max") << QByteArray("a:1|c|T9223372036854775807") << "timestamp_too_new";
  QTest::newRow("one") << QByteArray("a:1|c|T1") << "timestamp_too_old";
}

void TestStatsd::timestampsOutsideTheLimitsAreRejected() {
  QFETCH(QByteArray, line);
  QFETCH(QString, reason);
  std::vector<StatsdSample> out;
  auto err = parse_line(sv(line), out, StatsdDialect::kDogStatsd, nullptr, kT0Ms / 1000);
  QCOMPARE(QString(err ? statsd_reject_name(err->reason) : ""), reason);
  QCOMPARE(out.size(), size_t(reason.isEmpty() ? 1 : 0));
}

void TestStatsd::tagsDroppedAreCountedAndTheLineKept_data() {
  QTest::addColumn<QByteArray>("line");
  QTest::addColumn<QString>("tags");
  QTest::addColumn<int>("dropped");
  QByteArray many = "a:1|c|#";
  for (int i = 0; i < 34; ++i) many += "k" + QByteArray::number(100 + i) + ":v,";
  QString kept;
  for (int i = 0; i < 32; ++i)
    kept += QString(i ? "," : "") + "k" + QString::number(100 + i) + "=v";
  QTest::newRow("34 tags: the first 32 kept") << many << kept << 2;
  QTest::newRow("empty value") << QByteArray("a:1|c|#env:,k:v") << "k=v" << 1;
  QTest::newRow("value 201 bytes") << "a:1|c|#k:v,big:" + QByteArray(201, 'v') << "k=v" << 1;
  QTest::newRow("value with a control char") << QByteArray("a:1|c|#k:v,c:a\x01z") << "k=v" << 1;
  QTest::newRow("value not utf8") << QByteArray("a:1|c|#k:v,u:\xff") << "k=v" << 1;
  QTest::newRow("key 101 bytes") << "a:1|c|#k:v," + QByteArray(101, 'k') + ":v"
                                 << "k=v" << 1;
  QTest::newRow("key not utf8") << QByteArray("a:1|c|#k:v,\xff:v") << "k=v" << 1;
  QTest::newRow("joined values beyond 200 bytes")
      << "a:1|c|#k:v,j:" + QByteArray(150, 'a') + ",j:" + QByteArray(150, 'b') << "k=v" << 2;
  QTest::newRow("host empty is not a drop") << QByteArray("a:1|c|#host:,k:v") << "k=v" << 0;
  QTest::newRow("origin is not a drop")
      << QByteArray("a:1|c|#dd.internal.entity_id:x,k:v") << "k=v" << 0;
}

void TestStatsd::tagsDroppedAreCountedAndTheLineKept() {
  QFETCH(QByteArray, line);
  QFETCH(QString, tags);
  QFETCH(int, dropped);
  std::vector<StatsdSample> out;
  StatsdPacketCounts counts;
  auto err = parse_line(sv(line), out, StatsdDialect::kDogStatsd, &counts);
  QVERIFY2(!err, err ? err->message.c_str() : "");
  QCOMPARE(out.size(), size_t{1});
  QCOMPARE(QString::fromStdString(tags_to_string(out[0].tags)), tags);
  QCOMPARE(static_cast<int>(counts.tags_dropped), dropped);
  QCOMPARE(counts.lines_ok, size_t{1});
}

void TestStatsd::budgetsPerLineAndDatagram() {
  // values per line: 1024 taken, 1025 rejected whole
  std::string ok = "a:1";
  for (int i = 1; i < 1024; ++i) ok += ":1";
  std::vector<StatsdSample> out;
  QVERIFY(!parse_line(ok + "|h", out));
  QCOMPARE(out.size(), size_t{1024});
  out.clear();
  auto err = parse_line(ok + ":1|h", out);
  QVERIFY(err);
  QCOMPARE(err->reason, StatsdReject::kValuesPerLine);
  QVERIFY(out.empty());
  // decoded bytes per datagram: lines past the budget are rejected, the ones before it kept
  std::string tags = "|#";
  for (int i = 0; i < 32; ++i)
    tags += (i ? ",k" : "k") + std::to_string(i) + ":" + std::string(190, 'v');
  std::string packet;
  for (int i = 0; i < 20; ++i) packet += "m:1:1:1:1:1:1:1:1|h" + tags + "\n";
  StatsdParseOptions o;
  o.max_decoded_bytes = 512 * 1024;
  std::vector<StatsdLineError> errors;
  std::vector<StatsdSample> samples;
  auto c = parse_statsd_packet(packet, o, samples, errors);
  // each sample: 32 tags of ~200 bytes = ~8 KB; 8 samples a line = ~64 KB: 7 lines fit in 512 KB
  QVERIFY(c.lines_ok >= 6 && c.lines_ok <= 8);
  QCOMPARE(c.lines_ok + c.lines_rejected, size_t{20});
  QCOMPARE(samples.size(), c.lines_ok * 8);
  for (const auto& e : errors) QCOMPARE(e.reason, StatsdReject::kDatagramBudget);
}

void TestStatsd::eventsAndServiceChecksAreCountedNotRejected() {
  const std::string packet =
      "_e{5,4}:title|text|#k:v\n_sc|redis.up|0|#k:v\n_e{2,2}:ab|cd|t:error\n_sc|x|3|m:down\na:1|c";
  std::vector<StatsdSample> samples;
  std::vector<StatsdLineError> errors;
  auto c = parse_statsd_packet(packet, {}, samples, errors);
  QCOMPARE(c.events, size_t{2});
  QCOMPARE(c.service_checks, size_t{2});
  QCOMPARE(c.lines_ok, size_t{1});
  QCOMPARE(c.lines_rejected, size_t{0});
  QVERIFY(errors.empty());
  QCOMPARE(samples.size(), size_t{1});
}

void TestStatsd::eventFields_data() {
  QTest::addColumn<QByteArray>("line");
  QTest::addColumn<qint64>("time_ms");  // 0: no d: (the listener stamps the receive time)
  QTest::addColumn<QString>("title");
  QTest::addColumn<QString>("text");
  QTest::addColumn<QString>("tags");  // canonical "k=v,k2=v2"
  auto row = [](const char* name, QByteArray line, qint64 t, const char* title, const char* text,
                const char* tags) {
    QTest::newRow(name) << line << t << QString::fromUtf8(title) << QString::fromUtf8(text)
                        << QString::fromUtf8(tags);
  };
  row("minimal", "_e{10,9}:test title|test text", 0, "test title", "test text", "");
  row("empty text", "_e{10,0}:test title|", 0, "test title", "", "");
  // The Agent's parse_events_test.go: "\\n" is a newline in the text, a lone '\\' stays.
  row("multiline text", "_e{10,24}:test title|test\\line1\\nline2\\nline3", 0, "test title",
      "test\\line1\nline2\nline3", "");
  row("escaped newline in the title is a space", "_e{6,1}:a\\nb c|x", 0, "a b c", "x", "");
  row("pipe in the title", "_e{10,24}:test|title|test\\line1\\nline2\\nline3", 0, "test|title",
      "test\\line1\nline2\nline3", "");
  row("every field",
      "_e{10,9}:test title|test text|t:warning|d:12345|p:low|h:some.host|k:aggKey|s:source "
      "test|#tag1,tag2:test",
      12345000, "test title", "test text",
      "aggregation_key=aggKey,alert_type=warning,host=some.host,priority=low,source_type_name="
      "source test,tag1=true,tag2=test");
  row("bad d: p: t: are ignored", "_e{5,4}:title|text|d:abc|p:urgent|t:test|x:1234", 0, "title",
      "text", "");
  row("h: wins over a host tag", "_e{1,1}:a|b|#host:tagged,env:prod|h:field", 0, "a", "b",
      "env=prod,host=field");
  row("tags mapped as on metric lines", "_e{1,1}:a|b|#Service Name:web,empty:", 0, "a", "b",
      "U__Service_20_Name=web");
}

void TestStatsd::eventFields() {
  QFETCH(QByteArray, line);
  QFETCH(qint64, time_ms);
  QFETCH(QString, title);
  QFETCH(QString, text);
  QFETCH(QString, tags);
  std::vector<StatsdSample> samples;
  std::vector<StatsdLineError> errors;
  std::vector<StatsdEvent> events;
  auto c = parse_statsd_packet(line.toStdString(), {}, samples, errors, nullptr, &events);
  QVERIFY2(errors.empty(), errors.empty() ? "" : errors[0].message.c_str());
  QCOMPARE(c.events, size_t{1});
  QCOMPARE(events.size(), size_t{1});
  QCOMPARE(events[0].time_ms, int64_t{time_ms});
  QCOMPARE(QString::fromStdString(events[0].title), title);
  QCOMPARE(QString::fromStdString(events[0].text), text);
  QStringList got;
  for (const Tag& t : events[0].tags) got << QString::fromStdString(t.key + "=" + t.value);
  QCOMPARE(got.join(','), tags);
  // Without the events vector the same line is only counted.
  std::vector<StatsdSample> none;
  QCOMPARE(parse_statsd_packet(line.toStdString(), {}, none, errors).events, size_t{1});
}

// An event may carry several "|#" sections; together they keep at most kMaxTags distinct keys,
// as a metric line's one section does (the store refuses an event with more).
void TestStatsd::eventTagsAreCappedAcrossTagSections() {
  std::string first, second;
  for (int i = 0; i < 20; ++i) first += (i ? ",a" : "a") + std::to_string(i) + ":v";
  for (int i = 0; i < 20; ++i) second += (i ? ",b" : "b") + std::to_string(i) + ":v";
  const std::string line = "_e{1,1}:t|x|#" + first + "|#" + second + "|h:web1";
  std::vector<StatsdSample> samples;
  std::vector<StatsdLineError> errors;
  std::vector<StatsdEvent> events;
  auto c = parse_statsd_packet(line, {}, samples, errors, nullptr, &events);
  QCOMPARE(c.events, size_t{1});
  QCOMPARE(events.size(), size_t{1});
  QCOMPARE(events[0].tags.size(), kMaxTags);
  QVERIFY(validate_tags(events[0].tags));
  QCOMPARE(c.tags_dropped, size_t{40 + 1 - kMaxTags});  // 8 b-tags over, and the host field
}

void TestStatsd::packetWithBadLineInTheMiddle() {
  const std::string packet = "a:1|c|#k:v\nbad line\nb:2|g\n_e{1,1}:t|xy\nc:3|ms\n";
  std::vector<StatsdSample> samples;
  std::vector<StatsdLineError> errors;
  auto counts = parse_statsd_packet(packet, {}, samples, errors);
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
  auto counts = parse_statsd_packet(sv(packet), {}, samples, errors);
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
    parse_statsd_packet(packet, {}, samples, errors);
    QVERIFY(errors.empty());
    double total = 0;
    for (const auto& s : samples) total += s.value;
    QCOMPARE(total, c.expected);
  }
}

void TestStatsd::sampledDistributionWeights_data() {
  QTest::addColumn<QString>("dialect");
  QTest::addColumn<QByteArray>("line");
  QTest::addColumn<quint64>("count");
  QTest::addColumn<double>("sum");  // what the line adds to the distribution's sum
  QTest::newRow("unsampled") << "dogstatsd" << QByteArray("x:666|h") << quint64(1) << 666.0;
  QTest::newRow("agent @0.21") << "dogstatsd" << QByteArray("x:666|h|@0.21") << quint64(4)
                               << 666 / 0.21;
  QTest::newRow("agent @0.5") << "dogstatsd" << QByteArray("x:10|d|@0.5") << quint64(2) << 20.0;
  QTest::newRow("agent @0.3") << "dogstatsd" << QByteArray("x:10|ms|@0.3") << quint64(3)
                              << 10 / 0.3;
  QTest::newRow("agent @0.75 at least one")
      << "dogstatsd" << QByteArray("x:10|d|@0.75") << quint64(1) << 10 / 0.75;
  // 1/1e-9 is 999999999.99999988 in binary floating point: truncated as the Agent truncates
  QTest::newRow("agent @1e-9") << "dogstatsd" << QByteArray("x:1|d|@1e-9") << quint64(999'999'999)
                               << 1 / 1e-9;
  QTest::newRow("etsy @0.21 rounds")
      << "etsy" << QByteArray("x:666|h|@0.21") << quint64(5) << 3330.0;
  QTest::newRow("etsy @0.4 rounds up") << "etsy" << QByteArray("x:1|ms|@0.4") << quint64(3) << 3.0;
}

void TestStatsd::sampledDistributionWeights() {
  QFETCH(QString, dialect);
  QFETCH(QByteArray, line);
  QFETCH(quint64, count);
  QFETCH(double, sum);
  std::vector<StatsdSample> out;
  QVERIFY(!parse_line(sv(line), out, dialect_of(dialect)));
  QCOMPARE(out.size(), size_t{1});
  QCOMPARE(static_cast<quint64>(out[0].count), count);
  QCOMPARE(out[0].value * out[0].sum_weight, sum);
}

void TestStatsd::failedMultiValueLineAppendsNothing() {
  std::vector<StatsdSample> out;
  QVERIFY(!parse_line("x:9|c", out));
  QVERIFY(parse_line("a:1:2:oops|h", out).has_value());
  QCOMPARE(out.size(), size_t{1});
  QCOMPARE(out[0].metric, std::string("x"));
}

// The line cache reads a line it has seen as the full parser would: for each packet, parsed
// four times with and without a cache, the same lines are good and bad for the same reasons, the
// same counts come out, and every series sums to the same total over the same number of lines.
void TestStatsd::lineCacheSumsAsTheParserDoes_data() {
  QTest::addColumn<QByteArray>("packet");
  QTest::addColumn<QString>("dialect");
  QTest::addColumn<int>("maxDecodedBytes");  // 0 = the default
  QTest::addColumn<int>("cached");           // lines of the four rounds the cache counts
  QTest::newRow("tagged counter") << QByteArray("api.errors:1|c|#region:eu,status:500")
                                  << "dogstatsd" << 0 << 3;
  QTest::newRow("sampled, dogstatsd") << QByteArray("x:1|c|@0.5|#a:b") << "dogstatsd" << 0 << 3;
  QTest::newRow("sampled, etsy") << QByteArray("x:3|c|@0.1") << "etsy" << 0 << 3;
  QTest::newRow("tags in another order are another key")
      << QByteArray("x:1|c|#a:1,b:2\nx:1|c|#b:2,a:1") << "dogstatsd" << 0 << 6;
  QTest::newRow("mapped name and tag key")
      << QByteArray("my metric!:2|c|#Bad Key:v") << "dogstatsd" << 0 << 3;
  QTest::newRow("dropped tag") << QByteArray("a:1|c|#k:v,u:\xff") << "dogstatsd" << 0 << 3;
  QTest::newRow("signs, decimals and exponents share a key")
      << QByteArray("x:+3|c\nx:-2.5|c\nx:1e3|c\nx:.5|c") << "dogstatsd" << 0 << 15;
  QTest::newRow("bad values after a good one")
      << QByteArray("x:1|c|#a:b\nx:abc|c|#a:b\nx:1e400|c|#a:b\nx:nan|c|#a:b\nx:|c|#a:b")
      << "dogstatsd" << 0 << 3;
  QTest::newRow("a value too large to sum here")
      << QByteArray("x:1e300|c\nx:1|c") << "dogstatsd" << 0 << 4;
  QTest::newRow("timestamped lines are not cached")
      << QByteArray("x:1|c|T1700000000") << "dogstatsd" << 0 << 0;
  QTest::newRow("several values are not cached") << QByteArray("x:1:2|c") << "dogstatsd" << 0 << 0;
  QTest::newRow("gauges, sets and distributions are not cached")
      << QByteArray("g:1|g\nh:2|h\nd:3|d\nt:4|ms\ns:u1|s") << "etsy" << 0 << 0;
  QTest::newRow("crlf and empty lines")
      << QByteArray("x:1|c\r\n\r\nx:2|c\n") << "dogstatsd" << 0 << 7;
  QTest::newRow("events and checks between")
      << QByteArray("x:1|c\n_e{1,1}:a|b\n_sc|check|0\nx:1|c") << "dogstatsd" << 0 << 7;
  QByteArray many;
  for (int i = 0; i < 40; ++i) many += "budget.line:1|c|#k:v\n";
  QTest::newRow("the datagram budget holds for cached lines")
      << many << "dogstatsd" << 2000 << 8 + 3 * 9;  // 9 lines fit in 2,000 bytes
}

void TestStatsd::lineCacheSumsAsTheParserDoes() {
  QFETCH(QByteArray, packet);
  QFETCH(QString, dialect);
  QFETCH(int, maxDecodedBytes);
  QFETCH(int, cached);
  StatsdParseOptions o;
  o.dialect = dialect_of(dialect);
  o.now_s = kT0Ms / 1000;
  o.max_age_s = 2 * 365 * 86400;
  o.max_future_s = 600;
  if (maxDecodedBytes) o.max_decoded_bytes = static_cast<size_t>(maxDecodedBytes);

  struct Outcome {
    StatsdPacketCounts counts;
    std::vector<std::pair<size_t, StatsdReject>> errors;
    std::map<std::string, std::pair<double, uint64_t>> counters;  // key -> (sum, lines)
    std::vector<StatsdSample> others;
  };
  auto run = [&](StatsdLineCache* cache) {
    Outcome out;
    std::vector<StatsdSample> samples;
    for (int round = 0; round < 4; ++round) {
      std::vector<StatsdLineError> errors;
      StatsdPacketCounts c = parse_statsd_packet(sv(packet), o, samples, errors, cache);
      out.counts.lines_ok += c.lines_ok;
      out.counts.lines_rejected += c.lines_rejected;
      out.counts.events += c.events;
      out.counts.service_checks += c.service_checks;
      out.counts.tags_dropped += c.tags_dropped;
      out.counts.names_mapped += c.names_mapped;
      out.counts.cached += c.cached;
      for (const auto& e : errors) out.errors.emplace_back(e.line_number, e.reason);
    }
    if (cache) cache->take(o.now_s, samples);
    for (auto& s : samples) {
      if (s.type == StatsdType::kCounter) {
        auto& [sum, lines] = out.counters[s.metric + "{" + tags_to_string(s.tags) + "}"];
        sum += s.value;
        lines += s.count;
      } else {
        out.others.push_back(std::move(s));
      }
    }
    return out;
  };
  const Outcome want = run(nullptr);
  StatsdLineCache cache;
  const Outcome got = run(&cache);
  QCOMPARE(got.counts.cached, size_t(cached));
  QCOMPARE(want.counts.cached, size_t{0});
  QCOMPARE(got.counts.lines_ok, want.counts.lines_ok);
  QCOMPARE(got.counts.lines_rejected, want.counts.lines_rejected);
  QCOMPARE(got.counts.events, want.counts.events);
  QCOMPARE(got.counts.service_checks, want.counts.service_checks);
  QCOMPARE(got.counts.tags_dropped, want.counts.tags_dropped);
  QCOMPARE(got.counts.names_mapped, want.counts.names_mapped);
  QCOMPARE(got.errors, want.errors);
  QCOMPARE(got.counters, want.counters);
  QCOMPARE(got.others, want.others);
  QVERIFY(!cache.has_counts());  // take() handed everything out
}

// A cache never holds more than its byte budget; when a key does not fit it is cleared at the
// next take(), and the totals stay exact throughout.
void TestStatsd::lineCacheStaysInItsBudget() {
  StatsdLineCache cache(8 * 1024);
  StatsdParseOptions o;
  std::vector<StatsdSample> samples;
  std::vector<StatsdLineError> errors;
  uint64_t lines = 0;
  size_t most = 0;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 500; ++i) {
      const std::string line = "budget.m:2|c|#series:s" + std::to_string(i);
      QCOMPARE(parse_statsd_packet(line, o, samples, errors, &cache).lines_ok, size_t{1});
      ++lines;
      QVERIFY(cache.bytes() <= 8 * 1024);
      most = std::max(most, cache.size());
    }
    cache.take(1, samples);
    QCOMPARE(cache.size(), size_t{0});  // it filled up, so take() started afresh
  }
  QVERIFY(most > 10);
  QVERIFY(errors.empty());
  double sum = 0;
  uint64_t counted = 0;
  for (const auto& s : samples) {
    sum += s.value;
    counted += s.count;
  }
  QCOMPARE(counted, lines);
  QCOMPARE(sum, 2.0 * static_cast<double>(lines));
}

// ---------------------------------------------------------------------------------------------
// Listener over real sockets

void TestStatsd::udpSumsAreExact() {
  Collected got;
  ManualClock clock(kT0Ms + 250);
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  opt.udp_dialect = StatsdDialect::kEtsy;  // "conns:+1|g" is a delta
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
  QTRY_COMPARE(got.lines(), uint64_t{200 * 10});
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
    if (s.metric == "lat") lat_weight += s.count;
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
      sender.send("u:a|s|T1699990000\nu:b|s|T1699990000\nu:a|s|T1699990000\nu:c|s|T1699990000"));
  QTRY_COMPARE(listener.counters().lines_ok, uint64_t{4});
  listener.stop();
  QCOMPARE(listener.counters().set_members_dropped, uint64_t{1});
  QCOMPARE(listener.counters().sets_emitted, uint64_t{1});
  auto samples = got.samples();
  QCOMPARE(samples.size(), size_t{1});
  QCOMPARE(samples[0].type, StatsdType::kGauge);
  QCOMPARE(samples[0].value, 2.0);
  QCOMPARE(samples[0].timestamp_s, int64_t{1699990000});
}

void TestStatsd::gaugeDeltasAreResolvedPerSeries() {
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  opt.udp_dialect = StatsdDialect::kEtsy;
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
  opt.udp_dialect = StatsdDialect::kEtsy;
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

  QVERIFY(sender.send("ok:1|c\n:1|c\n_sc|x|9\na:1|zz\n"));
  QVERIFY(sender.send("a:\"q\"|c"));
  QTRY_COMPARE(listener.counters().lines_rejected_total(), uint64_t{4});
  clock.advance_ms(1000);
  QVERIFY(sender.send("a:1|c|@x"));
  QTRY_COMPARE(listener.counters().lines_rejected_total(), uint64_t{5});
  listener.stop();

  StatsdCounters c = listener.counters();
  QCOMPARE(c.rejected(StatsdReject::kSyntax), uint64_t{1});
  QCOMPARE(c.rejected(StatsdReject::kServiceCheck), uint64_t{1});
  QCOMPARE(c.rejected(StatsdReject::kType), uint64_t{1});
  QCOMPARE(c.rejected(StatsdReject::kValue), uint64_t{1});
  QCOMPARE(c.rejected(StatsdReject::kSampleRate), uint64_t{1});
  QCOMPARE(c.lines_ok, uint64_t{1});

  QStringList rejects;
  for (const QString& l : QString::fromStdString(log.str()).split('\n'))
    if (l.contains("event=statsd_reject")) rejects << l;
  QCOMPARE(rejects.size(), 2);  // one per second, however many lines were bad
  QCOMPARE(rejects[0], QString("level=warning event=statsd_reject reason=syntax line_number=2 "
                               "detail=\"empty metric name\" line=\":1|c\" suppressed=0"));
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
