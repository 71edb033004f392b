// LiveSubscriber: the collector's live stream (docs/API.md "Live stream") on a ZeroMQ SUB socket,
// driven by the Qt event loop: the socket's ZMQ_FD sits on a QSocketNotifier, no polling thread.
// ZMQ_FD is edge-triggered and only says "look at ZMQ_EVENTS", so every activation drains the
// socket while ZMQ_EVENTS has ZMQ_POLLIN, and so does every subscribe/unsubscribe (a socket
// operation can consume the edge).
// Subscriptions are reference-counted per metric (several panels may show one metric); the topic is
// a prefix match in ZeroMQ, so frames whose topic is not exactly a subscribed metric are ignored.
// Frames that do not decode are counted, not fatal. With TALLY_CURVE_SERVER_KEY and
// TALLY_CURVE_KEY_FILE set the socket authenticates with CURVE, as the SDK does.
// Thread-safety: a QObject of the GUI thread.
#pragma once

#include <QHash>
#include <QObject>
#include <QString>
#include <memory>
#include <vector>

#include "core/live_buffer.h"

class QSocketNotifier;
namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

class LiveSubscriber : public QObject {
  Q_OBJECT
 public:
  explicit LiveSubscriber(QObject* parent = nullptr);
  ~LiveSubscriber() override;

  // Connects (ZeroMQ connects lazily and reconnects by itself). False with a reason for a
  // malformed endpoint.
  bool connectTo(const QString& endpoint, QString* error = nullptr);
  QString endpoint() const { return m_endpoint; }
  bool isConnected() const { return m_socket != nullptr; }

  void subscribe(const QString& metric);
  void unsubscribe(const QString& metric);
  QStringList subscriptions() const { return m_refs.keys(); }

  quint64 framesReceived() const { return m_frames; }
  quint64 badFrames() const { return m_badFrames; }

 signals:
  void updatesReceived(const QString& metric, const std::vector<tally::dash::LiveUpdate>& updates);

 public slots:
  // Drains what is readable now; called by the notifier and after socket operations.
  void drain();

 private:
  std::unique_ptr<zmq::context_t> m_context;
  std::unique_ptr<zmq::socket_t> m_socket;
  QSocketNotifier* m_notifier = nullptr;
  QString m_endpoint;
  QHash<QString, int> m_refs;
  quint64 m_frames = 0;
  quint64 m_badFrames = 0;
  bool m_draining = false;
};
