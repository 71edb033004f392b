// Authentication (docs/SECURITY.md): CurveZMQ on ingest and the live stream with the ZAP
// handler, HTTP bearer tokens with read and admin scopes, the Host and Origin checks, refusal of
// non-loopback listeners without authentication, the StatsD source allowlist and HTTPS. Real
// collector processes on 127.0.0.1, the real SDK and real ZeroMQ sockets.
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QProcess>
#include <QtTest>
#include <fstream>

#include "auth/cidr.h"
#include "auth/http_guard.h"
#include "auth/security_config.h"
#include "collector_process.h"
#include "tally/client.h"
#include "tally/common/curve_keys.h"

using namespace tally;
using namespace tally::testing;
using tally::collector::HttpGuard;
using tally::collector::HttpGuardOptions;

namespace {

const std::string kReadToken = "read-token-0123456789abcdef";
const std::string kAdminToken = "admin-token-0123456789abcdef";

void write_text(const QString& path, const std::string& text) {
  std::ofstream out(path.toStdString(), std::ios::trunc);
  out << text;
}

// Series of `metric` known to the collector (0 when absent).
size_t series_of(const CollectorProcess& c, const std::string& metric) {
  json m = c.get("/api/metrics?search=" + metric);
  if (!m.contains("metrics")) return 0;
  for (const auto& e : m["metrics"])
    if (e.value("name", "") == metric) return e.value("series", 1);
  return 0;
}

// tally_auth_refused_total{listener="<l>"[,reason="<r>"]} from /metrics (-1 when missing).
double refused(const CollectorProcess& c, const std::string& listener,
               const std::string& reason = {}) {
  auto [status, body] = c.get_raw("/metrics");
  const std::string key = "tally_auth_refused_total{listener=\"" + listener + "\"" +
                          (reason.empty() ? "" : ",reason=\"" + reason + "\"") + "} ";
  const size_t at = body.find(key);
  if (status != 200 || at == std::string::npos) return -1;
  return std::stod(body.substr(at + key.size()));
}

// Sends `n` counts of `metric` through an SDK client with these keys and closes it.
void send_counts(const std::string& endpoint, const std::string& metric,
                 const CurveClientKeys& keys, std::chrono::milliseconds close_timeout) {
  ClientOptions o;
  o.endpoint = endpoint;
  o.curve_server_key = keys.server_public_key;
  o.curve_public_key = keys.public_key;
  o.curve_secret_key = keys.secret_key;
  o.close_timeout = close_timeout;
  Client client(o);
  client.count(metric, 5);
}

// Live frames a SUB socket with these keys receives within `ms` while `poke` runs.
int live_frames(const std::string& endpoint, const CurveClientKeys& keys, int ms,
                const std::function<void()>& poke) {
  zmq::context_t ctx(1);
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  if (!apply_curve_client(sub.handle(), keys)) return -1;
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(endpoint);
  int frames = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    poke();
    zmq::pollitem_t items[] = {{static_cast<void*>(sub), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(200));
    zmq::message_t m;
    while (sub.recv(m, zmq::recv_flags::dontwait)) ++frames;
  }
  return frames;
}

}  // namespace

