// Secrets of data sources and new hosts (docs/SECURITY.md, "Secrets of data sources" and "A new
// host asks first"): a secret header value is kept in the secret store, never in the dashboard
// file; the store's file (the fallback where no keychain service answers, as here) is 0600; a
// dashboard read back sends the header; an old file with the value inline still opens and loses
// it at the next save. A source with headers pointing at a host not approved asks first (the real
// dialog, answered by a timer) and the headless export refuses it without --allow-host.
// The data source is a real HTTP server on 127.0.0.1 (a QTcpServer) that records each request.
#include <sys/stat.h>

#include <QApplication>
#include <QLabel>
#include <QProcess>
#include <QPushButton>
#include <QSettings>
#include <QStatusBar>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QtTest>

#include "core/dashboard.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "data_sources.h"
#include "data_sources_dialog.h"
#include "host_approval.h"
#include "main_window.h"
#include "panel_controller.h"
#include "panel_widget.h"
#include "resources.h"
#include "secret_store.h"

using namespace tally::dash;

namespace {

// Answers every request with an empty Prometheus matrix and keeps what it was sent.
class RecordingServer : public QObject {
 public:
  RecordingServer() {
    m_server.listen(QHostAddress::LocalHost);
    connect(&m_server, &QTcpServer::newConnection, this, [this] {
      QTcpSocket* s = m_server.nextPendingConnection();
      auto buffer = std::make_shared<QByteArray>();
      connect(s, &QTcpSocket::readyRead, s, [this, s, buffer] {
        *buffer += s->readAll();
        if (!buffer->contains("\r\n\r\n")) return;
        requests << *buffer;
        const QByteArray body =
            R"({"status":"success","data":{"resultType":"matrix","result":[]}})";
        s->write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                 QByteArray::number(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
        s->disconnectFromHost();
      });
    });
  }
  QString url() const { return QStringLiteral("http://127.0.0.1:%1").arg(m_server.serverPort()); }
  QString hostPort() const { return QStringLiteral("127.0.0.1:%1").arg(m_server.serverPort()); }
  QList<QByteArray> requests;

 private:
  QTcpServer m_server;
};

// A dashboard with one panel on one source that sends an Authorization and a tenant header.
Dashboard dashboardOn(const QString& url, const std::string& token) {
  Dashboard d;
  d.title = "secrets";
  d.sources.push_back({"auth",
                       url.toStdString(),
                       {{"Authorization", "Bearer " + token, true}, {"X-Scope-OrgID", "team-a"}},
                       10});
  PanelSpec p;
  p.source = "auth";
  p.metric = "up";
  p.fn = tally::Fn::kMax;
  d.panels.push_back(p);
  return d;
}

QByteArray readAll(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

void writeText(const QString& path, const QByteArray& text) {
  QFile f(path);
  QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
  f.write(text);
}

// Answers the host approval dialog whenever it is up: notes its text, then Allow or Don't send.
class DialogAnswerer : public QObject {
 public:
  explicit DialogAnswerer(bool allow) : m_allow(allow) {
    m_timer.setInterval(20);
    connect(&m_timer, &QTimer::timeout, this, [this] {
      auto* d = qobject_cast<HostApprovalDialog*>(QApplication::activeModalWidget());
      if (!d || !d->isVisible()) return;
      seen << d->message()->text();
      (m_allow ? d->allowButton() : d->dontSendButton())->click();
    });
    m_timer.start();
  }
  QStringList seen;

 private:
  bool m_allow;
  QTimer m_timer;
};

// Runs tally-dashboard without blocking this event loop (the test's server answers it).
struct Run {
  int code = -1;
  QString err;
};
Run runDashboard(const QStringList& args, const QString& configHome) {
  QProcess p;
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.insert("QT_QPA_PLATFORM", "offscreen");
  env.insert("XDG_CONFIG_HOME", configHome);  // its QSettings and secret store
  env.insert("TALLY_SECRET_STORE", "file");
  p.setProcessEnvironment(env);
  p.start(TALLY_DASHBOARD_BIN, args);
  if (!p.waitForStarted(10000)) return {};
  QElapsedTimer t;
  t.start();
  while (p.state() != QProcess::NotRunning && t.elapsed() < 60000)
    QTest::qWait(20);  // also serves the RecordingServer
  return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1,
          QString::fromUtf8(p.readAllStandardError())};
}

constexpr const char* kApprovals = "security/approved_sources";

}  // namespace

class TestDashboardSecrets : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() {
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName("TallyTest");
    QCoreApplication::setApplicationName("tst_dashboard_secrets");
    qputenv("TALLY_SECRET_STORE", "file");
    initTallyResources();
    QVERIFY(m_dir.isValid());
  }
  void init() {
    QFile::remove(SecretStore::defaultFilePath());
    QSettings().clear();
  }

