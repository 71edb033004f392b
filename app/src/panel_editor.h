// PanelEditor: the dialog that builds a PanelSpec: metric (completed from /api/metrics), tag
// filters (key, =, !=, =~, value; keys and values completed from /api/tags), group-by tags,
// function, chart type, title, unit, log y. Functions and chart types that the metric's kind
// cannot answer are disabled (rate of a gauge, percentiles of a counter, histogram of a counter).
// The data source comes first: the Tally collector, or one of the dashboard's Prometheus-compatible
// sources, whose metrics and labels complete from its /api/v1 endpoints, which adds the !~
// operator and a raw PromQL expression, shows the PromQL the settings generate, and disables
// (with a note saying why) what has no PromQL form: percentiles without a histogram, histogram
// and heatmap charts.
// The dialog holds no data beyond its widgets; spec() reads them.
#pragma once

#include <QDialog>
#include <QList>

#include "core/api.h"
#include "core/dashboard.h"

class CollectorClient;
class DataSourceClient;
class DataSources;
class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;
class QVBoxLayout;

class PanelEditor : public QDialog {
  Q_OBJECT
 public:
  PanelEditor(CollectorClient* client, const tally::dash::PanelSpec& spec,
              QWidget* parent = nullptr);
  PanelEditor(CollectorClient* client, DataSources* sources, const tally::dash::PanelSpec& spec,
              QWidget* parent = nullptr);

  tally::dash::PanelSpec spec() const;

  // For tests and scripted use: the widgets by role.
  QComboBox* sourceCombo() const { return m_source; }
  QLineEdit* promqlEdit() const { return m_promql; }
  QLabel* promqlPreview() const { return m_preview; }
  QLabel* noteLabel() const { return m_note; }
  QComboBox* metricCombo() const { return m_metric; }
  QComboBox* fnCombo() const { return m_fn; }
  QComboBox* chartCombo() const { return m_chart; }
  QListWidget* groupByList() const { return m_groupBy; }
  QLineEdit* titleEdit() const { return m_title; }
  QLineEdit* unitEdit() const { return m_unit; }
  QCheckBox* logYCheck() const { return m_logY; }
  QComboBox* reduceCombo() const { return m_reduce; }
  QLineEdit* thresholdsEdit() const { return m_thresholds; }
  QLineEdit* alertEdit() const { return m_alert; }
  QCheckBox* legendTableCheck() const { return m_legendTable; }
  // More queries (B, C, ...), an offset of query A and an expression between them.
  struct QueryRow {
    QWidget* row;
    QString ref;
    QComboBox* metric;
    QComboBox* fn;
    QLineEdit* filters;  // "status=~5.., endpoint!=/login"
    QLineEdit* groupBy;  // "endpoint, status"
    QLineEdit* offset;   // "1w"
  };
  const QList<QueryRow>& queryRows() const { return m_queryRows; }
  QueryRow addQueryRow(const tally::dash::QuerySpec& query = {});
  QPushButton* addQueryButton() const { return m_addQuery; }
  QLineEdit* offsetEdit() const { return m_offset; }
  QLineEdit* expressionEdit() const { return m_expression; }
  QPushButton* addFilterButton() const { return m_addFilter; }
  struct FilterRow {
    QWidget* row;
    QComboBox* key;
    QComboBox* op;
    QComboBox* value;
  };
  const QList<FilterRow>& filterRows() const { return m_rows; }
  FilterRow addFilterRow(const tally::dash::TagFilter& filter = {});
  bool hasTags() const { return m_tagsLoaded; }
  const tally::dash::TagValues& tagValues() const { return m_tags; }

 public slots:
  void accept() override;

 signals:
  void tagsLoaded(const QString& metric);
  void metricsLoaded();

 private:
  void loadMetrics();
  void loadTags(const QString& metric);
  void sourceChanged();
  // The chosen source's client: dataSourceFor(), or without one (no collector client, or a source
  // the dashboard no longer defines) a client that lists nothing but says what the source can do.
  DataSourceClient* source() const;
  void updatePreview();
  void updateForKind();
  void fillValues(FilterRow& row);
  void removeRow(QWidget* row);

  CollectorClient* m_client;
  DataSources* m_sources;
  mutable DataSourceClient* m_offline = nullptr;
  mutable std::string m_offlineName;
  tally::dash::PanelSpec m_original;
  std::vector<tally::dash::MetricInfo> m_metrics;
  tally::dash::TagValues m_tags;
  bool m_tagsLoaded = false;
  QStringList m_pendingGroupBy;

  QComboBox* m_source;
  QLineEdit* m_promql;
  QLabel* m_preview;
  QLabel* m_note;
  QWidget* m_promRow;
  QComboBox* m_metric;
  QLabel* m_kindLabel;
  QVBoxLayout* m_filterLayout;
  QPushButton* m_addFilter;
  QList<FilterRow> m_rows;
  QListWidget* m_groupBy;
  QComboBox* m_fn;
  QComboBox* m_chart;
  QLineEdit* m_title;
  QLineEdit* m_unit;
  QComboBox* m_reduce;
  QLineEdit* m_thresholds;
  QLineEdit* m_alert;
  QCheckBox* m_legendTable;
  QCheckBox* m_logY;
  QLineEdit* m_offset;
  QLineEdit* m_expression;
  QPushButton* m_addQuery;
  QVBoxLayout* m_queryLayout;
  QList<QueryRow> m_queryRows;
  QLabel* m_error;
};
