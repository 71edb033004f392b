// DogStatsD conformance: lines from the DogStatsD protocol and from the Datadog Agent's own
// parser tests (comp/dogstatsd/server: parse_metrics_test.go, parse_test.go,
// parse_events_test.go, parse_service_checks_test.go; the test function is named per group),
// each sent over real UDP to a real StatsdListener in the dogstatsd dialect, and what it hands
// on for storage read back and compared with what the Agent does with the line.
//
// A result is written in Tally's terms, one entry per stored series, sorted:
//   c name{k=v,...} SUM          counter: the sum of the increments
//   g name{...} LAST             gauge: the last value (a set: its unique members)
//   d name{...} n=COUNT sum=SUM  distribution (h, ms, d): observations and their sum
//   "... @TS" when the line's |T put it in another second than the receive time;
//   plus "event", "service_check", "rejected", "tags_dropped=N" for what is counted.
// Names and tag keys are shown unmapped (name_mapping.h: mapping is reversible), so they read
// as the client sent them. A Datadog flag tag `t` is Tally's `t=true`; several values of one
// key are one tag with the values joined by ',' (docs/format/statsd.md).
//
// `agent` is what the Agent does; `tally` is set only where Tally deliberately differs (each one
// listed with its reason in docs/format/statsd.md, "Where Tally differs from the Agent").
// Every row must answer exactly its expected result; the score (rows where Tally answers as the
// Agent) is printed and must be at least 95 %.
#include <QtTest>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <mutex>

#include "ingest/statsd_listener.h"
#include "tally/common/name_mapping.h"

using namespace tally;
using namespace tally::collector;