  // No keychain service (no D-Bus session here): the store says it is the 0600 file, and why.
  void withoutKeychainServiceTheFileIsUsed() {
    QCOMPARE(SecretStore::instance().backend(), SecretStore::Backend::File);
    QCOMPARE(SecretStore::instance().filePath(), SecretStore::defaultFilePath());
    QCOMPARE(SecretStore::instance().reason(), QStringLiteral("TALLY_SECRET_STORE=file"));
    // The automatic choice, with a session bus that is not there, falls back the same way.
    qunsetenv("TALLY_SECRET_STORE");
    const QByteArray bus = qgetenv("DBUS_SESSION_BUS_ADDRESS");
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/tally-test-bus");
    std::unique_ptr<SecretStore> chosen = SecretStore::choose();
    qputenv("TALLY_SECRET_STORE", "file");
    if (bus.isEmpty())
      qunsetenv("DBUS_SESSION_BUS_ADDRESS");
    else
      qputenv("DBUS_SESSION_BUS_ADDRESS", bus);
    QCOMPARE(chosen->backend(), SecretStore::Backend::File);
    QVERIFY2(chosen->reason().startsWith("no keychain service answered"),
             qPrintable(chosen->reason()));
    // The Data sources dialog shows where secret values go.
    DataSourcesDialog dialog({}, {});
    QVERIFY2(dialog.secretStoreLabel()->text().contains(SecretStore::defaultFilePath()),
             qPrintable(dialog.secretStoreLabel()->text()));
  }

  // Saved: the file holds a reference, the store (0600, in a 0700 folder) the value. Read back:
  // the request carries the header.
  void secretHeaderLeavesTheFileAndIsSentAfterLoad() {
    RecordingServer server;
    const QString path = m_dir.filePath("secret.json");
    QString error;
    int stored = -1;
    QVERIFY2(DashboardDocument::write(dashboardOn(server.url(), "s3cr3t-token-42"), path, &error,
                                      &stored),
             qPrintable(error));
    QCOMPARE(stored, 1);
    const QByteArray file = readAll(path);
    QVERIFY2(!file.contains("s3cr3t-token-42"), file.constData());
    QVERIFY2(file.contains(R"("Authorization": {
          "secret": "keychain:auth/Authorization"
        })"),
             file.constData());
    QVERIFY(file.contains(R"("X-Scope-OrgID": "team-a")"));  // not a secret: stays in the file

    struct stat st {};
    QCOMPARE(::stat(QFile::encodeName(SecretStore::defaultFilePath()).constData(), &st), 0);
    QCOMPARE(st.st_mode & 0777, mode_t(0600));
    QCOMPARE(
        ::stat(
            QFile::encodeName(QFileInfo(SecretStore::defaultFilePath()).absolutePath()).constData(),
            &st),
        0);
    QCOMPARE(st.st_mode & 0777, mode_t(0700));
    QVERIFY(readAll(SecretStore::defaultFilePath()).contains("s3cr3t-token-42"));

