// MetricTreeModel: the collector's metrics as a tree of their dotted names
// ("api" > "errors" for api.errors). A node may be both a metric and a prefix of others.
// Columns: name, kind, series. Metric nodes drag as kMetricMimeType (and text/plain) onto panels,
// with the data source they come from as kSourceMimeType ("" = the collector).
// Thread-safety: GUI thread.
#pragma once

#include <QAbstractItemModel>
#include <QIcon>
#include <memory>
#include <vector>

#include "core/api.h"

inline constexpr const char* kMetricMimeType = "application/x-tally-metric";
inline constexpr const char* kSourceMimeType = "application/x-tally-source";

class MetricTreeModel : public QAbstractItemModel {
  Q_OBJECT
 public:
  enum Roles { MetricNameRole = Qt::UserRole + 1, KindRole, IsMetricRole };
  enum Columns { NameColumn, KindColumn, SeriesColumn, ColumnCount };

  explicit MetricTreeModel(QObject* parent = nullptr);
  ~MetricTreeModel() override;

  void setMetrics(const std::vector<tally::dash::MetricInfo>& metrics);
  const std::vector<tally::dash::MetricInfo>& metrics() const { return m_metrics; }
  // The data source the metrics come from ("" = the collector); travels with drags.
  void setSource(const QString& source) { m_source = source; }
  QString source() const { return m_source; }
  std::optional<tally::Kind> metricKind(const QString& metric) const;  // nullopt if unknown
  QString kindOf(const QString& metric) const;                         // its name, "" if unknown
  QModelIndex indexOfMetric(const QString& metric) const;
  static QIcon kindIcon(std::optional<tally::Kind> kind);  // a folder for none

  QModelIndex index(int row, int column, const QModelIndex& parent = {}) const override;
  QModelIndex parent(const QModelIndex& child) const override;
  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;
  QStringList mimeTypes() const override;
  QMimeData* mimeData(const QModelIndexList& indexes) const override;

 private:
  struct Node {
    QString segment;
    QString path;
    Node* parent = nullptr;
    int row = 0;
    int metricIndex = -1;  // into m_metrics, or -1 for a pure prefix
    std::vector<std::unique_ptr<Node>> children;
  };
  Node* nodeOf(const QModelIndex& index) const;

  std::vector<tally::dash::MetricInfo> m_metrics;
  std::unique_ptr<Node> m_root;
  QString m_source;
};
