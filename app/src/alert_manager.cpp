#include "alert_manager.h"

#include <QBrush>
#include <QColor>
#include <QDateTime>
#include <set>

#include "core/series_stats.h"
#include "dashboard_canvas.h"
#include "panel_controller.h"
#include "panel_widget.h"
#include "tally/common/csv.h"

using namespace tally;
using namespace tally::dash;

namespace {
constexpr size_t kHistory = 500;

QString timeText(int64_t t) {
  return QDateTime::fromSecsSinceEpoch(t).toString(QStringLiteral("yyyy-MM-dd HH:mm:ss"));
}
}  // namespace

AlertManager::AlertManager(DashboardCanvas* canvas, QObject* parent)
    : QAbstractTableModel(parent), m_canvas(canvas) {
  m_timer.setInterval(1000);
  connect(&m_timer, &QTimer::timeout, this, &AlertManager::evaluate);
  m_timer.start();
}

void AlertManager::evaluate() {
  if (!m_canvas) return;
  const int firingBefore = firingCount();
  std::set<Key> seen;
  bool changed = false;
  for (PanelWidget* w : m_canvas->panels()) {
    const PanelController* c = w->controller();
    const PanelSpec& spec = c->spec();
    int firing = 0, pending = 0;
    QStringList details;
    auto badge = [&] { w->setAlertBadge(firing, pending, details.join('\n')); };
    if (!spec.alert || chartNeedsDistribution(spec.chart)) {
      badge();
      continue;
    }
    const AlertRule& rule = *spec.alert;
    const QString title = QString::fromStdString(spec.displayTitle());
    const QString ruleText = QString::fromStdString(format_alert_rule(rule));
    const int64_t now = c->currentTime();
    const QueryResult* r = c->series();
    // Only the present is judged: not a zoom into the past, nor a source that cannot be reached.
    const bool present = !c->isZoomed() && c->window().to >= now - std::max<int64_t>(2, c->step());
    const bool judge = present && r && c->error().isEmpty() && !c->unknownFrom();
    if (judge) {
      const std::string metric = spec.promql.empty() ? spec.metric : std::string();
      for (const auto& s : r->series) {
        const SeriesStats st = seriesStats(s, metric, now - rule.over_s);
        Key key{w, st.label};
        seen.insert(key);
        auto [it, inserted] = m_tracked.try_emplace(key);
        Tracked& t = it->second;
        if (!(t.rule == rule)) {  // a changed rule starts over
          t = Tracked{};
          t.rule = rule;
        }
        t.panelTitle = title;
        switch (t.tracker.update(rule, now, st.get(rule.reduce))) {
          case AlertTracker::Change::kFired:
            t.firedAt = now;
            changed = true;
            emit fired(title, QString::fromStdString(st.label), *st.get(rule.reduce), ruleText);
            break;
          case AlertTracker::Change::kResolved: {
            Entry e;
            e.state = AlertState::kNormal;
            e.since = now;
            e.firedAt = t.firedAt;
            e.panel = title;
            e.series = QString::fromStdString(st.label);
            e.value = t.tracker.value().value_or(std::nan(""));
            e.rule = ruleText;
            m_history.push_front(e);
            if (m_history.size() > kHistory) m_history.pop_back();
            changed = true;
            emit resolved(title, e.series);
            break;
          }
          case AlertTracker::Change::kPending:
            changed = true;
            break;
          case AlertTracker::Change::kNone:
            break;
        }
        if (inserted) changed = true;
      }
    }
    // Series of this panel not judged now keep their state when the panel could not be judged;
    // series gone from a judged answer are dropped.
    for (auto it = m_tracked.begin(); it != m_tracked.end();) {
      if (it->first.panel != w) {
        ++it;
        continue;
      }
      if (judge && !seen.count(it->first)) {
        it = m_tracked.erase(it);
        changed = true;
        continue;
      }
      if (!judge) seen.insert(it->first);
      const auto state = it->second.tracker.state();
      if (state == AlertState::kFiring) {
        ++firing;
        details << tr("%1: %2 (%3)")
                       .arg(QString::fromStdString(it->first.series), ruleText,
                            QString::fromStdString(
                                format_number(it->second.tracker.value().value_or(0))));
      } else if (state == AlertState::kPending) {
        ++pending;
      }
      ++it;
    }
    badge();
  }
  // Panels that are gone take their alerts with them.
  for (auto it = m_tracked.begin(); it != m_tracked.end();) {
    if (!seen.count(it->first)) {
      it = m_tracked.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (changed) rebuildRows();
  if (firingCount() != firingBefore) emit firingCountChanged(firingCount());
}

int AlertManager::firingCount() const {
  int n = 0;
  for (const auto& [k, t] : m_tracked) n += t.tracker.state() == AlertState::kFiring;
  return n;
}

void AlertManager::rebuildRows() {
  beginResetModel();
  m_rows.clear();
  for (const auto& [k, t] : m_tracked) {
    if (t.tracker.state() == AlertState::kNormal) continue;
    Entry e;
    e.state = t.tracker.state();
    e.since = t.tracker.since();
    e.firedAt = t.firedAt;
    e.panel = t.panelTitle;
    e.series = QString::fromStdString(k.series);
    e.value = t.tracker.value().value_or(std::nan(""));
    e.rule = QString::fromStdString(format_alert_rule(t.rule));
    m_rows.push_back(std::move(e));
  }
  std::stable_sort(m_rows.begin(), m_rows.end(), [](const Entry& a, const Entry& b) {
    if (a.state != b.state) return a.state == AlertState::kFiring;
    return a.since > b.since;
  });
  m_rows.insert(m_rows.end(), m_history.begin(), m_history.end());
  endResetModel();
}

int AlertManager::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(m_rows.size());
}

int AlertManager::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

QVariant AlertManager::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= int(m_rows.size())) return {};
  const Entry& e = m_rows[size_t(index.row())];
  if (role == Qt::ForegroundRole && index.column() == kState)
    return QBrush(e.state == AlertState::kFiring    ? QColor("#d93025")
                  : e.state == AlertState::kPending ? QColor("#b06000")
                                                    : QColor("#188038"));
  if (role != Qt::DisplayRole && role != Qt::ToolTipRole) return {};
  switch (index.column()) {
    case kState:
      return e.state == AlertState::kNormal ? tr("resolved")
                                            : QString::fromLatin1(alert_state_name(e.state));
    case kSince:
      if (e.state == AlertState::kNormal)
        return e.firedAt ? tr("%1 – %2").arg(timeText(e.firedAt), timeText(e.since))
                         : timeText(e.since);
      return timeText(e.state == AlertState::kFiring ? e.firedAt : e.since);
    case kPanel:
      return e.panel;
    case kSeries:
      return e.series;
    case kValue:
      return std::isnan(e.value) ? tr("no data") : QString::fromStdString(format_number(e.value));
    case kRule:
      return e.rule;
  }
  return {};
}

QVariant AlertManager::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  static const char* kHeads[] = {"State", "Since", "Panel", "Series", "Value", "Rule"};
  return tr(kHeads[section]);
}
