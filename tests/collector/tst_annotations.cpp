// Annotations end to end: the real collector process on loopback with a temporary data
// directory, its HTTP API (POST / GET / DELETE /api/annotations), restarts and SIGKILL,
// annotations_max, DogStatsD events over real UDP, the `tally` tool, and HTTP tokens.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <QtTest>

#include <chrono>
#include <memory>
#include <string>

#include "collector_process.h"

using tally::testing::CollectorProcess;
using tally::testing::eventually;
using json = nlohmann::json;

namespace {

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Answer {
  int status = 0;
  json body;
  std::string raw;
};

Answer send(int port, const std::string& method, const std::string& path,
            const std::string& body = {}, const std::string& token = {}) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(10, 0);
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  httplib::Result r = method == "POST"     ? c.Post(path, h, body, "application/json")
                      : method == "DELETE" ? c.Delete(path, h)
                                           : c.Get(path, h);
  Answer a;
  if (!r) return a;
  a.status = r->status;
  a.raw = r->body;
  a.body = json::parse(r->body, nullptr, false);
  return a;
}

Answer post(int port, const json& body, const std::string& token = {}) {
  return send(port, "POST", "/api/annotations", body.dump(), token);
}

// GET /api/annotations with a query string ("from=...&to=...").
json list(int port, const std::string& query) {
  Answer a = send(port, "GET", "/api/annotations?" + query);
  if (a.status != 200) return json{{"_status", a.status}, {"_raw", a.raw}};
  return a.body;
}

std::string range(int64_t from, int64_t to) {
  return "from=" + std::to_string(from) + "&to=" + std::to_string(to);
}

// Every stored annotation (the store's count as the API sees it).
size_t stored(int port) {
  json j = list(port, "from=0&to=now&limit=10000");
  return j.contains("annotations") ? j["annotations"].size() : size_t(-1);
}

// A sample of the collector's own /metrics ("name{labels}" as printed), -1 when absent.
double self_metric(const CollectorProcess& c, const std::string& series) {
  auto [status, text] = c.get_raw("/metrics");
  if (status != 200) return -1;
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

void send_udp(int port, const std::string& payload) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::close(fd);
}

}  // namespace

class TestAnnotations : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase();
  void cleanupTestCase();
  void postThenGetReturnsWhatWasSent();
  void overlapAtRangeEdges_data();
  void overlapAtRangeEdges();
  void tagFilter_data();
  void tagFilter();
  void limitAndTruncated();
  void deleteById();
  void badBodiesAre400AndStoreNothing_data();
  void badBodiesAre400AndStoreNothing();
  void survivesRestartAndSigkill();
  void annotationsMaxDropsOldest();
  void backupAndRestoreKeepAnnotations();
  void dogstatsdEventsAreStored();
  void cliAnnotateAndList();
  void tokensGuardWrites();

 private:
  std::unique_ptr<CollectorProcess> c_;
  int port_ = 0;
  int64_t base_ = 0;  // each test works in its own hour before now
};

void TestAnnotations::initTestCase() {
  c_ = std::make_unique<CollectorProcess>();
  QVERIFY(c_->start());
  port_ = c_->http_port();
  base_ = now_s() - 20 * 3600;
}

void TestAnnotations::cleanupTestCase() {
  c_.reset();
}

void TestAnnotations::postThenGetReturnsWhatWasSent() {
  const int64_t t = base_;
  json sent = {{"time", static_cast<double>(t) + 0.25},
               {"end", t + 60},
               {"title", "Deploy web 1.4"},
               {"text", "rolled out by ci\nsecond line, ünïcode"},
               {"tags", {{"service", "web"}, {"env", "prod"}}}};
  Answer a = post(port_, sent);
  QCOMPARE(a.status, 200);
  QVERIFY2(a.body.contains("id") && a.body["id"].is_number_integer(), a.raw.c_str());
  const int64_t id = a.body["id"].get<int64_t>();
  // A point annotation with a time to the millisecond and no end.
  Answer b = post(port_, {{"time", static_cast<double>(t) + 100.123}, {"title", "point"}});
  QCOMPARE(b.status, 200);

  json got = list(port_, range(t - 1, t + 200));
  json want = {{"annotations",
                {{{"id", id},
                  {"time", static_cast<double>(t) + 0.25},
                  {"end", t + 60},
                  {"title", "Deploy web 1.4"},
                  {"text", "rolled out by ci\nsecond line, ünïcode"},
                  {"tags", {{"env", "prod"}, {"service", "web"}}},
                  {"source", "api"}},
                 {{"id", b.body["id"]},
                  {"time", static_cast<double>(t) + 100.123},
                  {"title", "point"},
                  {"text", ""},
                  {"tags", json::object()},
                  {"source", "api"}}}}};
  QCOMPARE(QString::fromStdString(got.dump()), QString::fromStdString(want.dump()));
  // The time is printed with its milliseconds and nothing else.
  QVERIFY2(got.dump().find("\"time\":" + std::to_string(t + 100) + ".123") != std::string::npos,
           got.dump().c_str());
}

