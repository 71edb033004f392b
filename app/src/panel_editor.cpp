#include "panel_editor.h"

#include <QCheckBox>
#include <QComboBox>
#include <QCompleter>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QStandardItemModel>
#include <QToolButton>
#include <QVBoxLayout>

#include "collector_client.h"
#include "data_source_client.h"
#include "data_sources.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::dash;

namespace {
struct ChartChoice {
  ChartType type;
  const char* label;
};
const ChartChoice kCharts[] = {{ChartType::Line, "Line"},
                               {ChartType::StackedArea, "Stacked area"},
                               {ChartType::Bars, "Bars per bucket"},
                               {ChartType::Histogram, "Histogram (distribution)"},
                               {ChartType::Heatmap, "Heatmap over time (distribution)"},
                               {ChartType::Stat, "Stat (one number per series)"},
                               {ChartType::Gauge, "Gauge"},
                               {ChartType::Table, "Table (last, min, max, avg, total)"}};
const char* fnLabel(Fn fn) {
  switch (fn) {
    case Fn::kRate:
      return "rate per second";
    case Fn::kAvg:
      return "average";
    case Fn::kP50:
      return "p50 (median)";
    default:
      return fn_name(fn);
  }
}
void setItemEnabled(QComboBox* combo, int index, bool enabled) {
  if (auto* model = qobject_cast<QStandardItemModel*>(combo->model()))
    if (auto* item = model->item(index)) item->setEnabled(enabled);
}
}  // namespace

PanelEditor::PanelEditor(CollectorClient* client, const PanelSpec& spec, QWidget* parent)
    : PanelEditor(client, nullptr, spec, parent) {}

