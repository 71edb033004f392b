#include "series_table.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLineEdit>
#include <QPushButton>
#include <QTableView>
#include <QVBoxLayout>
#include <algorithm>

#include "panel_chart.h"
#include "panel_controller.h"
#include "stat_painter.h"
#include "tally/common/csv.h"

using namespace tally;
using namespace tally::dash;

SeriesStatsModel::SeriesStatsModel(QObject* parent) : QAbstractTableModel(parent) {}

void SeriesStatsModel::setStats(std::vector<SeriesStats> stats, std::vector<QColor> colors,
                                const QSet<QString>& hidden, const PanelSpec& spec) {
  beginResetModel();
  m_stats = std::move(stats);
  m_colors = std::move(colors);
  m_hidden = hidden;
  m_spec = spec;
  reorder();
  endResetModel();
}

void SeriesStatsModel::setSearch(const QString& text) {
  beginResetModel();
  m_search = text.trimmed();
  reorder();
  endResetModel();
}

void SeriesStatsModel::setRowLimit(int rows) {
  beginResetModel();
  m_limit = std::max(0, rows);
  endResetModel();
}

const SeriesStats& SeriesStatsModel::statsAt(int row) const {
  return m_stats[size_t(m_order[size_t(row)])];
}

void SeriesStatsModel::reorder() {
  m_order.clear();
  for (int i = 0; i < int(m_stats.size()); ++i)
    if (m_search.isEmpty() ||
        QString::fromStdString(m_stats[size_t(i)].label).contains(m_search, Qt::CaseInsensitive))
      m_order.push_back(i);
  const int col = m_sortColumn;
  const bool asc = m_sortOrder == Qt::AscendingOrder;
  std::stable_sort(m_order.begin(), m_order.end(), [&](int a, int b) {
    const auto& x = m_stats[size_t(a)];
    const auto& y = m_stats[size_t(b)];
    if (col == kSeries) return asc ? x.label < y.label : y.label < x.label;
    const auto vx = x.get(kAllReduces[col - 1]), vy = y.get(kAllReduces[col - 1]);
    if (!vx || !vy) return vx.has_value() && !vy.has_value();  // no value last, either order
    return asc ? *vx < *vy : *vy < *vx;
  });
}

int SeriesStatsModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid()) return 0;
  const int n = int(m_order.size());
  return m_limit > 0 ? std::min(n, m_limit) : n;
}

int SeriesStatsModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

QVariant SeriesStatsModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  const int i = m_order[size_t(index.row())];
  const SeriesStats& s = m_stats[size_t(i)];
  const QString label = QString::fromStdString(s.label);
  if (index.column() == kSeries) {
    switch (role) {
      case Qt::DisplayRole:
        return label;
      case Qt::ToolTipRole:
        return label;  // the full name, never elided
      case Qt::DecorationRole:
        return size_t(i) < m_colors.size() ? QVariant(m_colors[size_t(i)]) : QVariant();
      case Qt::CheckStateRole:
        if (m_checkable) return m_hidden.contains(label) ? Qt::Unchecked : Qt::Checked;
        return {};
      default:
        return {};
    }
  }
  const auto v = s.get(kAllReduces[index.column() - 1]);
  switch (role) {
    case Qt::DisplayRole:
      return QString::fromStdString(formatStat(v, m_spec.unit));
    case Qt::EditRole:
    case Qt::UserRole:
      return v ? QVariant(*v) : QVariant();
    case Qt::ToolTipRole:
      return v ? QString::fromStdString(format_number(*v)) : QString();
    case Qt::TextAlignmentRole:
      return int(Qt::AlignRight | Qt::AlignVCenter);
    case Qt::ForegroundRole:
      if (!m_spec.thresholds.empty()) return StatPainter::valueColor(m_spec, v);
      return {};
    default:
      return {};
  }
}

QVariant SeriesStatsModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  if (section == kSeries) return tr("Series");
  return QString::fromLatin1(reduce_name(kAllReduces[section - 1]));
}

Qt::ItemFlags SeriesStatsModel::flags(const QModelIndex& index) const {
  Qt::ItemFlags f = QAbstractTableModel::flags(index);
  if (m_checkable && index.column() == kSeries) f |= Qt::ItemIsUserCheckable;
  return f;
}