void TestAnnotations::overlapAtRangeEdges_data() {
  QTest::addColumn<int>("from");  // seconds after the test's base
  QTest::addColumn<int>("to");
  QTest::addColumn<QStringList>("titles");
  // A is a point at +10; B spans [+20, +30].
  QTest::newRow("point at from is in") << 10 << 11 << QStringList{"A"};
  QTest::newRow("point at to is out") << 9 << 10 << QStringList{};
  QTest::newRow("range ending at from is in") << 30 << 31 << QStringList{"B"};
  QTest::newRow("range ending before from is out") << 31 << 40 << QStringList{};
  QTest::newRow("range starting at to is out") << 15 << 20 << QStringList{};
  QTest::newRow("window inside the range") << 21 << 22 << QStringList{"B"};
  QTest::newRow("both, by time") << 0 << 40 << QStringList{"A", "B"};
}

void TestAnnotations::overlapAtRangeEdges() {
  QFETCH(int, from);
  QFETCH(int, to);
  QFETCH(QStringList, titles);
  const int64_t b = base_ + 3600;
  if (QTest::currentDataTag() == QStringLiteral("point at from is in")) {
    QCOMPARE(post(port_, {{"time", b + 10}, {"title", "A"}}).status, 200);
    QCOMPARE(post(port_, {{"time", b + 20}, {"end", b + 30}, {"title", "B"}}).status, 200);
  }
  json got = list(port_, range(b + from, b + to));
  QStringList seen;
  for (const auto& a : got["annotations"]) seen << QString::fromStdString(a["title"]);
  QCOMPARE(seen, titles);
}

void TestAnnotations::tagFilter_data() {
  QTest::addColumn<QString>("query");
  QTest::addColumn<QStringList>("titles");
  QTest::addColumn<int>("status");
  QTest::newRow("one tag") << "&tag=service:web" << QStringList{"web prod", "web dev"} << 200;
  QTest::newRow("all must match") << "&tag=service:web&tag=env:prod" << QStringList{"web prod"}
                                  << 200;
  QTest::newRow("exact value only") << "&tag=service:we" << QStringList{} << 200;
  QTest::newRow("value with a colon") << "&tag=url:http://x" << QStringList{"api"} << 200;
  QTest::newRow("no colon") << "&tag=service" << QStringList{} << 400;
  QTest::newRow("bad key") << "&tag=9x:y" << QStringList{} << 400;
}

void TestAnnotations::tagFilter() {
  QFETCH(QString, query);
  QFETCH(QStringList, titles);
  QFETCH(int, status);
  const int64_t b = base_ + 2 * 3600;
  if (QTest::currentDataTag() == QStringLiteral("one tag")) {
    QCOMPARE(post(port_, {{"time", b + 1},
                          {"title", "web prod"},
                          {"tags", {{"service", "web"}, {"env", "prod"}}}})
                 .status,
             200);
    QCOMPARE(post(port_, {{"time", b + 2},
                          {"title", "web dev"},
                          {"tags", {{"service", "web"}, {"env", "dev"}}}})
                 .status,
             200);
    QCOMPARE(
        post(port_, {{"time", b + 3}, {"title", "api"}, {"tags", {{"url", "http://x"}}}}).status,
        200);
  }
  Answer a = send(port_, "GET", "/api/annotations?" + range(b, b + 10) + query.toStdString());
  QCOMPARE(a.status, status);
  if (status != 200) {
    QVERIFY2(a.body["error"].get<std::string>().starts_with("tag: "), a.raw.c_str());
    return;
  }
  QStringList seen;
  for (const auto& x : a.body["annotations"]) seen << QString::fromStdString(x["title"]);
  QCOMPARE(seen, titles);
}

