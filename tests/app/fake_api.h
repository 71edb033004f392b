// FakeApi: a minimal HTTP/1.1 server on a free loopback port that answers GETs from a table of
// (path prefix -> status, body), for widget tests that need exact, fixed collector answers.
// It records every request target. Header-only; GUI thread.
#pragma once

#include <QByteArray>
#include <QHostAddress>
#include <QList>
#include <QMap>
#include <QTcpServer>
#include <QTcpSocket>
#include <QUrl>

class FakeApi : public QObject {
 public:
  FakeApi() {
    m_server.listen(QHostAddress::LocalHost, 0);
    connect(&m_server, &QTcpServer::newConnection, this, [this] {
      while (QTcpSocket* s = m_server.nextPendingConnection()) {
        connect(s, &QTcpSocket::readyRead, this, [this, s] { onRead(s); });
        connect(s, &QTcpSocket::disconnected, s, &QObject::deleteLater);
      }
    });
  }
  QUrl url() const {
    return QUrl(QStringLiteral("http://127.0.0.1:%1").arg(m_server.serverPort()));
  }
  // Longest matching prefix wins.
  void route(const QString& prefix, QByteArray body, int status = 200) {
    m_routes[prefix] = {status, std::move(body)};
  }
  const QList<QString>& requests() const { return m_requests; }
  QString lastRequest(const QString& prefix) const {
    for (auto it = m_requests.crbegin(); it != m_requests.crend(); ++it)
      if (it->startsWith(prefix)) return *it;
    return {};
  }

 private:
  struct Answer {
    int status;
    QByteArray body;
  };
  void onRead(QTcpSocket* s) {
    QByteArray& buf = m_buffers[s];
    buf += s->readAll();
    int end = buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    QList<QByteArray> first = buf.left(buf.indexOf("\r\n")).split(' ');
    m_buffers.remove(s);
    QString target = first.size() > 1 ? QString::fromUtf8(first[1]) : QString();
    m_requests << target;
    Answer a{404, "{\"error\":\"no route\"}"};
    int best = -1;
    for (auto it = m_routes.cbegin(); it != m_routes.cend(); ++it)
      if (target.startsWith(it.key()) && it.key().size() > best) {
        best = int(it.key().size());
        a = it.value();
      }
    QByteArray head = "HTTP/1.1 " + QByteArray::number(a.status) +
                      " X\r\nContent-Type: application/json\r\n"
                      "Connection: close\r\nContent-Length: " +
                      QByteArray::number(a.body.size()) + "\r\n\r\n";
    s->write(head + a.body);
    s->disconnectFromHost();
  }
  QTcpServer m_server;
  QMap<QString, Answer> m_routes;
  QMap<QTcpSocket*, QByteArray> m_buffers;
  QList<QString> m_requests;
};
