// AlertManager: the dashboard's alerts (docs/DASHBOARD.md, "Thresholds and alerts"). Each panel
// with an alert rule (tally/common/alert_rule.h) is evaluated once a second, each of its series on
// its own: the rule's reduce over the final buckets of the last `over`, compared with the
// threshold, held `for` before it fires. Only a panel that shows the present is evaluated (not
// zoomed into the past, its window ending now); one whose source cannot be reached keeps its
// alerts as they were (no data from an outage is not "resolved").
//
// It keeps the alerts firing or pending now and a history of what fired and resolved (the last
// 500), as a table model for the Alerts dock, sets each panel's header badge, and emits fired()
// and resolved() for the desktop notification.
// Thread-safety: GUI thread.
#pragma once

#include <QAbstractTableModel>
#include <QPointer>
#include <QTimer>
#include <deque>
#include <map>

#include "tally/common/alert_rule.h"

class DashboardCanvas;
class PanelWidget;

class AlertManager : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { kState = 0, kSince, kPanel, kSeries, kValue, kRule, kColumns };
  struct Entry {
    tally::AlertState state = tally::AlertState::kNormal;  // Normal here = resolved
    int64_t since = 0;                                     // pending or firing since; resolved at
    int64_t firedAt = 0;                                   // 0 while pending
    QString panel;                                         // its title
    QString series;
    double value = 0;
    QString rule;
  };

  explicit AlertManager(DashboardCanvas* canvas, QObject* parent = nullptr);

  // Evaluates every panel's rule now (the timer does it once a second).
  void evaluate();
  // Firing and pending alerts first (newest first), then the history of resolved ones.
  const std::vector<Entry>& rows() const { return m_rows; }
  int firingCount() const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

 signals:
  void fired(const QString& panel, const QString& series, double value, const QString& rule);
  void resolved(const QString& panel, const QString& series);
  void firingCountChanged(int firing);

 private:
  struct Key {
    const PanelWidget* panel;
    std::string series;
    auto operator<=>(const Key&) const = default;
  };
  struct Tracked {
    tally::AlertTracker tracker;
    tally::AlertRule rule;
    int64_t firedAt = 0;
    QString panelTitle;
  };
  void rebuildRows();

  QPointer<DashboardCanvas> m_canvas;
  QTimer m_timer;
  std::map<Key, Tracked> m_tracked;
  std::deque<Entry> m_history;  // resolved, newest first
  std::vector<Entry> m_rows;
};