void TestAnnotations::limitAndTruncated() {
  const int64_t b = base_ + 3 * 3600;
  for (int i = 0; i < 5; ++i)
    QCOMPARE(post(port_, {{"time", b + 5 - i}, {"title", "n" + std::to_string(5 - i)}}).status,
             200);
  json three = list(port_, range(b, b + 10) + "&limit=3");
  QCOMPARE(three["annotations"].size(), size_t(3));
  QCOMPARE(three["annotations"][0]["title"].get<std::string>(), std::string("n1"));
  QCOMPARE(three["annotations"][2]["title"].get<std::string>(), std::string("n3"));
  QCOMPARE(three.value("truncated", false), true);
  json five = list(port_, range(b, b + 10) + "&limit=5");
  QCOMPARE(five["annotations"].size(), size_t(5));
  QVERIFY(!five.contains("truncated"));
  QVERIFY(!list(port_, range(b, b + 10)).contains("truncated"));  // default 1000
  for (const char* bad : {"0", "10001", "-1", "x", "3.5"}) {
    Answer a = send(port_, "GET", "/api/annotations?" + range(b, b + 10) + "&limit=" + bad);
    QCOMPARE(a.status, 400);
    QCOMPARE(a.body["error"].get<std::string>(), std::string("limit: must be an integer 1..10000"));
  }
  QCOMPARE(list(port_, range(b, b + 10) + "&limit=10000")["annotations"].size(), size_t(5));
}

void TestAnnotations::deleteById() {
  const int64_t b = base_ + 4 * 3600;
  Answer a = post(port_, {{"time", b}, {"title", "to delete"}});
  QCOMPARE(a.status, 200);
  const std::string path = "/api/annotations/" + std::to_string(a.body["id"].get<int64_t>());
  Answer d = send(port_, "DELETE", path);
  QCOMPARE(d.status, 200);
  QCOMPARE(d.raw, std::string(R"({"deleted":1})"));
  QCOMPARE(list(port_, range(b - 1, b + 1))["annotations"].size(), size_t(0));
  QCOMPARE(send(port_, "DELETE", path).status, 404);
  QCOMPARE(send(port_, "DELETE", "/api/annotations/999999999").status, 404);
  Answer bad = send(port_, "DELETE", "/api/annotations/abc");
  QCOMPARE(bad.status, 400);
  QVERIFY2(bad.body["error"].get<std::string>().starts_with("id: "), bad.raw.c_str());
}

void TestAnnotations::badBodiesAre400AndStoreNothing_data() {
  QTest::addColumn<QByteArray>("body");
  QTest::addColumn<QString>("field");  // the error message starts with "<field>: "
  const std::string now = std::to_string(now_s() - 60);
  auto row = [](const char* name, const std::string& body, const char* field) {
    QTest::newRow(name) << QByteArray::fromStdString(body) << QString(field);
  };
  row("not json", "deploy!", "body");
  row("not an object", "[1,2]", "body");
  row("empty object", "{}", "title");
  row("empty title", R"({"title":""})", "title");
  row("title not a string", R"({"title":5})", "title");
  row("title 201 bytes", json{{"title", std::string(201, 't')}}.dump(), "title");
  row("title with a control", R"({"title":"a\u0001b"})", "title");
  row("title with a newline", R"({"title":"a\nb"})", "title");
  row("title not UTF-8", "{\"title\":\"a\xff\"}", "title");
  row("text not UTF-8", "{\"title\":\"a\",\"text\":\"b\xc3\"}", "text");
  row("text 4097 bytes", json{{"title", "a"}, {"text", std::string(4097, 'x')}}.dump(), "text");
  row("text not a string", R"({"title":"a","text":["x"]})", "text");
  row("time a string", R"({"title":"a","time":"yesterday"})", "time");
  row("time negative", R"({"title":"a","time":-5})", "time");
  row("time beyond the retention", R"({"title":"a","time":1000})", "time");
  row("end before time",
      R"({"title":"a","time":)" + now + R"(,"end":)" + std::to_string(now_s() - 61) + "}", "end");
  row("end a string", R"({"title":"a","end":"later"})", "end");
  row("tags not an object", R"({"title":"a","tags":["x"]})", "tags");
  row("tag value not a string", R"({"title":"a","tags":{"k":1}})", "tags");
  row("tag key invalid", R"({"title":"a","tags":{"bad key":"v"}})", "tags");
  row("tag value empty", R"({"title":"a","tags":{"k":""}})", "tags");
  json many = {{"title", "a"}, {"tags", json::object()}};
  for (int i = 0; i < 33; ++i) many["tags"]["k" + std::to_string(i)] = "v";
  row("33 tags", many.dump(), "tags");
  row("unknown field", R"({"title":"a","when":1})", "when");
  row("body over 64 KiB", json{{"title", "a"}, {"text", std::string(70000, 'x')}}.dump(), "body");
  row("body over 1 MiB", json{{"title", "a"}, {"text", std::string(2 << 20, 'x')}}.dump(), "body");
}

