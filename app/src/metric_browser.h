// MetricBrowser: the dock on the left: a search box over the metric tree (matches anywhere in the
// dotted name, keeps the path to each match), kind icons, drag a metric onto a panel or
// double-click to add a panel for it. With data sources defined, a combo box above picks whose
// metrics are listed: the collector's, or a Prometheus source's (/api/v1/label/__name__/values).
#pragma once

#include <QWidget>

class CollectorClient;
class DataSources;
class MetricTreeModel;
class QComboBox;
class QLineEdit;
class QLabel;
class QSortFilterProxyModel;
class QTreeView;

class MetricBrowser : public QWidget {
  Q_OBJECT
 public:
  MetricBrowser(CollectorClient* client, QWidget* parent = nullptr);

  MetricTreeModel* model() const { return m_model; }
  QTreeView* view() const { return m_view; }
  QLineEdit* searchEdit() const { return m_search; }
  QComboBox* sourceCombo() const { return m_sourceCombo; }
  void setDataSources(DataSources* sources);
  QString currentSource() const;  // "" = the collector

 public slots:
  void reload();

 signals:
  void metricActivated(const QString& metric);
  void metricsLoaded();

 private:
  void updateSources();

  CollectorClient* m_client;
  DataSources* m_sources = nullptr;
  QComboBox* m_sourceCombo;
  MetricTreeModel* m_model;
  QSortFilterProxyModel* m_proxy;
  QTreeView* m_view;
  QLineEdit* m_search;
  QLabel* m_status;
};