class TestAuth : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;
  CurveKeyPair server_, allowed_, other_;
  std::unique_ptr<CollectorProcess> tokens_collector_, origin_collector_;  // shared by rows

  QString key_base(const char* name) { return dir_.path() + "/" + name; }
  CurveClientKeys keys_of(const CurveKeyPair& p) {
    return {server_.public_key, p.public_key, p.secret_key};
  }
  // A config file with CURVE on (allowed_ listed, plus the key directory) and HTTP tokens.
  QString curve_config(const std::string& extra = {}) {
    const QString path = dir_.path() + "/curve.toml";
    write_text(path, "curve_secret_key_file = \"" + key_base("server").toStdString() +
                         ".key_secret\"\n"
                         "curve_allowed_keys = [\"" +
                         allowed_.public_key + "\"]\n" + "curve_allowed_keys_dir = \"" +
                         (dir_.path() + "/clients").toStdString() + "\"\n" + extra);
    return path;
  }

 private slots:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    QVERIFY(QDir(dir_.path()).mkpath("clients"));
    // `tally keygen` writes the pairs (the CLI's own test checks its output).
    for (const char* name : {"server", "allowed", "other"}) {
      QProcess p;
      p.start(TALLY_CLI_BIN, {"keygen", key_base(name)});
      QVERIFY(p.waitForFinished(10000));
      QCOMPARE(p.exitCode(), 0);
    }
    auto read = [&](const char* name) {
      return read_curve_key_file((key_base(name) + ".key_secret").toStdString()).value();
    };
    server_ = read("server");
    allowed_ = read("allowed");
    other_ = read("other");
    QFileInfo secret(key_base("server") + ".key_secret");
    QCOMPARE(secret.permissions() & (QFile::ReadOther | QFile::ReadGroup),
             QFileDevice::Permissions());
    // A second keygen with the same name never overwrites a key.
    QProcess again;
    again.start(TALLY_CLI_BIN, {"keygen", key_base("server")});
    QVERIFY(again.waitForFinished(10000));
    QVERIFY(again.exitCode() != 0);
  }

  void cleanupTestCase() {
    tokens_collector_.reset();
    origin_collector_.reset();
  }

  // An SDK whose key is not allowed (or that has no key) is refused and its points are absent;
  // an allowed key gets through; refusals are counted.
  void curveIngestRefusesUnknownKeys() {
    CollectorProcess c;
    QVERIFY(c.start({"--config", curve_config()}));
    send_counts(c.ingest(), "auth.allowed", keys_of(allowed_), std::chrono::milliseconds(5000));
    send_counts(c.ingest(), "auth.other_key", keys_of(other_), std::chrono::milliseconds(1500));
    send_counts(c.ingest(), "auth.no_key", CurveClientKeys{}, std::chrono::milliseconds(1500));
    QVERIFY(eventually([&] { return series_of(c, "auth.allowed") == 1; }));
    QCOMPARE(series_of(c, "auth.other_key"), size_t(0));
    QCOMPARE(series_of(c, "auth.no_key"), size_t(0));
    QVERIFY(eventually([&] { return refused(c, "ingest", "key") >= 1; }));
  }

  // A plain (NULL mechanism) client fails the CURVE handshake before ZAP is asked: each such
  // handshake is still counted, as reason="handshake", on the socket it reached. One connection
  // attempt each (no reconnection): exactly one refusal each, and none counted as a key refusal.
  void curvePlainClientsAreCounted() {
    const QString log = dir_.path() + "/handshake.log";
    CollectorProcess c;
    QVERIFY(c.start({"--config", curve_config("log_file = \"" + log.toStdString() + "\"\n")}));
    QCOMPARE(refused(c, "ingest", "handshake"), 0.0);
    QCOMPARE(refused(c, "live", "handshake"), 0.0);
    zmq::context_t ctx(1);
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer), sub(ctx, zmq::socket_type::sub);
    for (zmq::socket_t* s : {&dealer, &sub}) {
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::reconnect_ivl, -1);  // one handshake, not one per 100 ms
    }
    sub.set(zmq::sockopt::subscribe, "");
    dealer.connect(c.ingest());
    sub.connect(c.live());
    (void)dealer.send(zmq::str_buffer("not a batch"), zmq::send_flags::dontwait);
    QVERIFY(eventually([&] { return refused(c, "ingest", "handshake") == 1; }));
    QVERIFY(eventually([&] { return refused(c, "live", "handshake") == 1; }));
    // A negative check: a second refusal (a retried handshake, a double count) would come within
    // half a second, so this wait is the test, not a wait for something to happen.
    QTest::qWait(500);
    QCOMPARE(refused(c, "ingest", "handshake"), 1.0);
    QCOMPARE(refused(c, "live", "handshake"), 1.0);
    QCOMPARE(refused(c, "ingest", "key"), 0.0);
    QCOMPARE(refused(c, "live", "key"), 0.0);
    // A client with a key ZAP refuses is a key refusal, not also a handshake one.
    zmq::socket_t keyed(ctx, zmq::socket_type::dealer);
    keyed.set(zmq::sockopt::linger, 0);
    keyed.set(zmq::sockopt::reconnect_ivl, -1);
    QVERIFY(apply_curve_client(keyed.handle(), keys_of(other_)));
    keyed.connect(c.ingest());
    (void)keyed.send(zmq::str_buffer("not a batch"), zmq::send_flags::dontwait);
    QVERIFY(eventually([&] { return refused(c, "ingest", "key") == 1; }));
    QTest::qWait(500);  // a negative check, as above: no second key refusal, no handshake one
    QCOMPARE(refused(c, "ingest", "key"), 1.0);
    QCOMPARE(refused(c, "ingest", "handshake"), 1.0);
    // The log says so, at the bounded rate of every refusal.
    auto logged = [&](const char* what) {
      QFile f(log);
      return f.open(QIODevice::ReadOnly) && f.readAll().contains(what);
    };
    QVERIFY(eventually([&] {
      return logged("event=auth_refused listener=ingest reason=handshake") &&
             logged("event=auth_refused listener=live reason=handshake");
    }));
  }

  // A key file added to the directory is allowed after SIGHUP (and not before).
  void curveKeysReloadOnSighup() {
    const QString log = dir_.path() + "/sighup.log";
    QFile::remove(log);
    auto reloaded = [&] {
      QFile f(log);
      return f.open(QIODevice::ReadOnly) && f.readAll().contains("event=reloaded");
    };
    CollectorProcess c;
    QVERIFY(c.start({"--config", curve_config("log_file = \"" + log.toStdString() + "\"\n")}));
    send_counts(c.ingest(), "auth.before_reload", keys_of(other_), std::chrono::milliseconds(1500));
    QVERIFY(!reloaded());
    QVERIFY(QFile::copy(key_base("other") + ".key", dir_.path() + "/clients/other.key"));
    ::kill(c.pid(), SIGHUP);
    QVERIFY(eventually(reloaded));  // the new key is allowed once the reload is logged
    send_counts(c.ingest(), "auth.after_reload", keys_of(other_), std::chrono::milliseconds(5000));
    QVERIFY(eventually([&] { return series_of(c, "auth.after_reload") == 1; }));
    QCOMPARE(series_of(c, "auth.before_reload"), size_t(0));
    QFile::remove(dir_.path() + "/clients/other.key");
  }

  // A subscriber without a key, or with a key not allowed, gets nothing from the live stream;
  // one with an allowed key gets the updates.
  void curveLiveRefusesSubscribersWithoutKey() {
    CollectorProcess c;
    QVERIFY(c.start({"--config", curve_config()}));
    ClientOptions o;
    o.endpoint = c.ingest();
    o.curve_server_key = server_.public_key;
    o.curve_public_key = allowed_.public_key;
    o.curve_secret_key = allowed_.secret_key;
    Client client(o);
    auto poke = [&] { client.count("auth.live", 1); };
    QVERIFY(live_frames(c.live(), keys_of(allowed_), 4000, poke) > 0);
    QCOMPARE(live_frames(c.live(), CurveClientKeys{}, 3000, poke), 0);
    QCOMPARE(live_frames(c.live(), keys_of(other_), 3000, poke), 0);
    QVERIFY(eventually([&] { return refused(c, "live", "key") >= 1; }));
  }

  // Missing or wrong token: 401; a read token reads (200) but cannot change state (403); an admin
  // token can. /healthz stays open for probes.
  void httpTokens_data() {
    QTest::addColumn<QString>("method");
    QTest::addColumn<QString>("path");
    QTest::addColumn<QString>("token");
    QTest::addColumn<int>("status");
    const QString read = QString::fromStdString(kReadToken);
    const QString admin = QString::fromStdString(kAdminToken);
    QTest::newRow("no token") << "GET"
                              << "/api/metrics"
                              << "" << 401;
    QTest::newRow("wrong token") << "GET"
                                 << "/api/metrics"
                                 << "not-a-token-0123456789" << 401;
    QTest::newRow("read token reads") << "GET"
                                      << "/api/metrics" << read << 200;
    QTest::newRow("read token, prom") << "GET"
                                      << "/api/v1/labels" << read << 200;
    QTest::newRow("read token, PromQL POST") << "POST"
                                             << "/api/v1/labels" << read << 200;
    QTest::newRow("read token, /metrics") << "GET"
                                          << "/metrics" << read << 200;
    QTest::newRow("no token, /metrics") << "GET"
                                        << "/metrics"
                                        << "" << 401;
    QTest::newRow("admin token reads") << "GET"
                                       << "/api/metrics" << admin << 200;
    QTest::newRow("read token cannot reload") << "POST"
                                              << "/api/admin/reload" << read << 403;
    QTest::newRow("no token cannot reload") << "POST"
                                            << "/api/admin/reload"
                                            << "" << 401;
    QTest::newRow("admin token reloads") << "POST"
                                         << "/api/admin/reload" << admin << 200;
    QTest::newRow("healthz without token") << "GET"
                                           << "/healthz"
                                           << "" << 200;
  }
  void httpTokens() {
    // One collector for every row; stopped in cleanupTestCase() (also after a failed row).
    auto& c = tokens_collector_;
    if (!c) {
      const QString path = dir_.path() + "/tokens.toml";
      write_text(path, "http_read_tokens = [\"" + kReadToken + "\"]\nhttp_admin_tokens = [\"" +
                           kAdminToken + "\"]\n");
      c = std::make_unique<CollectorProcess>();
      QVERIFY(c->start({"--config", path}));
    }
    QFETCH(QString, method);
    QFETCH(QString, path);
    QFETCH(QString, token);
    QFETCH(int, status);
    httplib::Client h("127.0.0.1", c->http_port());
    httplib::Headers headers;
    if (!token.isEmpty()) headers.emplace("Authorization", "Bearer " + token.toStdString());
    auto r = method == "GET" ? h.Get(path.toStdString().c_str(), headers)
                             : h.Post(path.toStdString().c_str(), headers, "", "text/plain");
    QVERIFY(r);
    QCOMPARE(r->status, status);
    if (status == 401) QCOMPARE(r->get_header_value("WWW-Authenticate"), "Bearer realm=\"tally\"");
    if (QByteArray(QTest::currentDataTag()) == "healthz without token") {
      // The last row: refusals were counted.
      auto m = h.Get("/metrics", {{"Authorization", "Bearer " + kReadToken}});
      QVERIFY(m);
      const std::string key = "tally_auth_refused_total{listener=\"http\",reason=\"request\"} ";
      const size_t at = m->body.find(key);
      QVERIFY2(at != std::string::npos, m->body.c_str());
      QVERIFY(std::stod(m->body.substr(at + key.size())) > 0);
      c.reset();
    }
  }

  // A browser page cannot read or post: a foreign Host (DNS rebinding) or Origin is refused,
  // with or without tokens; the loopback names and a listed Origin pass.
  void hostAndOrigin_data() {
    QTest::addColumn<QString>("method");
    QTest::addColumn<QString>("header");
    QTest::addColumn<QString>("value");
    QTest::addColumn<int>("status");
    QTest::newRow("plain") << "GET"
                           << ""
                           << "" << 200;
    QTest::newRow("Host localhost") << "GET"
                                    << "Host"
                                    << "localhost:7071" << 200;
    QTest::newRow("Host rebinding") << "GET"
                                    << "Host"
                                    << "attacker.example:7071" << 403;
    QTest::newRow("Host rebinding, no port") << "GET"
                                             << "Host"
                                             << "attacker.example" << 403;
    QTest::newRow("foreign Origin GET") << "GET"
                                        << "Origin"
                                        << "https://attacker.example" << 403;
    QTest::newRow("foreign Origin POST") << "POST"
                                         << "Origin"
                                         << "https://attacker.example" << 403;
    QTest::newRow("null Origin") << "POST"
                                 << "Origin"
                                 << "null" << 403;
    QTest::newRow("cross-site fetch") << "GET"
                                      << "Sec-Fetch-Site"
                                      << "cross-site" << 403;
    QTest::newRow("listed Origin") << "GET"
                                   << "Origin"
                                   << "https://grafana.example" << 200;
  }
  void hostAndOrigin() {
    auto& c = origin_collector_;
    if (!c) {
      const QString path = dir_.path() + "/origin.toml";
      write_text(path, "http_allowed_origins = [\"https://grafana.example\"]\n");
      c = std::make_unique<CollectorProcess>();
      QVERIFY(c->start({"--config", path}));
    }
    QFETCH(QString, method);
    QFETCH(QString, header);
    QFETCH(QString, value);
    QFETCH(int, status);
    httplib::Client h("127.0.0.1", c->http_port());
    httplib::Headers headers;
    if (!header.isEmpty()) headers.emplace(header.toStdString(), value.toStdString());
    auto r = method == "GET"
                 ? h.Get("/api/v1/query?query=1", headers)
                 : h.Post("/api/v1/query", headers, "query=1", "application/x-www-form-urlencoded");
    QVERIFY(r);
    QCOMPARE(r->status, status);
    if (QByteArray(QTest::currentDataTag()) == "listed Origin") c.reset();
  }

  // Each listener on a non-loopback address needs its own authentication or its own
  // allow_insecure; one listener's allow_insecure never opens another.
  void nonLoopbackBindsNeedAuth_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("config");
    QTest::addColumn<bool>("starts");
    QTest::newRow("ingest 0.0.0.0 plain")
        << QStringList{"--ingest", "tcp://0.0.0.0:*"} << "" << false;
    QTest::newRow("ingest 0.0.0.0, allow_insecure")
        << QStringList{"--ingest", "tcp://0.0.0.0:*"} << "ingest_allow_insecure = true\n"
        << true;
    QTest::newRow("ingest 0.0.0.0, http's allow_insecure")
        << QStringList{"--ingest", "tcp://0.0.0.0:*"} << "http_allow_insecure = true\n"
        << false;
    QTest::newRow("ingest * plain") << QStringList{"--ingest", "tcp://*:*"} << "" << false;
    QTest::newRow("live 0.0.0.0 plain") << QStringList{"--live", "tcp://0.0.0.0:*"} << "" << false;
    QTest::newRow("http 0.0.0.0 without tokens")
        << QStringList{"--http", "0.0.0.0:0"} << "" << false;
    QTest::newRow("http 0.0.0.0 with tokens")
        << QStringList{"--http", "0.0.0.0:0"}
        << QString::fromStdString("http_read_tokens = [\"" + kReadToken + "\"]\n") << true;
    QTest::newRow("statsd 0.0.0.0 open") << QStringList{"--statsd", "0.0.0.0:0"} << "" << false;
    QTest::newRow("statsd 0.0.0.0, sources")
        << QStringList{"--statsd", "0.0.0.0:0"} << "statsd_allowed_sources = [\"10.0.0.0/8\"]\n"
        << true;
    QTest::newRow("loopback plain (the default)") << QStringList{} << "" << true;
  }
  void nonLoopbackBindsNeedAuth() {
    QFETCH(QStringList, args);
    QFETCH(QString, config);
    QFETCH(bool, starts);
    const QString path = dir_.path() + "/bind.toml";
    write_text(path, config.toStdString());
    if (starts) {
      CollectorProcess c;
      QVERIFY(c.start(QStringList{"--config", path} + args));
      return;
    }
    // Refused before anything listens: exit code 2 (a configuration error) naming the fix.
    QTemporaryDir data;
    QProcess p;
    p.start(TALLY_COLLECTOR_BIN,
            QStringList{"--data-dir", data.path(), "--http", "127.0.0.1:0", "--ingest",
                        "tcp://127.0.0.1:*", "--live", "tcp://127.0.0.1:*", "--statsd", "off",
                        "--config", path} +
                args);
    QVERIFY(p.waitForFinished(10000));
    QCOMPARE(p.exitCode(), 2);
    const QByteArray err = p.readAllStandardError();
    QVERIFY2(err.contains("beyond loopback, without authentication"), err.constData());
    QVERIFY2(err.contains("allow_insecure"), err.constData());
  }

  // Rotation: a new token added to the file and reloaded (admin scope) works; the removed one
  // stops working; nothing restarts.
  void tokenRotationByReload() {
    const QString path = dir_.path() + "/rotate.toml";
    const std::string fresh = "fresh-token-0123456789abcdef";
    write_text(path, "http_read_tokens = [\"" + kReadToken + "\"]\nhttp_admin_tokens = [\"" +
                         kAdminToken + "\"]\n");
    CollectorProcess c;
    QVERIFY(c.start({"--config", path}));
    httplib::Client h("127.0.0.1", c.http_port());
    auto status = [&](const std::string& token) {
      auto r = h.Get("/api/metrics", {{"Authorization", "Bearer " + token}});
      return r ? r->status : 0;
    };
    QCOMPARE(status(kReadToken), 200);
    QCOMPARE(status(fresh), 401);
    write_text(path, "http_read_tokens = [\"" + fresh + "\"]\nhttp_admin_tokens = [\"" +
                         kAdminToken + "\"]\n");
    auto r =
        h.Post("/api/admin/reload", {{"Authorization", "Bearer " + kAdminToken}}, "", "text/plain");
    QVERIFY(r);
    QCOMPARE(r->status, 200);
    QCOMPARE(status(fresh), 200);
    QCOMPARE(status(kReadToken), 401);
    // A file that does not load changes nothing.
    write_text(path, "http_read_tokens = \"not a list\"\n");
    r = h.Post("/api/admin/reload", {{"Authorization", "Bearer " + kAdminToken}}, "", "text/plain");
    QVERIFY(r);
    QCOMPARE(r->status, 400);
    QCOMPARE(status(fresh), 200);
  }

  // The guard's decisions, as a table (no process).
  void guardTable_data() {
    QTest::addColumn<QString>("method");
    QTest::addColumn<QString>("path");
    QTest::addColumn<QString>("host");
    QTest::addColumn<QString>("token");
    QTest::addColumn<int>("status");
    const QString read = QString::fromStdString(kReadToken);
    const QString admin = QString::fromStdString(kAdminToken);
    QTest::newRow("[::1] with port") << "GET"
                                     << "/api/metrics"
                                     << "[::1]:7071" << read << 0;
    QTest::newRow("LOCALHOST") << "GET"
                               << "/api/metrics"
                               << "LOCALHOST:7071" << read << 0;
    QTest::newRow("listen host") << "GET"
                                 << "/api/metrics"
                                 << "10.1.2.3:7071" << read << 0;
    QTest::newRow("suffix trick") << "GET"
                                  << "/api/metrics"
                                  << "127.0.0.1.attacker.example" << read << 403;
    QTest::newRow("no Host (HTTP/1.0)") << "GET"
                                        << "/api/metrics"
                                        << "" << read << 0;
    QTest::newRow("Basic, not Bearer") << "GET"
                                       << "/api/metrics"
                                       << "localhost"
                                       << "" << 401;
    QTest::newRow("DELETE needs admin") << "DELETE"
                                        << "/api/metrics"
                                        << "localhost" << read << 403;
    QTest::newRow("PUT with admin") << "PUT"
                                    << "/api/x"
                                    << "localhost" << admin << 0;
    QTest::newRow("admin path GET needs admin") << "GET"
                                                << "/api/admin/x"
                                                << "localhost" << read << 403;
    QTest::newRow("healthz POST is not open") << "POST"
                                              << "/healthz"
                                              << "localhost"
                                              << "" << 401;
  }
  void guardTable() {
    QFETCH(QString, method);
    QFETCH(QString, path);
    QFETCH(QString, host);
    QFETCH(QString, token);
    QFETCH(int, status);
    HttpGuardOptions o;
    o.read_tokens = {kReadToken};
    o.admin_tokens = {kAdminToken};
    o.listen_host = "10.1.2.3";
    HttpGuard g(o);
    const std::string m = method.toStdString(), p = path.toStdString(), h = host.toStdString();
    const std::string auth =
        token.isEmpty() ? "Basic dXNlcjpwYXNz" : "Bearer " + token.toStdString();
    QCOMPARE(g.check({m, p, h, "", "", auth}).status, status);
  }

  // Keys that are incomplete never fall back to plain: the SDK sends nothing and says why.
  void sdkWithIncompleteKeysSendsNothing() {
    ClientOptions o;
    o.endpoint = "tcp://127.0.0.1:1";
    o.curve_server_key = server_.public_key;
    o.close_timeout = std::chrono::milliseconds(100);
    Client client(o);
    client.count("auth.incomplete", 1);
    QTRY_VERIFY_WITH_TIMEOUT(QString::fromStdString(client.last_error()).contains("CURVE"), 5000);
  }

  // StatsD datagrams from a source outside statsd_allowed_sources are dropped and counted.
  void statsdSourceAllowlist() {
    for (const auto& [nets, accepted] : {std::pair{std::string("\"10.0.0.0/8\""), false},
                                         std::pair{std::string("\"127.0.0.0/8\""), true}}) {
      const QString path = dir_.path() + "/statsd.toml";
      write_text(path, "statsd_allowed_sources = [" + nets + "]\n");
      CollectorProcess c;
      QVERIFY(c.start({"--config", path, "--statsd", "127.0.0.1:0"}));
      const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(static_cast<uint16_t>(c.statsd_port()));
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      const std::string line = "auth.statsd:1|c";
      if (accepted) {
        QVERIFY(eventually([&] {
          ::sendto(fd, line.data(), line.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
          return series_of(c, "auth.statsd") == 1;
        }));
      } else {
        QVERIFY(eventually([&] {
          ::sendto(fd, line.data(), line.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
          return refused(c, "statsd", "source") >= 3;
        }));
        QCOMPARE(series_of(c, "auth.statsd"), size_t(0));
      }
      ::close(fd);
    }
  }

  // HTTPS: with a certificate and key the API answers TLS only.
  void httpsWithCertificate() {
    const QString cert = dir_.path() + "/cert.pem", key = dir_.path() + "/key.pem";
    QProcess ssl;
    ssl.start("openssl", {"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                          "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key,
                          "-out", cert});
    QVERIFY(ssl.waitForFinished(30000));
    QCOMPARE(ssl.exitCode(), 0);
    const QString path = dir_.path() + "/tls.toml";
    write_text(path, "http_tls_cert_file = \"" + cert.toStdString() + "\"\nhttp_tls_key_file = \"" +
                         key.toStdString() + "\"\n");
    CollectorProcess c;
    QVERIFY(c.start({"--config", path}));
    httplib::SSLClient s("127.0.0.1", c.http_port());
    s.set_ca_cert_path(cert.toStdString().c_str());
    s.enable_server_certificate_verification(true);
    auto r = s.Get("/api/metrics");
    QVERIFY2(r, httplib::to_string(r.error()).c_str());
    QCOMPARE(r->status, 200);
    httplib::Client plain("127.0.0.1", c.http_port());
    plain.set_read_timeout(3, 0);
    auto p = plain.Get("/api/metrics");
    QVERIFY(!p || p->status != 200);
  }

  // The pieces, as tables.
  void cidr_data() {
    QTest::addColumn<QString>("net");
    QTest::addColumn<QString>("addr");
    QTest::addColumn<bool>("inside");
    QTest::newRow("v4 /8 in") << "10.0.0.0/8"
                              << "10.200.1.2" << true;
    QTest::newRow("v4 /8 out") << "10.0.0.0/8"
                               << "11.0.0.1" << false;
    QTest::newRow("v4 host") << "192.168.1.7"
                             << "192.168.1.7" << true;
    QTest::newRow("v4 host other") << "192.168.1.7"
                                   << "192.168.1.8" << false;
    QTest::newRow("v4 /23 edge") << "172.16.2.0/23"
                                 << "172.16.3.255" << true;
    QTest::newRow("v4 /0") << "0.0.0.0/0"
                           << "8.8.8.8" << true;
    QTest::newRow("v6 /8 in") << "fd00::/8"
                              << "fd12::1" << true;
    QTest::newRow("v6 /8 out") << "fd00::/8"
                               << "fe80::1" << false;
    QTest::newRow("v4 net, mapped v6 sender") << "127.0.0.0/8"
                                              << "::ffff:127.0.0.1" << true;
  }
  void cidr() {
    QFETCH(QString, net);
    QFETCH(QString, addr);
    QFETCH(bool, inside);
    auto n = collector::parse_cidr(net.toStdString());
    QVERIFY(n);
    auto a = collector::parse_cidr(addr.toStdString());
    QVERIFY(a);
    QCOMPARE(n->contains(a->addr), inside);
  }
  void cidrRejects() {
    for (const char* bad : {"10.0.0.0/33", "fd00::/129", "10.0.0/8", "example.com", "10.0.0.0/x"})
      QVERIFY2(!collector::parse_cidr(bad), bad);
  }
  void loopbackEndpoints() {
    using collector::is_local_zmq_endpoint;
    QVERIFY(is_local_zmq_endpoint("tcp://127.0.0.1:7070"));
    QVERIFY(is_local_zmq_endpoint("tcp://localhost:7070"));
    QVERIFY(is_local_zmq_endpoint("tcp://[::1]:7070"));
    QVERIFY(is_local_zmq_endpoint("ipc:///run/tally/ingest"));
    QVERIFY(!is_local_zmq_endpoint("tcp://0.0.0.0:7070"));
    QVERIFY(!is_local_zmq_endpoint("tcp://*:7070"));
    QVERIFY(!is_local_zmq_endpoint("tcp://eth0:7070"));
    QVERIFY(!is_local_zmq_endpoint("tcp://10.1.2.3:7070"));
    QVERIFY(!is_local_zmq_endpoint("tcp://[::]:7070"));
    QVERIFY(collector::is_loopback_host("127.0.0.1"));
    QVERIFY(!collector::is_loopback_host("0.0.0.0"));
    QVERIFY(!collector::is_loopback_host("127.example.com"));
  }
  void curveClientKeys() {
    // Incomplete keys are an error, not a silent plain connection.
    QVERIFY(!resolve_curve_client_keys({server_.public_key, "", ""}));
    QVERIFY(
        !resolve_curve_client_keys({server_.public_key, allowed_.public_key, other_.secret_key}));
    QVERIFY(!resolve_curve_client_keys({"short", allowed_.public_key, allowed_.secret_key}));
    QVERIFY(resolve_curve_client_keys(keys_of(allowed_)));
    qputenv("TALLY_CURVE_SERVER_KEY", QByteArray::fromStdString(server_.public_key));
    qputenv("TALLY_CURVE_KEY_FILE", (key_base("allowed") + ".key_secret").toUtf8());
    auto fromEnv = resolve_curve_client_keys({});
    qunsetenv("TALLY_CURVE_SERVER_KEY");
    qunsetenv("TALLY_CURVE_KEY_FILE");
    QVERIFY(fromEnv);
    QCOMPARE(fromEnv->public_key, allowed_.public_key);
    QCOMPARE(fromEnv->secret_key, allowed_.secret_key);
    QCOMPARE(fromEnv->server_public_key, server_.public_key);
  }
};

QTEST_GUILESS_MAIN(TestAuth)
#include "tst_auth.moc"