PanelEditor::PanelEditor(CollectorClient* client, DataSources* sources, const PanelSpec& spec,
                         QWidget* parent)
    : QDialog(parent), m_client(client), m_sources(sources), m_original(spec) {
  setWindowTitle(tr("Edit panel"));
  setMinimumWidth(520);

  m_source = new QComboBox(this);
  m_source->setObjectName("sourceCombo");
  m_source->addItem(tr("Tally collector"), QString());
  if (m_sources)
    for (const QString& name : m_sources->names()) m_source->addItem(name, name);
  if (!spec.source.empty() && m_source->findData(QString::fromStdString(spec.source)) < 0)
    m_source->addItem(QString::fromStdString(spec.source), QString::fromStdString(spec.source));
  m_source->setCurrentIndex(std::max(0, m_source->findData(QString::fromStdString(spec.source))));
  m_source->setEnabled(m_source->count() > 1);
  m_source->setToolTip(
      tr("Where the panel's data comes from; add Prometheus-compatible servers under "
         "Dashboard ▸ Data sources"));

  m_metric = new QComboBox(this);
  m_metric->setObjectName("metricCombo");
  m_metric->setEditable(true);
  m_metric->setInsertPolicy(QComboBox::NoInsert);
  m_metric->completer()->setFilterMode(Qt::MatchContains);
  m_metric->completer()->setCompletionMode(QCompleter::PopupCompletion);
  m_metric->setEditText(QString::fromStdString(spec.metric));
  m_kindLabel = new QLabel(this);

  auto* filterBox = new QWidget(this);
  m_filterLayout = new QVBoxLayout(filterBox);
  m_filterLayout->setContentsMargins(0, 0, 0, 0);
  m_addFilter = new QPushButton(tr("Add filter"), this);
  m_addFilter->setObjectName("addFilterButton");
  connect(m_addFilter, &QPushButton::clicked, this, [this] { addFilterRow(); });

  m_groupBy = new QListWidget(this);
  m_groupBy->setObjectName("groupByList");
  m_groupBy->setMaximumHeight(90);
  m_groupBy->setFlow(QListView::LeftToRight);
  m_groupBy->setWrapping(true);
  for (const auto& k : spec.groupBy) m_pendingGroupBy << QString::fromStdString(k);

  m_fn = new QComboBox(this);
  m_fn->setObjectName("fnCombo");
  for (Fn fn : kAllFns) m_fn->addItem(tr(fnLabel(fn)), QVariant::fromValue(fn));
  m_fn->setCurrentIndex(std::max(0, m_fn->findData(QVariant::fromValue(spec.fn))));

  m_chart = new QComboBox(this);
  m_chart->setObjectName("chartCombo");
  for (const auto& c : kCharts) m_chart->addItem(tr(c.label), QVariant::fromValue(c.type));
  m_chart->setCurrentIndex(std::max(0, m_chart->findData(QVariant::fromValue(spec.chart))));

  m_title = new QLineEdit(QString::fromStdString(spec.title), this);
  m_title->setObjectName("titleEdit");
  m_title->setPlaceholderText(tr("Automatic: function(metric) by tags"));
  m_unit = new QLineEdit(QString::fromStdString(spec.unit), this);
  m_unit->setObjectName("unitEdit");
  m_unit->setPlaceholderText(tr("e.g. ms, req/s"));
  m_logY = new QCheckBox(tr("Logarithmic y axis"), this);
  m_logY->setObjectName("logYCheck");
  m_logY->setChecked(spec.logY);
  m_reduce = new QComboBox(this);
  m_reduce->setObjectName("reduceCombo");
  for (Reduce r : kAllReduces)
    m_reduce->addItem(QString::fromLatin1(reduce_name(r)), QVariant::fromValue(int(r)));
  m_reduce->setCurrentIndex(m_reduce->findData(QVariant::fromValue(int(spec.reduce))));
  m_reduce->setToolTip(
      tr("How a stat or gauge turns each series into one number, over the "
         "final buckets of the range"));
  m_thresholds = new QLineEdit(QString::fromStdString(formatThresholds(spec.thresholds)), this);
  m_thresholds->setObjectName("thresholdsEdit");
  m_thresholds->setPlaceholderText(tr("e.g. 80 orange, 95 red (value and colour)"));
  m_alert = new QLineEdit(
      spec.alert ? QString::fromStdString(format_alert_rule(*spec.alert)) : QString(), this);
  m_alert->setObjectName("alertEdit");
  m_alert->setPlaceholderText(tr("e.g. avg over 1m > 100 for 2m (each series on its own)"));
  m_offset = new QLineEdit(
      spec.offsetS ? QString::fromStdString(format_duration(spec.offsetS)) : QString(), this);
  m_offset->setObjectName("offsetEdit");
  m_offset->setPlaceholderText(tr("e.g. 1w: the same time last week"));
  m_expression = new QLineEdit(QString::fromStdString(spec.expression), this);
  m_expression->setObjectName("expressionEdit");
  m_expression->setPlaceholderText(
      tr("e.g. B / A * 100 (PromQL; A, B, ... are the queries); empty: draw every query"));
  m_addQuery = new QPushButton(tr("Add query"), this);
  m_addQuery->setObjectName("addQueryButton");
  m_queryLayout = new QVBoxLayout;
  m_queryLayout->setContentsMargins(0, 0, 0, 0);
  m_legendTable = new QCheckBox(tr("Legend as a table (last, min, max, avg)"), this);
  m_legendTable->setObjectName("legendTableCheck");
  m_legendTable->setChecked(spec.legend == LegendMode::Table);
  m_error = new QLabel(this);
  m_error->setStyleSheet("color: #b3261e;");
  m_error->setWordWrap(true);
  m_note = new QLabel(this);
  m_note->setObjectName("noteLabel");
  m_note->setStyleSheet("color: #5f6368;");
  m_note->setWordWrap(true);

  m_promRow = new QWidget(this);
  auto* promLayout = new QVBoxLayout(m_promRow);
  promLayout->setContentsMargins(0, 0, 0, 0);
  m_promql = new QLineEdit(QString::fromStdString(spec.promql), m_promRow);
  m_promql->setObjectName("promqlEdit");
  m_promql->setPlaceholderText(
      tr("Optional; replaces metric, filters, group by and function. "
         "e.g. sum by (job) (rate(http_requests_total[$__interval]))"));
  m_preview = new QLabel(m_promRow);
  m_preview->setObjectName("promqlPreview");
  m_preview->setWordWrap(true);
  m_preview->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_preview->setStyleSheet("color: #5f6368; font-family: monospace;");
  promLayout->addWidget(
      new QLabel(tr("PromQL expression ($__interval = the panel's step):"), m_promRow));
  promLayout->addWidget(m_promql);
  promLayout->addWidget(m_preview);

  auto* form = new QFormLayout;
  form->addRow(tr("Source"), m_source);
  auto* metricRow = new QHBoxLayout;
  metricRow->addWidget(m_metric, 1);
  metricRow->addWidget(m_kindLabel);
  form->addRow(tr("Metric"), metricRow);
  auto* filters = new QVBoxLayout;
  filters->addWidget(filterBox);
  filters->addWidget(m_addFilter, 0, Qt::AlignLeft);
  form->addRow(tr("Filters"), filters);
  form->addRow(tr("Group by"), m_groupBy);
  form->addRow(tr("Function"), m_fn);
  form->addRow(tr("Offset"), m_offset);
  auto* queries = new QVBoxLayout;
  queries->addLayout(m_queryLayout);
  queries->addWidget(m_addQuery, 0, Qt::AlignLeft);
  form->addRow(tr("More queries"), queries);
  form->addRow(tr("Expression"), m_expression);
  form->addRow(QString(), m_note);
  form->addRow(tr("Chart"), m_chart);
  form->addRow(tr("Title"), m_title);
  form->addRow(tr("Unit"), m_unit);
  form->addRow(QString(), m_logY);
  form->addRow(tr("Value"), m_reduce);
  form->addRow(tr("Thresholds"), m_thresholds);
  form->addRow(tr("Alert when"), m_alert);
  form->addRow(QString(), m_legendTable);

  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  connect(buttons, &QDialogButtonBox::accepted, this, &PanelEditor::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &PanelEditor::reject);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addWidget(m_promRow);
  layout->addWidget(m_error);
  layout->addWidget(buttons);

  for (const auto& f : spec.filters) addFilterRow(f);
  for (const auto& q : spec.queries) addQueryRow(q);
  connect(m_addQuery, &QPushButton::clicked, this, [this] { addQueryRow(); });
  connect(m_expression, &QLineEdit::textChanged, this, &PanelEditor::updatePreview);
  connect(m_offset, &QLineEdit::textChanged, this, &PanelEditor::updatePreview);

  connect(m_metric, &QComboBox::currentTextChanged, this, [this](const QString& text) {
    updateForKind();
    loadTags(text);
  });
  connect(m_chart, &QComboBox::currentIndexChanged, this, &PanelEditor::updateForKind);
  connect(m_fn, &QComboBox::currentIndexChanged, this, &PanelEditor::updatePreview);
  connect(m_promql, &QLineEdit::textChanged, this, &PanelEditor::updateForKind);
  connect(m_groupBy, &QListWidget::itemChanged, this, &PanelEditor::updatePreview);
  connect(m_source, &QComboBox::currentIndexChanged, this, &PanelEditor::sourceChanged);

  m_promRow->setVisible(source()->features().expressions);
  loadMetrics();
  loadTags(m_metric->currentText());
  updateForKind();
}

