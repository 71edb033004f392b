#include "health_monitor.h"

#include <algorithm>

#include "collector_client.h"

HealthMonitor::HealthMonitor(CollectorClient* client, QObject* parent)
    : QObject(parent), m_client(client) {
  m_timer.setSingleShot(true);
  connect(&m_timer, &QTimer::timeout, this, &HealthMonitor::checkNow);
  // Any failed request is a hint to look now rather than at the next poll.
  connect(client, &CollectorClient::unreachable, this, [this] {
    if (m_state == State::Healthy && !m_inFlight) checkNow();
  });
  connect(client, &CollectorClient::reachable, this, &HealthMonitor::dataFlowed);
}

void HealthMonitor::start() {
  checkNow();
}

int HealthMonitor::nextRetrySeconds() const {
  if (!m_timer.isActive()) return 0;
  return std::max<int>(
      0, int((QDateTime::currentMSecsSinceEpoch() - m_nextCheck.toMSecsSinceEpoch()) / -1000));
}

void HealthMonitor::schedule(int ms) {
  m_nextCheck = QDateTime::currentDateTime().addMSecs(ms);
  m_timer.start(ms);
}

void HealthMonitor::checkNow() {
  if (m_inFlight) return;
  m_inFlight = true;
  m_timer.stop();
  m_client->fetchHealth(this,
                        [this](tally::dash::Health h, bool reachable) { onAnswer(h, reachable); });
}

void HealthMonitor::dataFlowed() {
  m_lastContact = QDateTime::currentSecsSinceEpoch();
  if (m_state == State::Unreachable) checkNow();
}

void HealthMonitor::onAnswer(const tally::dash::Health& h, bool reachable) {
  m_inFlight = false;
  if (reachable) m_lastContact = QDateTime::currentSecsSinceEpoch();
  m_health = h;
  State old = m_state;
  if (!reachable) {
    m_state = State::Unreachable;
    m_reason = QString::fromStdString(h.reason);
  } else if (!h.ok) {
    m_state = State::Unhealthy;
    m_reason = QString::fromStdString(h.reason);
  } else {
    m_state = State::Healthy;
    m_reason.clear();
  }
  if (m_state == State::Healthy) {
    m_backoffMs = 1000;
    schedule(m_healthyIntervalMs);
  } else {
    schedule(m_backoffMs);
    m_backoffMs = std::min(m_backoffMs * 2, 5000);  // /healthz on a loopback is cheap
  }
  emit updated();
  if (m_state != old) {
    emit stateChanged(m_state, m_reason);
    if (m_state == State::Healthy && old != State::Unknown) emit recovered();
  }
}