    Dashboard back;
    DashboardDocument::SecretNotes notes;
    QVERIFY2(DashboardDocument::read(path, &back, &error, &notes), qPrintable(error));
    QVERIFY(notes.inFile.isEmpty() && notes.missing.isEmpty());
    QVERIFY(back == dashboardOn(server.url(), "s3cr3t-token-42"));
    DataSources sources;
    sources.setSources(back.sources);
    PanelController c(nullptr, nullptr);
    c.setDataSources(&sources);
    QSignalSpy done(&c, &PanelController::queryFinished);
    c.setSpec(back.panels[0]);
    QVERIFY(done.wait(10000));
    QCOMPARE(server.requests.size(), 1);
    QVERIFY2(server.requests[0].contains("\r\nAuthorization: Bearer s3cr3t-token-42\r\n"),
             server.requests[0].constData());
    QVERIFY(server.requests[0].contains("\r\nX-Scope-OrgID: team-a\r\n"));
  }

  // The same file pointed at another host finds no secret there (the store's key holds the
  // origin): nothing is sent, the panel says what to do.
  void secretOfAnotherHostIsNotFound() {
    RecordingServer server, other;
    const QString path = m_dir.filePath("moved.json");
    QString error;
    QVERIFY(DashboardDocument::write(dashboardOn(server.url(), "for-server-only"), path, &error));
    QByteArray text = readAll(path);
    text.replace(server.url().toUtf8(), other.url().toUtf8());
    writeText(path, text);
    Dashboard d;
    DashboardDocument::SecretNotes notes;
    QVERIFY2(DashboardDocument::read(path, &d, &error, &notes), qPrintable(error));
    QCOMPARE(notes.missing, QStringList{"auth: Authorization"});
    DataSources sources;
    sources.setSources(d.sources);
    PanelController c(nullptr, nullptr);
    c.setDataSources(&sources);
    QSignalSpy done(&c, &PanelController::queryFinished);
    c.setSpec(d.panels[0]);
    QVERIFY(done.wait(10000));
    QVERIFY2(c.error().contains("header Authorization: its secret value is not in this machine's "
                                "secret store"),
             qPrintable(c.error()));
    QTest::qWait(200);  // a negative check: a request sent anyway would have arrived by now
    QCOMPARE(other.requests.size(), 0);
    QCOMPARE(server.requests.size(), 0);
  }

  // A file written before secrets moved out (the token inline) opens and works; the window says
  // the value moves out, marks the dashboard modified, and the save moves it.
  void oldFileWithInlineSecretMigratesOnSave() {
    RecordingServer server;
    QSettings().setValue(kApprovals, QStringList{server.hostPort() + " auth"});
    const QString path = m_dir.filePath("old.json");
    writeText(path, QStringLiteral(R"({"format": "tally-dashboard", "version": 2, "title": "old",
      "sources": [{"name": "auth", "type": "prometheus", "url": "%1",
                   "headers": {"Authorization": "Bearer inline-0ld-token"}}],
      "panels": [{"source": "auth", "metric": "up", "fn": "max"}]})")
                        .arg(server.url())
                        .toUtf8());
    MainWindowOptions o;
    o.collector = QUrl("http://127.0.0.1:1");
    o.live = "tcp://127.0.0.1:1";
    MainWindow w(o);
    QVERIFY(w.openDashboard(path));
    QVERIFY(w.document()->isModified());
    QVERIFY2(w.statusBar()->currentMessage().contains("holds secret header values itself (auth: "
                                                      "Authorization)"),
             qPrintable(w.statusBar()->currentMessage()));
    QTRY_COMPARE_WITH_TIMEOUT(server.requests.size(), 1, 10000);
    QVERIFY(server.requests[0].contains("\r\nAuthorization: Bearer inline-0ld-token\r\n"));
    QVERIFY(readAll(path).contains("inline-0ld-token"));  // opening changes nothing on disk

    QVERIFY(w.saveDashboard(path));
    QVERIFY2(w.statusBar()->currentMessage().startsWith(
                 "Moved the secret header values (auth: Authorization) out of the dashboard file"),
             qPrintable(w.statusBar()->currentMessage()));
    const QByteArray saved = readAll(path);
    QVERIFY2(!saved.contains("inline-0ld-token"), saved.constData());
    QVERIFY(saved.contains("keychain:auth/Authorization"));
    QVERIFY(readAll(SecretStore::defaultFilePath()).contains("inline-0ld-token"));
  }

  // A dashboard file whose source sends headers to a host not approved asks first: Allow sends
  // (and is remembered per host and source), Don't send sends nothing (and asks again next time).
  void newHostAsksBeforeSending_data() {
    QTest::addColumn<bool>("allow");
    QTest::newRow("allow") << true;
    QTest::newRow("don't send") << false;
  }
  void newHostAsksBeforeSending() {
    QFETCH(bool, allow);
    RecordingServer server;
    const QString path = m_dir.filePath("new-host.json");
    Dashboard d = dashboardOn(server.url(), "approve-me");
    d.sources[0].headers[0].value = "Bearer ${TALLY_TEST_TOKEN}";  // stays in the file
    qputenv("TALLY_TEST_TOKEN", "from-the-environment");
    QString error;
    QVERIFY(DashboardDocument::write(d, path, &error));
    MainWindowOptions o;
    o.collector = QUrl("http://127.0.0.1:1");
    o.live = "tcp://127.0.0.1:1";
    MainWindow w(o);
    DialogAnswerer answer(allow);
    QVERIFY(w.openDashboard(path));
    QCOMPARE(answer.seen.size(), 1);
    const QString& text = answer.seen[0];
    QVERIFY2(text.contains(server.hostPort()) && text.contains("“auth”") &&
                 text.contains("Authorization, X-Scope-OrgID"),
             qPrintable(text));
    const QStringList approvals = QSettings().value(kApprovals).toStringList();
    PanelWidget* panel = w.canvas()->panels().value(0);
    QVERIFY(panel);
    if (allow) {
      QCOMPARE(approvals, QStringList{server.hostPort() + " auth"});
      QTRY_COMPARE_WITH_TIMEOUT(server.requests.size(), 1, 10000);
      QVERIFY(server.requests[0].contains("\r\nAuthorization: Bearer from-the-environment\r\n"));
    } else {
      QVERIFY(approvals.isEmpty());
      QTRY_VERIFY_WITH_TIMEOUT(!panel->controller()->error().isEmpty(), 10000);
      QVERIFY2(
          panel->controller()->error().contains(
              "nothing sent: you chose not to send this source's headers to " + server.hostPort()),
          qPrintable(panel->controller()->error()));
      QTest::qWait(300);  // a negative check: a request sent anyway would have arrived by now
      QCOMPARE(server.requests.size(), 0);
    }
    // Opened again: asked again only if it was not allowed.
    QVERIFY(w.openDashboard(path));
    QCOMPARE(answer.seen.size(), allow ? 1 : 2);
    qunsetenv("TALLY_TEST_TOKEN");
  }

  // Headless: nobody to ask. An unapproved host is refused before anything is sent (exit 77)
  // unless --allow-host names it or the window approved it; the secret comes from the store.
  void headlessExportRefusesNewHost_data() {
    QTest::addColumn<QString>("how");
    QTest::addColumn<int>("exitCode");
    QTest::newRow("no flag") << "" << 77;
    QTest::newRow("--allow-host other") << "other" << 77;
    QTest::newRow("--allow-host host") << "host" << 0;
    QTest::newRow("--allow-host host:port") << "hostport" << 0;
    QTest::newRow("approved in the window") << "approved" << 0;
  }
  void headlessExportRefusesNewHost() {
    QFETCH(QString, how);
    QFETCH(int, exitCode);
    RecordingServer server;
    QTemporaryDir config;
    // The child's own secret store (same file layout as this process's, under its config home).
    SecretStore childStore(SecretStore::Backend::File,
                           config.filePath("Tally/tally-dashboard/secrets.json"), "test");
    const Dashboard d = dashboardOn(server.url(), "from-the-store");
    QVERIFY(childStore.write(secretStoreKey(d.sources[0], d.sources[0].headers[0]),
                             "Bearer from-the-store"));
    const QString path = m_dir.filePath("headless.json");
    writeText(path, QByteArray::fromStdString(serializeDashboard(d)));
    if (how == "approved") {
      QSettings child(config.filePath("Tally/tally-dashboard.conf"), QSettings::IniFormat);
      child.setValue(kApprovals, QStringList{server.hostPort() + " auth"});
    }
    QStringList args = {"--dashboard", path, "--export-csv", m_dir.filePath("out.csv"),
                        "--timeout",   "10"};
    if (how == "other")
      args << "--allow-host"
           << "127.0.0.2";
    if (how == "host")
      args << "--allow-host"
           << "127.0.0.1";
    if (how == "hostport") args << "--allow-host" << server.hostPort();
    const Run r = runDashboard(args, config.path());
    QVERIFY2(r.code == exitCode, qPrintable(QString::number(r.code) + ": " + r.err));
    if (exitCode == 77) {
      QVERIFY2(r.err.contains("data source 'auth' would send its headers (Authorization, "
                              "X-Scope-OrgID) to " +
                              server.hostPort()) &&
                   r.err.contains("--allow-host " + server.hostPort() + ". Nothing was sent."),
               qPrintable(r.err));
      QCOMPARE(server.requests.size(), 0);
    } else {
      QVERIFY(!server.requests.isEmpty());
      for (const QByteArray& req : server.requests)
        QVERIFY2(req.contains("\r\nAuthorization: Bearer from-the-store\r\n"), req.constData());
    }
  }

 private:
  QTemporaryDir m_dir;
};

QTEST_MAIN(TestDashboardSecrets)
#include "tst_dashboard_secrets.moc"
