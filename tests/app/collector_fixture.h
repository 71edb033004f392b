// CollectorFixture: the real tally-collector as a child process on free loopback ports
// (HTTP port 0, ZeroMQ wildcard ports) with a temporary data directory; it waits for the ready
// file the collector writes once every socket listens. Header-only, for the dashboard's
// integration tests.
#pragma once

#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QThread>
#include <QUrl>

class CollectorFixture {
 public:
  ~CollectorFixture() { stop(); }

  bool start(QStringList extra = {}) {
    const QString ready = m_dir.filePath("ready.json");
    QStringList args = {"--data-dir",   m_dir.filePath("data"),
                        "--http",       "127.0.0.1:0",
                        "--ingest",     "tcp://127.0.0.1:*",
                        "--live",       "tcp://127.0.0.1:*",
                        "--statsd",     "off",
                        "--ready-file", ready,
                        "--shards",     "2",
                        "--log-level",  "warn"};
    m_proc.setProcessChannelMode(QProcess::ForwardedErrorChannel);
    m_proc.start(TALLY_COLLECTOR_BIN, args + extra);
    if (!m_proc.waitForStarted(5000)) return false;
    for (int i = 0; i < 300; ++i) {
      QFile f(ready);
      if (f.open(QIODevice::ReadOnly)) {
        QJsonObject o = QJsonDocument::fromJson(f.readAll()).object();
        if (o.contains("http_port")) {
          m_ingest = o.value("ingest").toString();
          m_live = o.value("live").toString();
          m_httpPort = o.value("http_port").toInt();
          return true;
        }
      }
      if (m_proc.state() == QProcess::NotRunning) return false;
      QThread::msleep(50);
    }
    return false;
  }
  void stop() {
    if (m_proc.state() == QProcess::NotRunning) return;
    m_proc.terminate();
    if (!m_proc.waitForFinished(20000)) {
      m_proc.kill();
      m_proc.waitForFinished(5000);
    }
  }
  QUrl url() const { return QUrl(QStringLiteral("http://127.0.0.1:%1").arg(m_httpPort)); }
  QString ingest() const { return m_ingest; }
  QString live() const { return m_live; }
  QString tempPath() const { return m_dir.path(); }

 private:
  QTemporaryDir m_dir;
  QProcess m_proc;
  QString m_ingest, m_live;
  int m_httpPort = 0;
};
