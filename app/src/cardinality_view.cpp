#include "cardinality_view.h"

#include <QDateTime>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QTableView>
#include <QVBoxLayout>

#include "collector_client.h"

using tally::dash::Cardinality;

void CardinalityModel::setAnswer(const Cardinality& c) {
  beginResetModel();
  m_answer = c;
  endResetModel();
}

QString CardinalityModel::metricAt(int row) const {
  if (m_table != Table::kMetrics || row < 0 || row >= rowCount()) return {};
  return QString::fromStdString(m_answer.topMetrics[static_cast<size_t>(row)].name);
}

int CardinalityModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid()) return 0;
  return static_cast<int>(m_table == Table::kMetrics ? m_answer.topMetrics.size()
                                                     : m_answer.topTagKeys.size());
}

int CardinalityModel::columnCount(const QModelIndex& parent) const {
  if (parent.isValid()) return 0;
  return m_table == Table::kMetrics ? 4 : 3;
}

QVariant CardinalityModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount() || index.column() >= columnCount()) return {};
  const auto r = static_cast<size_t>(index.row());
  const int col = index.column();
  if (role == Qt::TextAlignmentRole && col > (m_table == Table::kMetrics ? 1 : 0))
    return QVariant(Qt::AlignRight | Qt::AlignVCenter);
  if (role != Qt::DisplayRole && role != Qt::ToolTipRole) return {};
  if (m_table == Table::kMetrics) {
    const auto& m = m_answer.topMetrics[r];
    if (role == Qt::ToolTipRole)
      return m.overflow ? tr("%1 new tag combinations folded into %2{__overflow__=\"true\"}")
                              .arg(m.overflow)
                              .arg(QString::fromStdString(m.name))
                        : QVariant();
    switch (col) {
      case 0:
        return QString::fromStdString(m.name);
      case 1:
        return m.kind ? QString::fromLatin1(tally::kind_name(*m.kind)) : QString();
      case 2:
        return QVariant::fromValue<qlonglong>(m.series);
      default:
        return QVariant::fromValue<qlonglong>(m.overflow);
    }
  }
  if (role == Qt::ToolTipRole) return {};
  const auto& k = m_answer.topTagKeys[r];
  switch (col) {
    case 0:
      return QString::fromStdString(k.key);
    case 1:
      return QVariant::fromValue<qlonglong>(k.values);
    default:
      return QVariant::fromValue<qlonglong>(k.series);
  }
}

QVariant CardinalityModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  static const char* kMetrics[] = {"Metric", "Kind", "Series", "Overflow"};
  static const char* kKeys[] = {"Tag key", "Values", "Series"};
  if (section < 0 || section >= columnCount()) return {};
  return tr(m_table == Table::kMetrics ? kMetrics[section] : kKeys[section]);
}

QString CardinalityView::createdText(const Cardinality& c) {
  int64_t total = 0, peak = 0, peakAt = 0;
  for (const auto& [t, n] : c.createdPerMinute) {
    total += n;
    if (n > peak) {
      peak = n;
      peakAt = t;
    }
  }
  if (total == 0) return tr("No series created in the last hour");
  return tr("%1 series created in the last hour, most (%2) in the minute of %3 UTC")
      .arg(total)
      .arg(peak)
      .arg(QDateTime::fromSecsSinceEpoch(peakAt, Qt::UTC).toString("HH:mm"));
}

CardinalityView::CardinalityView(CollectorClient* client, QWidget* parent)
    : QWidget(parent),
      m_client(client),
      m_metrics(new CardinalityModel(CardinalityModel::Table::kMetrics, this)),
      m_keys(new CardinalityModel(CardinalityModel::Table::kTagKeys, this)),
      m_metricsView(new QTableView(this)),
      m_keysView(new QTableView(this)),
      m_summary(new QLabel(this)),
      m_created(new QLabel(this)) {
  m_summary->setWordWrap(true);
  m_created->setWordWrap(true);
  for (auto [view, model] : {std::pair{m_metricsView, m_metrics}, {m_keysView, m_keys}}) {
    view->setModel(model);
    view->setSelectionBehavior(QAbstractItemView::SelectRows);
    view->setSelectionMode(QAbstractItemView::SingleSelection);
    view->setEditTriggers(QAbstractItemView::NoEditTriggers);
    view->verticalHeader()->hide();
    view->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
  }
  m_metricsView->setObjectName("cardinalityMetrics");
  m_keysView->setObjectName("cardinalityTagKeys");
  auto* refresh = new QPushButton(tr("Refresh"), this);
  auto* open = new QPushButton(tr("Open metric"), this);
  open->setObjectName("openMetric");
  open->setToolTip(tr("Add a panel for the selected metric"));
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(refresh);
  buttons->addWidget(open);
  buttons->addStretch(1);
  auto* l = new QVBoxLayout(this);
  l->addWidget(m_summary);
  l->addWidget(m_metricsView, 2);
  l->addWidget(m_keysView, 1);
  l->addWidget(m_created);
  l->addLayout(buttons);
  connect(refresh, &QPushButton::clicked, this, &CardinalityView::reload);
  connect(m_metricsView, &QTableView::doubleClicked, this, [this](const QModelIndex& i) {
    if (QString m = m_metrics->metricAt(i.row()); !m.isEmpty()) emit metricActivated(m);
  });
  connect(open, &QPushButton::clicked, this, [this] {
    const QModelIndex i = m_metricsView->currentIndex();
    if (QString m = m_metrics->metricAt(i.row()); !m.isEmpty()) emit metricActivated(m);
  });
}

void CardinalityView::reload() {
  m_client->fetchCardinality(50, this, [this](tally::Result<Cardinality> r) {
    if (!r) {
      m_summary->setText(
          tr("Cardinality unavailable: %1").arg(QString::fromStdString(r.status().message())));
      return;
    }
    showAnswer(*r);
  });
}

void CardinalityView::showAnswer(const Cardinality& c) {
  m_metrics->setAnswer(c);
  m_keys->setAnswer(c);
  m_summary->setText(tr("%1 series in %2 metrics; %3 new tag combinations folded into "
                        "__overflow__ series. Limits: %4 series per metric, %5 in total, %6 new "
                        "per producer a minute.")
                         .arg(c.series)
                         .arg(c.metrics)
                         .arg(c.overflowTotal)
                         .arg(c.maxPerMetric)
                         .arg(c.maxTotal)
                         .arg(c.maxNewPerMinute));
  m_created->setText(createdText(c));
  emit loaded();
}
