// HealthMonitor: polls the collector's /healthz and tells the window whether it is reachable and
// healthy. While it is not, polls back off (1 s, 2 s, 4 s, 5 s) and the window shows a banner
// with the reason and the next retry; the first good answer emits recovered() so panels re-query.
// Thread-safety: a QObject of the GUI thread.
#pragma once

#include <QDateTime>
#include <QObject>
#include <QTimer>

#include "core/api.h"

class CollectorClient;

class HealthMonitor : public QObject {
  Q_OBJECT
 public:
  enum class State { Unknown, Healthy, Unhealthy, Unreachable };
  Q_ENUM(State)

  explicit HealthMonitor(CollectorClient* client, QObject* parent = nullptr);

  void start();
  State state() const { return m_state; }
  // Wall-clock second of the last sign of life (a reachable answer or dataFlowed()); 0 = none.
  qint64 lastContact() const { return m_lastContact; }
  QString reason() const { return m_reason; }
  const tally::dash::Health& lastHealth() const { return m_health; }
  int nextRetrySeconds() const;  // while not healthy
  void setHealthyInterval(int ms) { m_healthyIntervalMs = ms; }

 public slots:
  void checkNow();
  // Data arrived from the collector (a live frame, an HTTP answer): while it is thought
  // unreachable or unhealthy, look now instead of at the next backoff step, so the banner clears
  // as soon as data flows again.
  void dataFlowed();

 signals:
  void stateChanged(HealthMonitor::State state, const QString& reason);
  void recovered();
  void updated();  // every answer (uptime, series count)

 private:
  void onAnswer(const tally::dash::Health& h, bool reachable);
  void schedule(int ms);

  CollectorClient* m_client;
  QTimer m_timer;
  State m_state = State::Unknown;
  QString m_reason;
  tally::dash::Health m_health;
  int m_backoffMs = 1000;
  int m_healthyIntervalMs = 5000;
  bool m_inFlight = false;
  qint64 m_lastContact = 0;
  QDateTime m_nextCheck;
};