void TestAnnotations::badBodiesAre400AndStoreNothing() {
  QFETCH(QByteArray, body);
  QFETCH(QString, field);
  const std::string b = body.toStdString();
  const size_t before = stored(port_);
  const double rejected = self_metric(*c_, R"(tally_annotations_rejected_total{source="api"})");
  Answer a = send(port_, "POST", "/api/annotations", b);
  QCOMPARE(a.status, 400);
  QVERIFY2(a.body.is_object() && a.body["error"].is_string(), a.raw.c_str());
  const std::string msg = a.body["error"].get<std::string>();
  QVERIFY2(msg.starts_with(field.toStdString() + ": "), msg.c_str());
  QCOMPARE(stored(port_), before);
  QCOMPARE(self_metric(*c_, R"(tally_annotations_rejected_total{source="api"})"), rejected + 1);
}

void TestAnnotations::survivesRestartAndSigkill() {
  CollectorProcess c;
  QVERIFY(c.start());
  const int64_t t = now_s() - 100;
  Answer a = post(c.http_port(), {{"time", t}, {"title", "before restart"}});
  QCOMPARE(a.status, 200);
  QCOMPARE(c.stop(), 0);
  QVERIFY(c.start());
  json got = list(c.http_port(), range(t - 1, t + 10));
  QCOMPARE(got["annotations"].size(), size_t(1));
  QCOMPARE(got["annotations"][0]["id"], a.body["id"]);
  // Acknowledged means stored: SIGKILL right after the 200.
  Answer b = post(c.http_port(), {{"time", t + 1}, {"title", "before kill"}, {"text", "x"}});
  QCOMPARE(b.status, 200);
  c.kill();
  QVERIFY(c.start());
  got = list(c.http_port(), range(t - 1, t + 10));
  QCOMPARE(got["annotations"].size(), size_t(2));
  QCOMPARE(got["annotations"][1]["id"], b.body["id"]);
  QCOMPARE(got["annotations"][1]["title"].get<std::string>(), std::string("before kill"));
  // Ids are never handed out twice, even after the newest was deleted and the process restarted.
  QCOMPARE(send(c.http_port(), "DELETE", "/api/annotations/" + b.body["id"].dump()).status, 200);
  c.kill();
  QVERIFY(c.start());
  Answer n = post(c.http_port(), {{"time", t + 2}, {"title", "after"}});
  QCOMPARE(n.status, 200);
  QVERIFY(n.body["id"].get<int64_t>() > b.body["id"].get<int64_t>());
}

void TestAnnotations::annotationsMaxDropsOldest() {
  CollectorProcess c;
  QVERIFY(c.start({"--limit", "annotations_max=3"}));
  const int64_t t = now_s() - 1000;
  // Written out of time order: the oldest by time go, not the first written.
  for (int i : {2, 0, 1, 3, 4}) {
    Answer a = post(c.http_port(), {{"time", t + i}, {"title", "a" + std::to_string(i)}});
    QCOMPARE(a.status, 200);
  }
  json got = list(c.http_port(), range(t - 1, t + 10));
  QStringList seen;
  for (const auto& a : got["annotations"]) seen << QString::fromStdString(a["title"]);
  QCOMPARE(seen, (QStringList{"a2", "a3", "a4"}));
  QCOMPARE(self_metric(c, "tally_annotations_dropped_total"), 2.0);
  QCOMPARE(self_metric(c, R"(tally_annotations_total{source="api"})"), 5.0);
  // The bound holds across a restart (the count is read back from the file).
  QCOMPARE(c.stop(), 0);
  QVERIFY(c.start({"--limit", "annotations_max=3"}));
  QCOMPARE(post(c.http_port(), {{"time", t + 5}, {"title", "a5"}}).status, 200);
  QCOMPARE(stored(c.http_port()), size_t(3));
  QCOMPARE(self_metric(c, "tally_annotations_dropped_total"), 1.0);
}

