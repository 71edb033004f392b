#include "metric_tree_model.h"

#include <QMimeData>
#include <algorithm>

MetricTreeModel::MetricTreeModel(QObject* parent)
    : QAbstractItemModel(parent), m_root(std::make_unique<Node>()) {}
MetricTreeModel::~MetricTreeModel() = default;

QIcon MetricTreeModel::kindIcon(std::optional<tally::Kind> kind) {
  static const QIcon counter(":/tally/icons/counter.svg"), gauge(":/tally/icons/gauge.svg"),
      distribution(":/tally/icons/distribution.svg"), folder(":/tally/icons/folder.svg");
  if (kind == tally::Kind::kCounter) return counter;
  if (kind == tally::Kind::kGauge) return gauge;
  if (kind == tally::Kind::kDistribution) return distribution;
  return folder;
}

void MetricTreeModel::setMetrics(const std::vector<tally::dash::MetricInfo>& metrics) {
  beginResetModel();
  m_metrics = metrics;
  std::sort(m_metrics.begin(), m_metrics.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  m_root = std::make_unique<Node>();
  for (int i = 0; i < int(m_metrics.size()); ++i) {
    const QStringList parts = QString::fromStdString(m_metrics[i].name).split('.');
    Node* node = m_root.get();
    QString path;
    for (const QString& part : parts) {
      path = path.isEmpty() ? part : path + '.' + part;
      auto it = std::find_if(node->children.begin(), node->children.end(),
                             [&](const auto& c) { return c->segment == part; });
      if (it == node->children.end()) {
        auto child = std::make_unique<Node>();
        child->segment = part;
        child->path = path;
        child->parent = node;
        child->row = int(node->children.size());
        node->children.push_back(std::move(child));
        node = node->children.back().get();
      } else {
        node = it->get();
      }
    }
    node->metricIndex = i;
  }
  endResetModel();
}

std::optional<tally::Kind> MetricTreeModel::metricKind(const QString& metric) const {
  for (const auto& m : m_metrics)
    if (QString::fromStdString(m.name) == metric) return m.kind;
  return std::nullopt;
}

QString MetricTreeModel::kindOf(const QString& metric) const {
  const auto kind = metricKind(metric);
  return kind ? QString::fromLatin1(tally::kind_name(*kind)) : QString();
}

QModelIndex MetricTreeModel::indexOfMetric(const QString& metric) const {
  Node* node = m_root.get();
  for (const QString& part : metric.split('.')) {
    auto it = std::find_if(node->children.begin(), node->children.end(),
                           [&](const auto& c) { return c->segment == part; });
    if (it == node->children.end()) return {};
    node = it->get();
  }
  return node->metricIndex >= 0 ? createIndex(node->row, 0, node) : QModelIndex();
}

MetricTreeModel::Node* MetricTreeModel::nodeOf(const QModelIndex& index) const {
  return index.isValid() ? static_cast<Node*>(index.internalPointer()) : m_root.get();
}

QModelIndex MetricTreeModel::index(int row, int column, const QModelIndex& parent) const {
  if (column < 0 || column >= ColumnCount || row < 0) return {};
  if (parent.isValid() && parent.column() != 0) return {};
  Node* p = nodeOf(parent);
  if (row >= int(p->children.size())) return {};
  return createIndex(row, column, p->children[size_t(row)].get());
}

QModelIndex MetricTreeModel::parent(const QModelIndex& child) const {
  if (!child.isValid()) return {};
  Node* p = nodeOf(child)->parent;
  if (!p || p == m_root.get()) return {};
  return createIndex(p->row, 0, p);
}

int MetricTreeModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid() && parent.column() != 0) return 0;
  return int(nodeOf(parent)->children.size());
}

int MetricTreeModel::columnCount(const QModelIndex&) const {
  return ColumnCount;
}

QVariant MetricTreeModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid()) return {};
  const Node* n = nodeOf(index);
  const tally::dash::MetricInfo* m =
      n->metricIndex >= 0 ? &m_metrics[size_t(n->metricIndex)] : nullptr;
  const QString kind = m && m->kind ? QString::fromLatin1(tally::kind_name(*m->kind)) : QString();
  switch (role) {
    case Qt::DisplayRole:
      if (index.column() == NameColumn) return n->segment;
      if (index.column() == KindColumn) return kind;
      if (index.column() == SeriesColumn && m && m_source.isEmpty()) return qlonglong(m->series);
      return {};
    case Qt::DecorationRole:
      // A Prometheus source does not say what kind a metric is: no icon rather than a wrong one.
      if (m && kind.isEmpty()) return {};
      return index.column() == NameColumn ? QVariant(kindIcon(m ? m->kind : std::nullopt))
                                          : QVariant();
    case Qt::ToolTipRole:
      if (m && !m_source.isEmpty())
        return QStringLiteral("%1\nfrom data source %2").arg(n->path, m_source);
      return m ? QStringLiteral("%1\n%2, %3 series").arg(n->path, kind).arg(m->series) : n->path;
    case Qt::TextAlignmentRole:
      return index.column() == SeriesColumn ? QVariant(Qt::AlignRight | Qt::AlignVCenter)
                                            : QVariant();
    case MetricNameRole:
      return n->path;
    case KindRole:
      return kind;
    case IsMetricRole:
      return m != nullptr;
  }
  return {};
}

QVariant MetricTreeModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return {};
  switch (section) {
    case NameColumn:
      return tr("Metric");
    case KindColumn:
      return tr("Kind");
    case SeriesColumn:
      return tr("Series");
  }
  return {};
}

Qt::ItemFlags MetricTreeModel::flags(const QModelIndex& index) const {
  if (!index.isValid()) return Qt::NoItemFlags;
  Qt::ItemFlags f = Qt::ItemIsEnabled | Qt::ItemIsSelectable;
  if (nodeOf(index)->metricIndex >= 0) f |= Qt::ItemIsDragEnabled;
  return f;
}

QStringList MetricTreeModel::mimeTypes() const {
  return {QString::fromLatin1(kMetricMimeType), "text/plain"};
}

QMimeData* MetricTreeModel::mimeData(const QModelIndexList& indexes) const {
  for (const QModelIndex& i : indexes) {
    const Node* n = nodeOf(i);
    if (n->metricIndex < 0) continue;
    auto* mime = new QMimeData;
    mime->setData(kMetricMimeType, n->path.toUtf8());
    mime->setData(kSourceMimeType, m_source.toUtf8());
    mime->setText(n->path);
    return mime;
  }
  return nullptr;
}