DataSourceClient* PanelEditor::source() const {
  const std::string name = m_source->currentData().toString().toStdString();
  if (DataSourceClient* s = dataSourceFor(name, m_client, m_sources)) return s;
  if (!m_offline || m_offlineName != name) {
    delete m_offline;
    m_offlineName = name;
    auto* self = const_cast<PanelEditor*>(this);
    if (name.empty())
      m_offline = new CollectorSource(nullptr, self);
    else
      m_offline = new PromSource(DataSource{name, "", {}, 10}, self);
  }
  return m_offline;
}

void PanelEditor::sourceChanged() {
  const DataSourceClient::Features f = source()->features();
  m_promRow->setVisible(f.expressions);
  for (auto& row : m_rows) {
    const int notRegex = row.op->findText(filterOpName(FilterOp::NotRegex));
    if (f.notRegex && notRegex < 0) row.op->addItem(filterOpName(FilterOp::NotRegex));
    if (!f.notRegex && notRegex >= 0) row.op->removeItem(notRegex);
  }
  // Another source has other metrics and labels: what was chosen for the old one goes.
  m_metrics.clear();
  m_groupBy->clear();
  m_pendingGroupBy.clear();
  m_tags.clear();
  m_metric->blockSignals(true);
  m_metric->clear();
  m_metric->blockSignals(false);
  m_metric->setEditText(QString());
  loadMetrics();
  updateForKind();
}