void TestAnnotations::backupAndRestoreKeepAnnotations() {
  const int64_t t = base_ + 6 * 3600;
  Answer a = post(port_, {{"time", t}, {"title", "backed up"}, {"tags", {{"k", "v"}}}});
  QCOMPARE(a.status, 200);
  QTemporaryDir tmp;
  const QString backup = tmp.path() + "/backup", restored = tmp.path() + "/restored";
  Answer b = send(port_, "POST", "/api/admin/backup?dir=" + backup.toStdString());
  QVERIFY2(b.status == 200, b.raw.c_str());
  QProcess p;
  p.start(TALLY_CLI_BIN, {"restore", backup, restored});
  QVERIFY(p.waitForFinished(30000));
  QCOMPARE(p.exitCode(), 0);
  CollectorProcess r(restored);
  QVERIFY(r.start());
  json got = list(r.http_port(), range(t, t + 1));
  QCOMPARE(got["annotations"].size(), size_t(1));
  QCOMPARE(got["annotations"][0]["id"], a.body["id"]);
  QCOMPARE(got["annotations"][0]["tags"], (json{{"k", "v"}}));
}

void TestAnnotations::dogstatsdEventsAreStored() {
  CollectorProcess c;
  QVERIFY(c.start({"--statsd", "127.0.0.1:0"}));
  QVERIFY(c.statsd_port() > 0);
  const int64_t ts = now_s() - 300;
  const std::string ts_text = std::to_string(ts);
  // The Agent's "\\n" in the text is a newline; in the title (one line) it becomes a space.
  send_udp(c.statsd_port(),
           "_e{18,17}:Deploy\\nweb 1.4 ok|rolled\\nout by ci|d:" + ts_text +
               "|h:web-1|p:low|t:warning|k:deploy-42|s:ci|#service:web,env:prod,flag\n"
               "_e{5,9}:title|text\n"  // lengths do not match: rejected
               "deploys.count:1|c\n"
               "_e{7,0}:no time|\n");
  json got;
  QVERIFY(eventually([&] {
    got = list(c.http_port(), "from=" + std::to_string(ts - 10) + "&to=now");
    return got.contains("annotations") && got["annotations"].size() == 2;
  }));
  json first = got["annotations"][0];
  first.erase("id");
  json want = {{"time", ts},
               {"title", "Deploy web 1.4 ok"},
               {"text", "rolled\nout by ci"},
               {"tags",
                {{"aggregation_key", "deploy-42"},
                 {"alert_type", "warning"},
                 {"env", "prod"},
                 {"flag", "true"},
                 {"host", "web-1"},
                 {"priority", "low"},
                 {"service", "web"},
                 {"source_type_name", "ci"}}},
               {"source", "dogstatsd"}};
  QCOMPARE(QString::fromStdString(first.dump()), QString::fromStdString(want.dump()));
  // Without d: the receive time (the collector's clock, unix seconds to the ms).
  json second = got["annotations"][1];
  QCOMPARE(second["title"].get<std::string>(), std::string("no time"));
  QCOMPARE(second["text"].get<std::string>(), std::string(""));
  QCOMPARE(second["tags"], json::object());
  QVERIFY(std::abs(second["time"].get<double>() - static_cast<double>(now_s())) < 30);
  // The listener's counters reach /metrics on the ingest thread's tick.
  QVERIFY(eventually([&] {
    return self_metric(c, R"(tally_statsd_rejected_total{reason="event"})") == 1.0 &&
           self_metric(c, "tally_statsd_events_total") == 2.0 &&
           self_metric(c, R"(tally_annotations_total{source="dogstatsd"})") == 2.0;
  }));
  // An event whose title cannot be stored (a control character) is counted, not stored.
  send_udp(c.statsd_port(),
           "_e{3,1}:a\x01"
           "b|x\n");
  QVERIFY(eventually([&] {
    return self_metric(c, R"(tally_annotations_rejected_total{source="dogstatsd"})") == 1.0;
  }));
  QCOMPARE(stored(c.http_port()), size_t(2));
}

