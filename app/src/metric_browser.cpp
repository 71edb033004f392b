#include "metric_browser.h"

#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QSortFilterProxyModel>
#include <QTimer>
#include <QToolButton>
#include <QTreeView>
#include <QVBoxLayout>
#include <algorithm>

#include <QComboBox>

#include "collector_client.h"
#include "data_source_client.h"
#include "data_sources.h"
#include "metric_tree_model.h"

MetricBrowser::MetricBrowser(CollectorClient* client, QWidget* parent)
    : QWidget(parent),
      m_client(client),
      m_model(new MetricTreeModel(this)),
      m_proxy(new QSortFilterProxyModel(this)) {
  m_proxy->setSourceModel(m_model);
  m_proxy->setRecursiveFilteringEnabled(true);
  m_proxy->setFilterRole(MetricTreeModel::MetricNameRole);
  m_proxy->setFilterCaseSensitivity(Qt::CaseInsensitive);
  m_proxy->setFilterKeyColumn(MetricTreeModel::NameColumn);

  m_sourceCombo = new QComboBox(this);
  m_sourceCombo->setObjectName("metricSourceCombo");
  m_sourceCombo->setToolTip(tr("Whose metrics to list"));
  m_sourceCombo->addItem(tr("Tally collector"), QString());
  m_sourceCombo->hide();
  connect(m_sourceCombo, &QComboBox::currentIndexChanged, this, &MetricBrowser::reload);
  m_search = new QLineEdit(this);
  m_search->setObjectName("metricSearch");
  m_search->setPlaceholderText(tr("Search metrics"));
  m_search->setClearButtonEnabled(true);
  auto* refresh = new QToolButton(this);
  refresh->setText(QStringLiteral("⟳"));
  refresh->setToolTip(tr("Reload the metric list"));
  connect(refresh, &QToolButton::clicked, this, &MetricBrowser::reload);

  m_view = new QTreeView(this);
  m_view->setObjectName("metricTree");
  m_view->setModel(m_proxy);
  m_view->setDragEnabled(true);
  m_view->setDragDropMode(QAbstractItemView::DragOnly);
  m_view->setUniformRowHeights(true);
  m_view->header()->setStretchLastSection(false);
  m_view->header()->setSectionResizeMode(MetricTreeModel::NameColumn, QHeaderView::Stretch);
  m_view->header()->setSectionResizeMode(MetricTreeModel::KindColumn,
                                         QHeaderView::ResizeToContents);
  m_view->header()->setSectionResizeMode(MetricTreeModel::SeriesColumn,
                                         QHeaderView::ResizeToContents);
  m_view->setColumnHidden(MetricTreeModel::KindColumn,
                          true);  // the icon says it; the tooltip spells it
  m_status = new QLabel(this);
  m_status->setWordWrap(true);

  auto* top = new QHBoxLayout;
  top->addWidget(m_search);
  top->addWidget(refresh);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(m_sourceCombo);
  layout->addLayout(top);
  layout->addWidget(m_view);
  layout->addWidget(m_status);

  connect(m_search, &QLineEdit::textChanged, this, [this](const QString& text) {
    m_proxy->setFilterFixedString(text);
    if (!text.isEmpty()) m_view->expandAll();
  });
  // New metrics show up without a click; the list is small (one row per metric name).
  auto* poll = new QTimer(this);
  poll->start(30000);
  connect(poll, &QTimer::timeout, this, &MetricBrowser::reload);
  connect(m_view, &QTreeView::doubleClicked, this, [this](const QModelIndex& index) {
    if (index.data(MetricTreeModel::IsMetricRole).toBool())
      emit metricActivated(index.data(MetricTreeModel::MetricNameRole).toString());
  });
}

void MetricBrowser::setDataSources(DataSources* sources) {
  if (sources == m_sources) return;
  if (m_sources) disconnect(m_sources, nullptr, this, nullptr);
  m_sources = sources;
  connect(m_sources, &DataSources::changed, this, &MetricBrowser::updateSources);
  updateSources();
}

void MetricBrowser::updateSources() {
  const QString current = currentSource();
  m_sourceCombo->blockSignals(true);
  m_sourceCombo->clear();
  m_sourceCombo->addItem(tr("Tally collector"), QString());
  for (const QString& name : m_sources->names()) m_sourceCombo->addItem(name, name);
  const int keep = m_sourceCombo->findData(current);
  m_sourceCombo->setCurrentIndex(std::max(0, keep));
  m_sourceCombo->blockSignals(false);
  m_sourceCombo->setVisible(m_sourceCombo->count() > 1);
  if (keep < 0) reload();
}

QString MetricBrowser::currentSource() const {
  return m_sourceCombo->currentData().toString();
}

void MetricBrowser::reload() {
  const QString source = currentSource();
  DataSourceClient* client = dataSourceFor(source.toStdString(), m_client, m_sources);
  if (!client) return;
  const bool seriesCounts = client->features().seriesCounts;
  client->fetchMetrics(
      DataSourceClient::MetricDetail::kKinds, this,
      [this, source, seriesCounts](tally::Result<std::vector<tally::dash::MetricInfo>> r) {
        if (source != currentSource()) return;  // superseded
        const QString what = source.isEmpty() ? tr("Metrics") : tr("Metrics of %1").arg(source);
        if (!r) {
          m_status->setText(tr("%1: %2").arg(what, QString::fromStdString(r.status().message())));
          return;
        }
        // A reset collapses the tree and drops the selection: only when names or kinds changed.
        auto names = [](const std::vector<tally::dash::MetricInfo>& v) {
          std::vector<std::pair<std::string, std::optional<tally::Kind>>> out;
          for (const auto& m : v) out.emplace_back(m.name, m.kind);
          std::sort(out.begin(), out.end());
          return out;
        };
        if (names(*r) != names(m_model->metrics()) || m_model->rowCount() == 0 ||
            m_model->source() != source) {
          m_model->setSource(source);
          m_model->setMetrics(*r);
          m_view->setColumnHidden(MetricTreeModel::SeriesColumn, !seriesCounts);
          m_view->expandToDepth(0);
        }
        m_status->setText(source.isEmpty()
                              ? tr("%n metric(s)", nullptr, int(r->size()))
                              : tr("%n metric(s) in %1", nullptr, int(r->size())).arg(source));
        emit metricsLoaded();
      });
}