void PanelEditor::loadMetrics() {
  const QString source = m_source->currentData().toString();
  auto apply = [this, source](Result<std::vector<MetricInfo>> r) {
    if (source != m_source->currentData().toString()) return;  // superseded
    if (!r) {
      m_error->setText(
          tr("Cannot list metrics: %1").arg(QString::fromStdString(r.status().message())));
      return;
    }
    m_error->clear();
    m_metrics = *r;
    const QString current = m_metric->currentText();
    m_metric->blockSignals(true);
    m_metric->clear();
    for (const auto& m : m_metrics) m_metric->addItem(QString::fromStdString(m.name));
    m_metric->setEditText(current);
    m_metric->blockSignals(false);
    updateForKind();
    emit metricsLoaded();
  };
  DataSourceClient* client = dataSourceFor(source.toStdString(), m_client, m_sources);
  if (!client) {
    if (!source.isEmpty()) m_error->setText(tr("No data source named '%1'").arg(source));
    return;
  }
  client->fetchMetrics(DataSourceClient::MetricDetail::kNames, this, apply);
}

void PanelEditor::loadTags(const QString& metric) {
  m_tagsLoaded = false;
  m_tags.clear();
  if (metric.isEmpty()) return;
  const QString source = m_source->currentData().toString();
  auto callback = [this, metric, source](Result<TagValues> r) {
    if (metric != m_metric->currentText() || source != m_source->currentData().toString())
      return;  // superseded
    m_tags = r ? *r : TagValues{};
    // Group-by choices: keep what was checked, add the metric's keys.
    QStringList checked = m_pendingGroupBy;
    for (int i = 0; i < m_groupBy->count(); ++i)
      if (m_groupBy->item(i)->checkState() == Qt::Checked) checked << m_groupBy->item(i)->text();
    m_pendingGroupBy.clear();
    m_groupBy->clear();
    QStringList keys;
    for (const auto& [k, v] : m_tags) keys << QString::fromStdString(k);
    for (const QString& k : checked)
      if (!keys.contains(k)) keys << k;
    for (const QString& k : keys) {
      auto* item = new QListWidgetItem(k, m_groupBy);
      item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
      item->setCheckState(checked.contains(k) ? Qt::Checked : Qt::Unchecked);
    }
    for (auto& row : m_rows) {
      const QString key = row.key->currentText();
      row.key->blockSignals(true);
      row.key->clear();
      for (const auto& [k, v] : m_tags) row.key->addItem(QString::fromStdString(k));
      row.key->setEditText(key);
      row.key->blockSignals(false);
      fillValues(row);
    }
    m_tagsLoaded = true;
    updatePreview();
    emit tagsLoaded(metric);
  };
  if (DataSourceClient* client = dataSourceFor(source.toStdString(), m_client, m_sources))
    client->fetchTags(metric.toStdString(), this, callback);
}

PanelEditor::FilterRow PanelEditor::addFilterRow(const TagFilter& filter) {
  auto* row = new QWidget(this);
  auto* hl = new QHBoxLayout(row);
  hl->setContentsMargins(0, 0, 0, 0);
  FilterRow r{row, new QComboBox(row), new QComboBox(row), new QComboBox(row)};
  r.key->setEditable(true);
  r.key->setObjectName("filterKey");
  r.key->setInsertPolicy(QComboBox::NoInsert);
  for (const auto& [k, v] : m_tags) r.key->addItem(QString::fromStdString(k));
  r.key->setEditText(QString::fromStdString(filter.key));
  r.op->setObjectName("filterOp");
  for (FilterOp op : {FilterOp::Eq, FilterOp::NotEq, FilterOp::Regex})
    r.op->addItem(filterOpName(op));
  if (source()->features().notRegex) r.op->addItem(filterOpName(FilterOp::NotRegex));
  r.op->setCurrentText(filterOpName(filter.op));
  r.op->setToolTip(
      tr("= equals, != differs, =~ matches the regular expression (whole value), "
         "!~ does not match it (Prometheus sources)"));
  r.value->setEditable(true);
  r.value->setObjectName("filterValue");
  r.value->setInsertPolicy(QComboBox::NoInsert);
  r.value->completer()->setFilterMode(Qt::MatchContains);
  r.value->setMinimumWidth(160);
  auto* remove = new QToolButton(row);
  remove->setText(QStringLiteral("✕"));
  remove->setToolTip(tr("Remove this filter"));
  hl->addWidget(r.key, 2);
  hl->addWidget(r.op);
  hl->addWidget(r.value, 3);
  hl->addWidget(remove);
  m_filterLayout->addWidget(row);
  m_rows.append(r);
  fillValues(m_rows.last());
  r.value->setEditText(QString::fromStdString(filter.value));
  connect(remove, &QToolButton::clicked, this, [this, row] { removeRow(row); });
  connect(r.op, &QComboBox::currentIndexChanged, this, &PanelEditor::updatePreview);
  connect(r.value, &QComboBox::currentTextChanged, this, &PanelEditor::updatePreview);
  connect(r.key, &QComboBox::currentTextChanged, this, [this, row] {
    for (auto& x : m_rows)
      if (x.row == row) fillValues(x);
  });
  return r;
}

