// SeriesTable: a table panel, and the legend table under a time chart: one row per series with
// last, min, max, avg and total over the final buckets shown (core/series_stats.h). Click a header
// to sort, type to search (any part of the series' name); the first N rows of that order are
// shown and "Show all" unfolds the rest. As a legend the first column holds the series' colour and
// a check box that hides the series from the chart (and the CSV), as a click on the plain legend
// does.
//
// SeriesStatsModel is the rows (data flows one way: the panel's snapshot -> setStats -> views);
// SeriesTable is the search box, the view and the fold.
// Thread-safety: GUI thread.
#pragma once

#include <QAbstractTableModel>
#include <QColor>
#include <QSet>
#include <QWidget>
#include <vector>

#include "core/dashboard.h"
#include "core/series_stats.h"

class PanelController;
class QLabel;
class QLineEdit;
class QPushButton;
class QTableView;

class SeriesStatsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { kSeries = 0, kLast, kMin, kMax, kAvg, kTotal, kColumns };
  explicit SeriesStatsModel(QObject* parent = nullptr);

  // `colors` per series (legend), empty for none; `hidden` by label.
  void setStats(std::vector<tally::dash::SeriesStats> stats, std::vector<QColor> colors,
                const QSet<QString>& hidden, const tally::dash::PanelSpec& spec);
  void setSearch(const QString& text);
  void setRowLimit(int rows);  // 0 = all
  void setCheckable(bool on) { m_checkable = on; }
  int matchingRows() const { return int(m_order.size()); }  // after the search, before the fold
  const tally::dash::SeriesStats& statsAt(int row) const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;
  bool setData(const QModelIndex& index, const QVariant& value, int role) override;
  void sort(int column, Qt::SortOrder order) override;

 signals:
  void hiddenToggled(const QString& label, bool hidden);

 private:
  void reorder();

  std::vector<tally::dash::SeriesStats> m_stats;
  std::vector<QColor> m_colors;
  QSet<QString> m_hidden;
  tally::dash::PanelSpec m_spec;
  std::vector<int> m_order;  // indices into m_stats: searched, sorted
  QString m_search;
  int m_sortColumn = kSeries;
  Qt::SortOrder m_sortOrder = Qt::AscendingOrder;
  int m_limit = 0;
  bool m_checkable = false;
};

class SeriesTable : public QWidget {
  Q_OBJECT
 public:
  // asLegend: colours and hide check boxes, all series; else (a table panel) the shown series.
  SeriesTable(PanelController* panel, bool asLegend, QWidget* parent = nullptr);
  SeriesStatsModel* model() const { return m_model; }
  QTableView* view() const { return m_view; }
  QLineEdit* searchEdit() const { return m_search; }
  QPushButton* showAllButton() const { return m_more; }

 public slots:
  void refresh();  // from the panel's snapshot

 private:
  void updateFold();

  PanelController* m_panel;
  bool m_asLegend;
  bool m_showAll = false;
  SeriesStatsModel* m_model;
  QLineEdit* m_search;
  QTableView* m_view;
  QPushButton* m_more;
};