void TestAnnotations::cliAnnotateAndList() {
  const int64_t t = base_ + 5 * 3600;
  const QString collector = "http://127.0.0.1:" + QString::number(port_);
  auto run = [&](const QStringList& args, QByteArray* out) {
    QProcess p;
    p.start(TALLY_CLI_BIN, QStringList{"--collector", collector} + args);
    if (!p.waitForFinished(20000)) return -1;
    *out = p.readAllStandardOutput();
    return p.exitCode();
  };
  QByteArray out;
  QCOMPARE(
      run({"annotate", "Deploy web 1.4", "--text", "rolled out", "--tag", "service=web", "--tag",
           "env=prod", "--time", QString::number(t) + ".5", "--end", QString::number(t + 60)},
          &out),
      0);
  bool ok = false;
  const qint64 id = out.trimmed().toLongLong(&ok);
  QVERIFY2(ok && id > 0, out.constData());
  QCOMPARE(run({"annotations", "--from", QString::number(t - 10), "--to", QString::number(t + 10),
                "--tag", "service=web", "--format", "json"},
               &out),
           0);
  json got = json::parse(out.toStdString(), nullptr, false);
  json want = {{"annotations",
                {{{"id", id},
                  {"time", static_cast<double>(t) + 0.5},
                  {"end", t + 60},
                  {"title", "Deploy web 1.4"},
                  {"text", "rolled out"},
                  {"tags", {{"env", "prod"}, {"service", "web"}}},
                  {"source", "api"}}}}};
  QCOMPARE(QString::fromStdString(got.dump()), QString::fromStdString(want.dump()));
  // The table names the columns and holds the title; CSV has a header and one row.
  QCOMPARE(run({"annotations", "--from", QString::number(t - 10), "--to", QString::number(t + 10)},
               &out),
           0);
  QVERIFY2(out.startsWith("ID") && out.contains("Deploy web 1.4"), out.constData());
  QCOMPARE(run({"annotations", "--from", QString::number(t - 10), "--to", QString::number(t + 10),
                "--format", "csv"},
               &out),
           0);
  QCOMPARE(out.count('\n'), 2);
  // Bad input is the collector's 400: exit code 3 (rejected), nothing printed on stdout.
  QCOMPARE(run({"annotate", "", "--time", QString::number(t)}, &out), 3);
  QVERIFY(out.isEmpty());
  QCOMPARE(run({"annotate", "x", "--tag", "novalue"}, &out), 1);  // usage
}

void TestAnnotations::tokensGuardWrites() {
  const std::string read = std::string(64, 'a'), admin = std::string(64, 'b');
  CollectorProcess c;
  const QString path = c.temp_path() + "/tokens.toml";
  {
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(QByteArray::fromStdString("http_read_tokens = [\"" + read +
                                      "\"]\nhttp_admin_tokens = [\"" + admin + "\"]\n"));
  }
  QVERIFY(c.start({"--config", path}));
  const int port = c.http_port();
  const json body = {{"title", "guarded"}};
  QCOMPARE(post(port, body).status, 401);
  QCOMPARE(post(port, body, read).status, 403);
  Answer ok = post(port, body, admin);
  QCOMPARE(ok.status, 200);
  QCOMPARE(send(port, "GET", "/api/annotations", {}, {}).status, 401);
  Answer listed = send(port, "GET", "/api/annotations", {}, read);
  QCOMPARE(listed.status, 200);
  QCOMPARE(listed.body["annotations"].size(), size_t(1));
  const std::string del = "/api/annotations/" + ok.body["id"].dump();
  QCOMPARE(send(port, "DELETE", del, {}, read).status, 403);
  QCOMPARE(send(port, "DELETE", del, {}, admin).status, 200);
}

QTEST_GUILESS_MAIN(TestAnnotations)
#include "tst_annotations.moc"