namespace {

// The listener's clock: 2023-11-14, so the Agent's own |T1657100430 (2022-07-06) is within
// Tally's default two years of retention.
constexpr int64_t kNowMs = 1'700'000'000'000;

class Collected {
 public:
  StatsdSink sink() {
    return [this](std::vector<StatsdSample>&& batch) {
      std::lock_guard lock(mu_);
      for (auto& s : batch) samples_.push_back(std::move(s));
    };
  }
  std::vector<StatsdSample> samples() const {
    std::lock_guard lock(mu_);
    return samples_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<StatsdSample> samples_;
};

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string unmapped(const std::string& s) {
  auto u = unmap_name(s);
  return u ? *u : "<bad escape " + s + ">";
}

// What the listener handed on, aggregated per series the way the collector stores it.
std::string describe(const std::vector<StatsdSample>& samples, const StatsdCounters& c) {
  struct Agg {
    char kind = 'c';
    double sum = 0, last = 0;
    uint64_t n = 0;
  };
  std::map<std::string, Agg> series;
  for (const StatsdSample& s : samples) {
    std::string key = unmapped(s.metric) + "{";
    for (size_t i = 0; i < s.tags.size(); ++i) {
      if (i) key += ",";
      key += unmapped(s.tags[i].key) + "=" + s.tags[i].value;
    }
    key += "}";
    const char kind = s.type == StatsdType::kCounter ? 'c'
                      : s.type == StatsdType::kGauge ? 'g'
                                                     : 'd';
    std::string id = std::string(1, kind) + " " + key;
    if (s.timestamp_s != kNowMs / 1000) id += " @" + std::to_string(s.timestamp_s);
    Agg& a = series[id];
    a.kind = kind;
    if (kind == 'c') a.sum += s.value;
    if (kind == 'g') a.last = s.value;
    if (kind == 'd') {
      a.n += s.count;
      a.sum += s.value * s.sum_weight;
    }
  }
  std::vector<std::string> parts;
  for (const auto& [id, a] : series) {
    const size_t sp = id.find(" @");
    std::string head = sp == std::string::npos ? id : id.substr(0, sp);
    std::string at = sp == std::string::npos ? "" : id.substr(sp);
    std::string v = a.kind == 'c'   ? fmt(a.sum)
                    : a.kind == 'g' ? fmt(a.last)
                                    : "n=" + std::to_string(a.n) + " sum=" + fmt(a.sum);
    parts.push_back(head + " " + v + at);
  }
  for (uint64_t i = 0; i < c.events; ++i) parts.push_back("event");
  for (uint64_t i = 0; i < c.service_checks; ++i) parts.push_back("service_check");
  for (uint64_t i = 0; i < c.lines_rejected_total(); ++i) parts.push_back("rejected");
  if (c.tags_dropped) parts.push_back("tags_dropped=" + std::to_string(c.tags_dropped));
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

// The first rejected line's reason, for the failure message.
std::string reasons(const StatsdCounters& c) {
  std::string out;
  for (size_t i = 0; i < kStatsdRejectReasons; ++i) {
    if (c.lines_rejected[i])
      out += std::string(out.empty() ? "" : ",") + statsd_reject_name(static_cast<StatsdReject>(i));
  }
  return out;
}

int g_rows = 0;
int g_as_agent = 0;

}  // namespace

class TestDogStatsdConformance : public QObject {
  Q_OBJECT
 private slots:
  void conformance_data();
  void conformance();
  void score();
};

void TestDogStatsdConformance::conformance_data() {
  QTest::addColumn<QByteArray>("datagram");
  QTest::addColumn<QString>("agent");
  QTest::addColumn<QString>("tally");  // empty: as the Agent

  int n = 0;
  auto row = [&n](const char* group, QByteArray datagram, const char* agent,
                  const char* tally = "") {
    QTest::addRow("%s#%d", group, ++n)
        << datagram << QString::fromUtf8(agent) << QString::fromUtf8(tally);
  };
  const std::string sha = "2a25f7fc8fbf573d62053d7263dd2d440c07b6ab4d2b107e50b0d4df1f2ee15f";
  auto bytes = [](const std::string& s) { return QByteArray::fromStdString(s); };

  // --- parse_metrics_test.go ---------------------------------------------------------------
  // TestParseGauge, TestParseGaugeMultiple, TestParseGaugeWithNoTags
  row("TestParseGauge", "daemon:666|g", "g daemon{} 666");
  row("TestParseGaugeMultiple", "daemon:666:777|g", "g daemon{} 777");
  // TestParseCounter, TestParseCounterMultiple, TestParseCounterWithTags
  row("TestParseCounter", "daemon:21|c", "c daemon{} 21");
  row("TestParseCounterMultiple", "daemon:666:777|c", "c daemon{} 1443");
  row("TestParseCounterWithTags", "custom_counter:1|c|#protocol:http,bench",
      "c custom_counter{bench=true,protocol=http} 1");
  // TestParseHistogram, TestParseHistogramrMultiple, TestParseTimer, TestParseTimerMultiple
  row("TestParseHistogram", "daemon:21|h", "d daemon{} n=1 sum=21");
  row("TestParseHistogramrMultiple", "daemon:21:22|h", "d daemon{} n=2 sum=43");
  row("TestParseTimer", "daemon:21|ms", "d daemon{} n=1 sum=21");
  row("TestParseTimerMultiple", "daemon:21:22|ms", "d daemon{} n=2 sum=43");
  // TestParseSet, TestParseSetMultiple, TestParseSetUnicode: one unique member per second
  row("TestParseSet", "daemon:abc|s", "g daemon{} 1");
  row("TestParseSetMultiple", "daemon:abc:def|s", "g daemon{} 1");
  row("TestParseSetUnicode", "daemon:♬†øU†øU¥ºuT0♪|s", "g daemon{} 1");
  // TestSampleDistribution, TestParseDistributionMultiple
  row("TestSampleDistribution", "daemon:3.5|d", "d daemon{} n=1 sum=3.5");
  row("TestParseDistributionMultiple", "daemon:3.5:4.5|d", "d daemon{} n=2 sum=8");
  // TestParseGaugeWithTags, TestParseGaugeWithSampleRate, TestParseGaugeWithPoundOnly,
  // TestParseGaugeWithUnicode
  row("TestParseGaugeWithTags", "daemon:666|g|#sometag1:somevalue1,sometag2:somevalue2",
      "g daemon{sometag1=somevalue1,sometag2=somevalue2} 666");
  row("TestParseGaugeWithSampleRate", "daemon:666|g|@0.21", "g daemon{} 666");
  row("TestParseGaugeWithPoundOnly", "daemon:666|g|#", "g daemon{} 666");
  row("TestParseGaugeWithUnicode", "♬†øU†øU¥ºuT0♪:666|g|#intitulé:T0µ",
      "g ♬†øU†øU¥ºuT0♪{intitulé=T0µ} 666");
  // TestParseMetricError
  row("TestParseMetricError", "daemon:666", "rejected");
  row("TestParseMetricError", "daemon:666|", "rejected");
  row("TestParseMetricError", "daemon:|g", "rejected");
  row("TestParseMetricError", ":666|g", "rejected");
  row("TestParseMetricError", "abc666|g", "rejected");
  row("TestParseMetricError", "daemon:666|g|m:test", "g daemon{} 666");
  row("TestParseMetricError", "daemon:abc|g", "rejected");
  row("TestParseMetricError", "daemon:666|unknown", "rejected");
  row("TestParseMetricError", "daemon:666|g|@abc", "rejected");
  // TestParseGaugeWithTimestamp (the Agent reads |T with its default no-aggregation pipeline)
  row("TestParseGaugeWithTimestamp", "metric:1234|g|#onetag|T1657100430",
      "g metric{onetag=true} 1234 @1657100430");
  row("TestParseGaugeWithTimestamp", "metric:1234|g|#|T1657100430", "g metric{} 1234 @1657100430");
  row("TestParseGaugeWithTimestamp", "metric:1234|g|@0.21|T1657100440",
      "g metric{} 1234 @1657100440");
  row("TestParseGaugeWithTimestamp", "metric:1234|g|#thereisatag|@0.21|T1657100440",
      "g metric{thereisatag=true} 1234 @1657100440");
  row("TestParseGaugeWithTimestamp", "metric:1234|g|#thereisatag|T1657100540|@0.21",
      "g metric{thereisatag=true} 1234 @1657100540");
  row("TestParseGaugeWithTimestamp", "metric:1234|g|@0.21|T1657100540|#thereisatag",
      "g metric{thereisatag=true} 1234 @1657100540");
  row("TestParseGaugeWithTimestamp", "metric:1234|g|T1657100540|@0.25|#atag",
      "g metric{atag=true} 1234 @1657100540");
  row("TestParseGaugeWithTimestamp", "metric:1234|g|T1657100540|#atag|@0.25",
      "g metric{atag=true} 1234 @1657100540");
  // TestParseGaugeTimestampMalformed
  row("TestParseGaugeTimestampMalformed", "metric:1234|g|#onetag|TABCD", "rejected");
  row("TestParseGaugeTimestampMalformed", "metric:1234|g|#onetag|T", "rejected");
  row("TestParseGaugeTimestampMalformed", "metric:1234|g|#onetag|T-102348932", "rejected");
  // TestParseManyPipes
  row("TestParseManyPipes", bytes("example.metric:2.39283|d|@1.000000|#environment:dev|c:" + sha),
      "d example.metric{environment=dev} n=1 sum=2.39283");
  row("TestParseManyPipes",
      bytes("example.metric:2.39283|d|T1657100540|@1.000000|#environment:dev|c:" + sha),
      "d example.metric{environment=dev} n=1 sum=2.39283 @1657100540");
  row("TestParseManyPipes",
      bytes("example.metric:2.39283|d|T1657100540|@1.000000|#environment:dev|c:" + sha +
            "|f:wowthisisacoolfeature"),
      "d example.metric{environment=dev} n=1 sum=2.39283 @1657100540");
  row("TestParseManyPipes",
      bytes("example.metric:2.39283|d|T1657100540|@1.000000|#environment:dev|c:" + sha +
            "|f:wowthisisacoolfeature|f2:omgthisoneiscooler"),
      "d example.metric{environment=dev} n=1 sum=2.39283 @1657100540");
  // (its |T1747236777 moved to 10 s before the test clock, so only the type decides)
  row("TestParseManyPipes",
      "my.prefix.mysketch:CKnvksEGEAIZAAAAAABAbUAhAAAAAABwekApAAAAAACIdEAxAAAAAACIhEA6BLQagBtCAgEB|"
      "S|T1699999990|#baz,foo:bar",
      "sketch my.prefix.mysketch{baz=true,foo=bar} @1699999990", "rejected");
  // TestParseContainerID: the origin is used by the Agent's tagger, never stored as a tag
  row("TestParseContainerID", "metric:1234|g|c:1234567890abcdef", "g metric{} 1234");

  // --- parse_test.go -----------------------------------------------------------------------
  // TestIdentifyMetricSample, TestIdentifyRandomString: @0.5 weighs an observation twice
  row("TestIdentifyMetricSample", "song.length:240|h|@0.5", "d song.length{} n=2 sum=480");
  // TestParseTags, TestParseTagsEmpty (inside a metric line)
  row("TestParseTags", "x:1|c|#tag:test,mytag,good:boy", "c x{good=boy,mytag=true,tag=test} 1");
  row("TestParseTagsEmpty", "x:1|c|#", "c x{} 1");
  // TestUnsafeParseFloat, TestUnsafeParseFloatList: empty items are skipped
  row("TestUnsafeParseFloat", "x:1.1234|h", "d x{} n=1 sum=1.1234");
  row("TestUnsafeParseFloatList", "x:1.1234:21.5:13|h", "d x{} n=3 sum=35.6234");
  row("TestUnsafeParseFloatList", "x:1.1234:41:|h", "d x{} n=2 sum=42.1234");
  row("TestUnsafeParseFloatList", "x:1.1234::41|h", "d x{} n=2 sum=42.1234");
  row("TestUnsafeParseFloatList", "x::1.1234::41|h", "d x{} n=2 sum=42.1234");
  row("TestUnsafeParseFloatList", "x:|h", "rejected");
  row("TestUnsafeParseFloatList", "x:::|h", "rejected");

  // --- parse_events_test.go: events are counted and stored as annotations, never "bad lines" -
  row("TestEventMinimal", "_e{10,9}:test title|test text", "event");
  row("TestEventMultilinesText", "_e{10,24}:test title|test\\line1\\nline2\\nline3", "event");
  row("TestEventPipeInTitle", "_e{10,24}:test|title|test\\line1\\nline2\\nline3", "event");
  row("TestEventError", "_e:title|text", "rejected");
  row("TestEventError", "_e{10,10}:title|text", "rejected");
  row("TestEventError", "_e{0,0}:a|a", "rejected");
  row("TestEventError", "_e{0,4}:text", "rejected");
  row("TestEventError", "_e{5555:title|text", "rejected");
  row("TestEventError", "_e{a,1}:title|text", "rejected");
  row("TestEventError", "_e{1,a}:title|text", "rejected");
  row("TestEventError", "_e{5,}:title|text", "rejected");
  row("TestEventError", "_e{,4}:title|text", "rejected");
  row("TestEventError", "_e{}:title|text", "rejected");
  row("TestEventError", "_e{,}:title|text", "rejected");
  row("TestEventError", "_e|text", "rejected");
  row("TestEventError", "_e:|text", "rejected");
  row("TestEventError", "_e{-123,-987}:", "rejected");
  row("TestEventError", "_e{5,-987}:title", "rejected");
  row("TestEventError", "_e{0001,-9876", "rejected");
  row("TestEventError", "_e{5,4}:title|text|d:abc", "event");
  row("TestEventError", "_e{5,4}:title|text|p:urgent", "event");
  row("TestEventError", "_e{5,4}:title|text|t:test", "event");
  row("TestEventError", "_e{5,4}:title|text|x:1234", "event");
  row("TestEventMetadataTimestamp", "_e{10,9}:test title|test text|d:21", "event");
  row("TestEventMetadataPriority", "_e{10,9}:test title|test text|p:low", "event");
  row("TestEventMetadataHostname", "_e{10,9}:test title|test text|h:localhost", "event");
  row("TestEventMetadataAlertType", "_e{10,9}:test title|test text|t:warning", "event");
  row("TestEventMetadataAggregatioKey", "_e{10,9}:test title|test text|k:some aggregation key",
      "event");
  row("TestEventMetadataSourceType", "_e{10,9}:test title|test text|s:this is the source", "event");
  row("TestEventMetadataTags", "_e{10,9}:test title|test text|#tag1,tag2:test", "event");
  row("TestEventMetadataMultiple",
      "_e{10,9}:test title|test text|t:warning|d:12345|p:low|h:some.host|k:aggKey|s:source "
      "test|#tag1,tag2:test",
      "event");
  row("TestEventEmptyTitle", "_e{0,9}:|test text", "rejected");
  row("TestEventEmptyText", "_e{10,0}:test title|", "event");
  row("TestEventEmptyTextWithAlertType", "_e{10,0}:test title||t:warning", "event");

  // --- parse_service_checks_test.go ---------------------------------------------------------
  row("TestServiceCheckMinimal", "_sc|agent.up|0", "service_check");
  row("TestServiceCheckError", "_sc|agent.up", "rejected");
  row("TestServiceCheckError", "_sc|agent.up|", "rejected");
  row("TestServiceCheckError", "_sc||", "rejected");
  row("TestServiceCheckError", "_sc|", "rejected");
  row("TestServiceCheckError", "_sc|agent.up|OK", "rejected");
  row("TestServiceCheckError", "_sc|agent.up|21", "rejected");
  row("TestServiceCheckError", "_sc|agent.up|0|d:some_time", "service_check");
  row("TestServiceCheckError", "_sc|agent.up|0|u:unknown", "service_check");
  row("TestServiceCheckMetadataTimestamp", "_sc|agent.up|0|d:21", "service_check");
  row("TestServiceCheckMetadataHostname", "_sc|agent.up|0|h:localhost", "service_check");
  row("TestServiceCheckMetadataTags", "_sc|agent.up|0|#tag1,tag2:test,tag3", "service_check");
  row("TestServiceCheckMetadataMessage", "_sc|agent.up|0|m:this is fine", "service_check");
  row("TestServiceCheckMetadataMultiple",
      "_sc|agent.up|0|d:21|h:localhost|#tag1:test,tag2|m:this is fine", "service_check");
  row("TestServiceCheckMetadataMultiple", "_sc|agent.up|0|d:21|h:localhost|h:localhost2|d:22",
      "service_check");

  // --- the DogStatsD protocol (docs.datadoghq.com, "DogStatsD Datagram Format") -----------
  row("protocol", "page.views:1|c", "c page.views{} 1");
  row("protocol", "fuel.level:0.5|g", "g fuel.level{} 0.5");
  row("protocol", "song.length:240|h|@0.5", "d song.length{} n=2 sum=480");
  row("protocol", "users.uniques:1234|s", "g users.uniques{} 1");
  row("protocol", "users.online:1|c|#country:china", "c users.online{country=china} 1");
  row("protocol", "users.online:1|c|@0.5|#country:china", "c users.online{country=china} 2");
  row("protocol", "page.views:1|c\nfuel.level:0.5|g\n", "c page.views{} 1; g fuel.level{} 0.5");
  row("protocol",
      "_e{21,36}:An exception occurred|Cannot parse CSV file from "
      "10.0.0.17|t:warning|#err_type:bad_file",
      "event");
  row("protocol", "_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s",
      "service_check");
  row("protocol", "request.latency:12:15:19|d|#env:prod", "d request.latency{env=prod} n=3 sum=46");

  // --- what issue 17 found, each as the Agent reads it --------------------------------------
  // gauges are absolute: a sign is part of the value
  row("gauge_absolute", "x:10|g\nx:-3|g", "g x{} -3");
  row("gauge_absolute", "x:10|g\nx:+5|g", "g x{} 5");
  row("gauge_absolute", "x:-3|g", "g x{} -3");
  // origin tags and fields: used by the Agent's tagger, never stored as tags
  row("origin", "x:1|c|#dd.internal.entity_id:4f1b-pod,env:prod", "c x{env=prod} 1");
  row("origin", "x:1|c|#dd.internal.card:high,env:prod", "c x{env=prod} 1");
  row("origin", "x:1|c|#env:prod|c:ci-abc,in-123|e:it-false,cn-app,pu-4f1b|card:orchestrator",
      "c x{env=prod} 1");
  // tags: several values of one key, repeats, "host:", an empty key
  row("tags", "x:1|c|#env:a,env:b", "c x{env=a,b} 1");
  row("tags", "x:1|c|#env:b,env:a,env:b", "c x{env=a,b} 1");
  row("tags", "x:1|c|#env:a,env:a", "c x{env=a} 1");
  row("tags", "x:1|c|#host:,env:prod", "c x{env=prod} 1");
  row("tags", "x:1|c|#:v", "c x{=v} 1");
  row("tags", "x:1|c|#app.kubernetes.io/name:web", "c x{app.kubernetes.io/name=web} 1");
  row("tags", "x:1|c|#url:http://x:80/p", "c x{url=http://x:80/p} 1");
  {
    std::string many = "x:1|c|#";
    for (int i = 0; i < 33; ++i) many += (i ? ",k" : "k") + std::to_string(i) + ":v";
    std::string agent = "c x{";
    std::vector<std::string> keys;
    for (int i = 0; i < 33; ++i) keys.push_back("k" + std::to_string(i));
    std::sort(keys.begin(), keys.end());
    std::string kept = "c x{";
    // Tally keeps the first 32 keys in the order sent (k0..k31) and drops k32.
    std::vector<std::string> sent32;
    for (int i = 0; i < 32; ++i) sent32.push_back("k" + std::to_string(i));
    std::sort(sent32.begin(), sent32.end());
    for (size_t i = 0; i < keys.size(); ++i) agent += (i ? "," : "") + keys[i] + "=v";
    for (size_t i = 0; i < sent32.size(); ++i) kept += (i ? "," : "") + sent32[i] + "=v";
    agent += "} 1";
    kept += "} 1; tags_dropped=1";
    static std::string a, t;
    a = agent;
    t = kept;
    row("tags_33", bytes(many), a.c_str(), t.c_str());
  }
  row("tag_value_250", bytes("x:1|c|#env:prod,v:" + std::string(250, 'a')),
      ("c x{env=prod,v=" + std::string(250, 'a') + "} 1").c_str(),
      "c x{env=prod} 1; tags_dropped=1");
  // names the Agent keeps
  row("names", "api latency:1|c", "c api latency{} 1");
  row("names", "1xx:1|c", "c 1xx{} 1");
  row("names", "a/b:1|c", "c a/b{} 1");
  row("names", "métrique.durée:1|c", "c métrique.durée{} 1");
  row("names", "U__x:1|c", "c U__x{} 1");
  row("names", bytes(std::string(200, 'n') + ":1|c"),
      ("c " + std::string(200, 'n') + "{} 1").c_str());
  row("names", bytes(std::string(250, 'n') + ":1|c"),
      ("c " + std::string(250, 'n') + "{} 1").c_str(), "rejected");
  // forward compatibility: empty and unknown fields, repeated sample rate
  row("fields", "x:1|c|", "c x{} 1");
  row("fields", "x:1|c||#k:v", "c x{k=v} 1");
  row("fields", "x:1|c|@0.5|@0.25", "c x{} 4");
  row("fields", "x:1|c|!x", "c x{} 1");
  // sampled histograms, timers and distributions: count trunc(1/rate), as the Agent does
  row("sampled", "x:666|h|@0.21", "d x{} n=4 sum=3171.43");
  row("sampled", "x:100|ms|@0.1", "d x{} n=10 sum=1000");
  row("sampled", "x:10|d|@0.5", "d x{} n=2 sum=20");
  row("sampled", "x:10|d|@0.3", "d x{} n=3 sum=33.3333");
  // counters: sample rates scale, negative increments are taken, |T is not scaled
  row("counter", "x:1|c|@0.1", "c x{} 10");
  row("counter", "x:-5|c", "c x{} -5");
  row("counter", "x:5|c|@0.5|T1699999990", "c x{} 5 @1699999990");
  row("counter", "x:1.5|c", "c x{} 1.5");
  // timestamps outside what Tally keeps: counted as rejected, not as accepted
  row("timestamp_too_old", "x:1|c|T1000000000", "c x{} 1 @1000000000", "rejected");
  row("sample_rate_tiny", "x:1|c|@1e-300", "c x{} 1e+300", "rejected");
}

void TestDogStatsdConformance::conformance() {
  QFETCH(QByteArray, datagram);
  QFETCH(QString, agent);
  QFETCH(QString, tally);

  ManualClock clock(kNowMs);
  Collected got;
  StatsdListenerOptions opt;
  opt.udp = "127.0.0.1:0";
  opt.udp_dialect = StatsdDialect::kDogStatsd;
  opt.logger = std::make_shared<spdlog::logger>("conformance",
                                                std::make_shared<spdlog::sinks::null_sink_mt>());
  StatsdListener listener(opt, got.sink(), clock);
  QVERIFY(listener.start().is_ok());

  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(listener.udp_port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  QCOMPARE(::sendto(fd, datagram.constData(), static_cast<size_t>(datagram.size()), 0,
                    reinterpret_cast<sockaddr*>(&to), sizeof to),
           static_cast<ssize_t>(datagram.size()));
  ::close(fd);
  QTRY_COMPARE_WITH_TIMEOUT(listener.counters().packets, uint64_t{1}, 10000);
  listener.stop();  // hands on open sets

  const StatsdCounters c = listener.counters();
  const QString actual = QString::fromStdString(describe(got.samples(), c));
  const QString expected = tally.isEmpty() ? agent : tally;
  ++g_rows;
  if (actual == agent) ++g_as_agent;
  QVERIFY2(actual == expected,
           qPrintable("line " + QString::fromUtf8(datagram.left(120)) + "\n   got:      " + actual +
                      "\n   expected: " + expected +
                      "\n   reasons:  " + QString::fromStdString(reasons(c))));
}

void TestDogStatsdConformance::score() {
  QVERIFY(g_rows >= 100);
  const double pct = 100.0 * g_as_agent / g_rows;
  std::printf(
      "DogStatsD conformance: %d of %d lines answered as the Datadog Agent does (%.1f %%)\n",
      g_as_agent, g_rows, pct);
  std::fflush(stdout);
  QVERIFY2(pct >= 95.0, "fewer than 95 % of the lines answer as the Agent");
}

QTEST_GUILESS_MAIN(TestDogStatsdConformance)
#include "tst_dogstatsd_conformance.moc"