void PanelEditor::fillValues(FilterRow& row) {
  const QString current = row.value->currentText();
  row.value->blockSignals(true);
  row.value->clear();
  auto it = m_tags.find(row.key->currentText().toStdString());
  if (it != m_tags.end())
    for (const auto& v : it->second) row.value->addItem(QString::fromStdString(v));
  row.value->setEditText(current);
  row.value->blockSignals(false);
}

void PanelEditor::removeRow(QWidget* row) {
  for (int i = 0; i < m_rows.size(); ++i)
    if (m_rows[i].row == row) {
      m_rows.removeAt(i);
      row->deleteLater();
      updatePreview();
      return;
    }
}

void PanelEditor::updateForKind() {
  DataSourceClient* src = source();
  const DataSourceClient::Features f = src->features();
  std::optional<Kind> kind;  // nullopt when the source does not say
  for (const auto& m : m_metrics)
    if (QString::fromStdString(m.name) == m_metric->currentText()) kind = m.kind;
  m_kindLabel->setText(f.distributions && kind ? QString::fromLatin1(kind_name(*kind)) : QString());
  // What the source cannot compute is disabled; a source that does not know kinds says why.
  const std::string metric = m_metric->currentText().trimmed().toStdString();
  QStringList notes;
  for (int i = 0; i < m_fn->count(); ++i) {
    const Fn fn = m_fn->itemData(i).value<Fn>();
    const Status st = src->supportsFunction(fn, metric, kind, m_metrics);
    setItemEnabled(m_fn, i, st.is_ok());
    if (!f.distributions && !st && fn == Fn::kP99) {
      QString why = QString::fromStdString(st.message());
      notes << why.left(1).toUpper() + why.mid(1) + '.';
    }
  }
  for (int i = 0; i < m_chart->count(); ++i) {
    setItemEnabled(m_chart, i, src->supportsChart(m_chart->itemData(i).value<ChartType>(), kind));
  }
  if (!f.distributions) {
    if (chartNeedsDistribution(m_chart->currentData().value<ChartType>()))
      m_chart->setCurrentIndex(m_chart->findData(QVariant::fromValue(ChartType::Line)));
    notes << tr("Histogram and heatmap charts need the Tally collector's distributions.");
  }
  const bool raw = f.expressions && !m_promql->text().trimmed().isEmpty();
  if (raw)
    notes.prepend(
        tr("The PromQL expression is used as written: metric, filters, group by and function are "
           "ignored."));
  m_note->setText(notes.join(' '));
  const bool distChart = chartNeedsDistribution(m_chart->currentData().value<ChartType>());
  m_fn->setEnabled(!raw && !distChart);
  m_groupBy->setEnabled(!raw && !distChart);
  const ChartType chart = m_chart->currentData().value<ChartType>();
  m_reduce->setEnabled(chart == ChartType::Stat || chart == ChartType::Gauge);
  m_legendTable->setEnabled(!chartIsReduced(chart) && !distChart);
  m_logY->setEnabled(!chartIsReduced(chart));
  m_alert->setEnabled(!distChart);
  updatePreview();
}

