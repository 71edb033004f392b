#include "live_subscriber.h"

#include <QSocketNotifier>
#include <QTimer>
#include <zmq.hpp>

#include "tally/common/curve_keys.h"

LiveSubscriber::LiveSubscriber(QObject* parent)
    : QObject(parent), m_context(std::make_unique<zmq::context_t>(1)) {}

LiveSubscriber::~LiveSubscriber() {
  delete m_notifier;
  if (m_socket) m_socket->close();
  m_socket.reset();
  m_context.reset();
}

bool LiveSubscriber::connectTo(const QString& endpoint, QString* error) {
  delete m_notifier;
  m_notifier = nullptr;
  if (m_socket) m_socket->close();
  m_socket.reset();
  m_endpoint = endpoint;
  try {
    auto sock = std::make_unique<zmq::socket_t>(*m_context, zmq::socket_type::sub);
    sock->set(zmq::sockopt::linger, 0);
    sock->set(zmq::sockopt::rcvhwm, 100000);
    // CURVE as the SDK does it (docs/SECURITY.md): the TALLY_CURVE_* environment variables.
    auto keys = tally::resolve_curve_client_keys({});
    if (!keys) {
      if (error) *error = QString::fromStdString("live stream: " + keys.status().message());
      return false;
    }
    if (auto st = tally::apply_curve_client(sock->handle(), *keys); !st) {
      if (error) *error = QString::fromStdString("live stream: " + st.message());
      return false;
    }
    sock->connect(endpoint.toStdString());
    for (auto it = m_refs.cbegin(); it != m_refs.cend(); ++it)
      sock->set(zmq::sockopt::subscribe, it.key().toStdString());
    auto fd = sock->get(zmq::sockopt::fd);
    m_socket = std::move(sock);
    m_notifier = new QSocketNotifier(qintptr(fd), QSocketNotifier::Read, this);
    connect(m_notifier, &QSocketNotifier::activated, this, &LiveSubscriber::drain);
  } catch (const zmq::error_t& e) {
    if (error)
      *error =
          QStringLiteral("cannot connect to %1: %2").arg(endpoint, QString::fromUtf8(e.what()));
    return false;
  }
  QTimer::singleShot(0, this, &LiveSubscriber::drain);
  return true;
}

void LiveSubscriber::subscribe(const QString& metric) {
  if (m_refs[metric]++ == 0 && m_socket) {
    m_socket->set(zmq::sockopt::subscribe, metric.toStdString());
    QTimer::singleShot(0, this, &LiveSubscriber::drain);
  }
}

void LiveSubscriber::unsubscribe(const QString& metric) {
  auto it = m_refs.find(metric);
  if (it == m_refs.end()) return;
  if (--it.value() > 0) return;
  m_refs.erase(it);
  if (m_socket) {
    m_socket->set(zmq::sockopt::unsubscribe, metric.toStdString());
    QTimer::singleShot(0, this, &LiveSubscriber::drain);
  }
}

void LiveSubscriber::drain() {
  if (!m_socket || m_draining) return;
  m_draining = true;  // a slot below may subscribe; it re-arms drain() instead of recursing
  try {
    while (m_socket && (m_socket->get(zmq::sockopt::events) & ZMQ_POLLIN)) {
      zmq::message_t topic;
      if (!m_socket->recv(topic, zmq::recv_flags::dontwait)) break;
      std::vector<zmq::message_t> rest;
      for (bool more = topic.more(); more;) {
        zmq::message_t part;
        if (!m_socket->recv(part, zmq::recv_flags::dontwait)) break;
        more = part.more();
        rest.push_back(std::move(part));
      }
      ++m_frames;
      QString metric = QString::fromUtf8(topic.data<char>(), int(topic.size()));
      if (!m_refs.contains(metric)) continue;  // prefix match of another metric
      if (rest.empty()) {
        ++m_badFrames;
        continue;
      }
      auto updates = tally::dash::decodeLiveBatch(rest.front().data(), rest.front().size());
      if (!updates) {
        ++m_badFrames;
        continue;
      }
      emit updatesReceived(metric, *updates);
    }
  } catch (const zmq::error_t& e) {
    qWarning("tally-dashboard: live stream error: %s", e.what());
  }
  m_draining = false;
}
