// CardinalityView: the "Cardinality" dock: which metrics hold the most series (and how many new
// tag combinations the collector folded into their __overflow__ series), which tag keys have the
// most distinct values, and how many series were created per minute in the last hour
// (GET /api/cardinality, docs/SECURITY.md "Cardinality limits"). Double-click a metric (or
// "Open") to add a panel for it. CardinalityModel holds one answer's rows for both tables.
// Thread-safety: GUI thread.
#pragma once

#include <QAbstractTableModel>
#include <QWidget>

#include "core/api.h"

class CollectorClient;
class QLabel;
class QTableView;

// The rows of one table of a Cardinality answer: kMetrics (Metric, Kind, Series, Overflow) or
// kTagKeys (Tag key, Values, Series).
class CardinalityModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum class Table { kMetrics, kTagKeys };
  explicit CardinalityModel(Table table, QObject* parent = nullptr)
      : QAbstractTableModel(parent), m_table(table) {}

  void setAnswer(const tally::dash::Cardinality& c);
  QString metricAt(int row) const;  // kMetrics; "" out of range

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

 private:
  Table m_table;
  tally::dash::Cardinality m_answer;
};

class CardinalityView : public QWidget {
  Q_OBJECT
 public:
  explicit CardinalityView(CollectorClient* client, QWidget* parent = nullptr);

  CardinalityModel* metricsModel() const { return m_metrics; }
  CardinalityModel* tagKeysModel() const { return m_keys; }
  QTableView* metricsView() const { return m_metricsView; }
  QLabel* summary() const { return m_summary; }
  // "24 created in the last hour, most (24) at 06:21 UTC".
  static QString createdText(const tally::dash::Cardinality& c);

 public slots:
  void reload();

 signals:
  void metricActivated(const QString& metric);
  void loaded();

 private:
  void showAnswer(const tally::dash::Cardinality& c);

  CollectorClient* m_client;
  CardinalityModel* m_metrics;
  CardinalityModel* m_keys;
  QTableView* m_metricsView;
  QTableView* m_keysView;
  QLabel* m_summary;
  QLabel* m_created;
};