void PanelEditor::updatePreview() {
  DataSourceClient* src = source();
  if (!src->features().expressions) return;
  PanelSpec s = spec();
  if (!s.hasQuery()) {
    m_preview->setText(tr("Choose a metric or write an expression."));
    return;
  }
  // The step follows the panel's width and range; a minute shows the shape.
  auto e = src->queryText(s, 60);
  if (e && e->empty())  // the collector's own query API answers a panel of one query
    m_preview->setText(
        tr("Asked as /api/query. A PromQL expression here, more queries, an "
           "expression or an offset make it PromQL."));
  else
    m_preview->setText(e ? tr("At a 1m step: %1").arg(QString::fromStdString(*e))
                         : QString::fromStdString(e.status().message()));
}

PanelSpec PanelEditor::spec() const {
  PanelSpec s = m_original;
  s.source = m_source->currentData().toString().toStdString();
  s.promql =
      source()->features().expressions ? m_promql->text().trimmed().toStdString() : std::string();
  s.metric = m_metric->currentText().trimmed().toStdString();
  s.filters.clear();
  for (const auto& r : m_rows) {
    TagFilter f;
    f.key = r.key->currentText().trimmed().toStdString();
    if (f.key.empty()) continue;
    f.op = parseFilterOp(r.op->currentText().toStdString()).value_or(FilterOp::Eq);
    f.value = r.value->currentText().toStdString();
    s.filters.push_back(std::move(f));
  }
  s.groupBy.clear();
  if (m_groupBy->count() == 0)
    for (const QString& k : m_pendingGroupBy) s.groupBy.push_back(k.toStdString());
  for (int i = 0; i < m_groupBy->count(); ++i)
    if (m_groupBy->item(i)->checkState() == Qt::Checked)
      s.groupBy.push_back(m_groupBy->item(i)->text().toStdString());
  s.fn = m_fn->currentData().value<Fn>();
  s.chart = m_chart->currentData().value<ChartType>();
  s.title = m_title->text().trimmed().toStdString();
  s.unit = m_unit->text().trimmed().toStdString();
  s.logY = m_logY->isChecked();
  s.reduce = Reduce(m_reduce->currentData().toInt());
  if (auto t = parseThresholds(m_thresholds->text().toStdString())) s.thresholds = *t;
  s.alert.reset();
  if (auto a = parse_alert_rule(m_alert->text().toStdString())) s.alert = *a;
  s.legend = m_legendTable->isChecked() ? LegendMode::Table : LegendMode::List;
  s.offsetS = 0;
  if (auto d = parse_duration(m_offset->text().toStdString())) s.offsetS = *d;
  s.expression = m_expression->text().trimmed().toStdString();
  s.queries.clear();
  for (const auto& r : m_queryRows) {
    QuerySpec q;
    q.ref = r.ref.toStdString();
    q.metric = r.metric->currentText().trimmed().toStdString();
    q.fn = r.fn->currentData().value<Fn>();
    if (auto f = parseFilterList(r.filters->text().toStdString())) q.filters = *f;
    for (const QString& k : r.groupBy->text().split(',', Qt::SkipEmptyParts))
      if (!k.trimmed().isEmpty()) q.groupBy.push_back(k.trimmed().toStdString());
    if (auto d = parse_duration(r.offset->text().toStdString())) q.offsetS = *d;
    s.queries.push_back(std::move(q));
  }
  return s;
}