bool SeriesStatsModel::setData(const QModelIndex& index, const QVariant& value, int role) {
  if (!m_checkable || role != Qt::CheckStateRole || index.column() != kSeries) return false;
  const QString label = QString::fromStdString(statsAt(index.row()).label);
  const bool hide = value.toInt() == Qt::Unchecked;
  if (hide)
    m_hidden.insert(label);
  else
    m_hidden.remove(label);
  emit dataChanged(index, index, {Qt::CheckStateRole});
  emit hiddenToggled(label, hide);
  return true;
}

void SeriesStatsModel::sort(int column, Qt::SortOrder order) {
  beginResetModel();
  m_sortColumn = std::clamp(column, 0, kColumns - 1);
  m_sortOrder = order;
  reorder();
  endResetModel();
}

// ------------------------------------------------------------------------------ the widget

SeriesTable::SeriesTable(PanelController* panel, bool asLegend, QWidget* parent)
    : QWidget(parent), m_panel(panel), m_asLegend(asLegend), m_model(new SeriesStatsModel(this)) {
  setObjectName(asLegend ? "legendTable" : "seriesTable");
  m_model->setCheckable(asLegend);
  m_search = new QLineEdit(this);
  m_search->setObjectName("seriesSearch");
  m_search->setPlaceholderText(tr("Search series"));
  m_search->setClearButtonEnabled(true);
  m_more = new QPushButton(this);
  m_more->setObjectName("showAllButton");
  m_more->setFlat(true);
  m_view = new QTableView(this);
  m_view->setModel(m_model);
  m_view->setSortingEnabled(true);
  m_view->sortByColumn(asLegend ? SeriesStatsModel::kLast : SeriesStatsModel::kSeries,
                       asLegend ? Qt::DescendingOrder : Qt::AscendingOrder);
  m_view->verticalHeader()->setVisible(false);
  m_view->verticalHeader()->setDefaultSectionSize(m_view->fontMetrics().height() + 4);
  // The numbers as wide as they need, the name the rest (its full text in the tooltip).
  m_view->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_view->horizontalHeader()->setSectionResizeMode(SeriesStatsModel::kSeries, QHeaderView::Stretch);
  m_view->horizontalHeader()->setMinimumSectionSize(40);
  m_view->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_view->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_view->setTextElideMode(Qt::ElideMiddle);
  auto* top = new QHBoxLayout;
  top->setContentsMargins(0, 0, 0, 0);
  top->addWidget(m_search, 1);
  top->addWidget(m_more);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->setSpacing(2);
  layout->addLayout(top);
  layout->addWidget(m_view, 1);
  connect(m_search, &QLineEdit::textChanged, this, [this](const QString& t) {
    m_model->setSearch(t);
    updateFold();
  });
  connect(m_more, &QPushButton::clicked, this, [this] {
    m_showAll = !m_showAll;
    updateFold();
  });
  connect(m_model, &SeriesStatsModel::hiddenToggled, m_panel,
          [this](const QString& label, bool hidden) { m_panel->setSeriesHidden(label, hidden); });
  refresh();
}

void SeriesTable::refresh() {
  const PanelSpec& spec = m_panel->spec();
  const std::string metric = spec.promql.empty() ? spec.metric : std::string();
  std::vector<SeriesStats> stats;
  std::vector<QColor> colors;
  if (m_asLegend) {
    // Every series, hidden ones too (their box unticked), coloured as the chart draws them.
    if (const QueryResult* r = m_panel->series()) {
      const TimeWindow win = m_panel->shownWindow();
      int i = 0;
      for (const auto& s : r->series) {
        Series clipped = s;
        std::erase_if(clipped.points,
                      [&](const Point& p) { return p.t < win.from || p.t >= win.to; });
        stats.push_back(seriesStats(clipped, metric));
        colors.push_back(PanelChart::seriesColor(i++));
      }
    }
  } else {
    stats = seriesStats(m_panel->visibleSeries(), metric);
  }
  m_model->setStats(std::move(stats), std::move(colors), m_panel->hiddenSeries(), spec);
  updateFold();
}

void SeriesTable::updateFold() {
  const int limit = m_asLegend ? m_panel->spec().legendRows : 0;
  const int n = m_model->matchingRows();
  m_model->setRowLimit(m_showAll ? 0 : limit);
  m_more->setVisible(limit > 0 && n > limit);
  m_more->setText(m_showAll ? tr("Show the first %1").arg(limit)
                            : tr("Show all (%1 more)").arg(n - limit));
  m_search->setVisible(!m_asLegend || n > 3 || !m_search->text().isEmpty());
}