PanelEditor::QueryRow PanelEditor::addQueryRow(const QuerySpec& query) {
  // The next free letter after A.
  QString ref = QString::fromStdString(query.ref);
  for (char c = 'B'; ref.isEmpty() && c <= 'Z'; ++c) {
    bool used = false;
    for (const auto& r : m_queryRows) used |= r.ref == QChar(c);
    if (!used) ref = QChar(c);
  }
  QueryRow r;
  r.ref = ref;
  r.row = new QWidget(this);
  auto* h = new QHBoxLayout(r.row);
  h->setContentsMargins(0, 0, 0, 0);
  h->addWidget(new QLabel(ref, r.row));
  r.metric = new QComboBox(r.row);
  r.metric->setEditable(true);
  r.metric->setObjectName("queryMetric" + ref);
  for (const auto& m : m_metrics) r.metric->addItem(QString::fromStdString(m.name));
  r.metric->setEditText(QString::fromStdString(query.metric));
  r.metric->setMinimumContentsLength(14);
  r.fn = new QComboBox(r.row);
  for (Fn fn : kAllFns) r.fn->addItem(QString::fromLatin1(fn_name(fn)), QVariant::fromValue(fn));
  r.fn->setCurrentIndex(std::max(0, r.fn->findData(QVariant::fromValue(query.fn))));
  r.filters = new QLineEdit(QString::fromStdString(formatFilterList(query.filters)), r.row);
  r.filters->setPlaceholderText(tr("filters: status=~5.., region!=eu"));
  QStringList groups;
  for (const auto& g : query.groupBy) groups << QString::fromStdString(g);
  r.groupBy = new QLineEdit(groups.join(", "), r.row);
  r.groupBy->setPlaceholderText(tr("group by"));
  r.offset = new QLineEdit(
      query.offsetS ? QString::fromStdString(format_duration(query.offsetS)) : QString(), r.row);
  r.offset->setPlaceholderText(tr("offset"));
  r.offset->setMaximumWidth(60);
  auto* remove = new QToolButton(r.row);
  remove->setText(QStringLiteral("✕"));
  remove->setToolTip(tr("Remove query %1").arg(ref));
  h->addWidget(r.metric, 2);
  h->addWidget(r.fn);
  h->addWidget(r.filters, 2);
  h->addWidget(r.groupBy, 1);
  h->addWidget(r.offset);
  h->addWidget(remove);
  m_queryLayout->addWidget(r.row);
  m_queryRows.append(r);
  QWidget* row = r.row;
  connect(remove, &QToolButton::clicked, this, [this, row] {
    for (qsizetype i = 0; i < m_queryRows.size(); ++i)
      if (m_queryRows[i].row == row) m_queryRows.removeAt(i);
    row->deleteLater();
    updatePreview();
  });
  for (QLineEdit* e : {r.filters, r.groupBy, r.offset})
    connect(e, &QLineEdit::textChanged, this, &PanelEditor::updatePreview);
  connect(r.metric, &QComboBox::currentTextChanged, this, &PanelEditor::updatePreview);
  connect(r.fn, &QComboBox::currentIndexChanged, this, &PanelEditor::updatePreview);
  m_addQuery->setEnabled(m_queryRows.size() < qsizetype(kMaxPanelQueries));
  updatePreview();
  return r;
}

void PanelEditor::accept() {
  PanelSpec s = spec();
  DataSourceClient* src = source();
  const DataSourceClient::Features f = src->features();
  if (!s.hasQuery()) {
    m_error->setText(f.expressions ? tr("Choose a metric or write a PromQL expression.")
                                   : tr("Choose a metric."));
    return;
  }
  // A source that knows every metric's kind offered only what it computes; one that does not is
  // asked about the function and metric chosen.
  if (!f.distributions && s.promql.empty()) {
    if (auto st = src->supportsFunction(s.fn, s.metric, std::nullopt, m_metrics); !st) {
      m_error->setText(QString::fromStdString(st.message()));
      return;
    }
  }
  if (!m_offset->text().trimmed().isEmpty()) {
    if (auto d = parse_duration(m_offset->text().toStdString()); !d) {
      m_error->setText(tr("Offset: %1").arg(QString::fromStdString(d.status().message())));
      return;
    }
  }
  for (const auto& r : m_queryRows) {
    if (auto fl = parseFilterList(r.filters->text().toStdString()); !fl) {
      m_error->setText(
          tr("Query %1: %2").arg(r.ref, QString::fromStdString(fl.status().message())));
      return;
    }
    if (!r.offset->text().trimmed().isEmpty()) {
      if (auto d = parse_duration(r.offset->text().toStdString()); !d) {
        m_error->setText(
            tr("Query %1 offset: %2").arg(r.ref, QString::fromStdString(d.status().message())));
        return;
      }
    }
  }
  if (auto t = parseThresholds(m_thresholds->text().toStdString()); !t) {
    m_error->setText(tr("Thresholds: %1").arg(QString::fromStdString(t.status().message())));
    return;
  }
  if (!m_alert->text().trimmed().isEmpty()) {
    if (auto a = parse_alert_rule(m_alert->text().toStdString()); !a) {
      m_error->setText(tr("Alert: %1").arg(QString::fromStdString(a.status().message())));
      return;
    }
  }
  if (auto st = validatePanel(s, "panel"); !st) {
    m_error->setText(QString::fromStdString(st.message()));
    return;
  }
  QDialog::accept();
}
