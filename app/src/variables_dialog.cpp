#include "variables_dialog.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QVBoxLayout>

#include "collector_client.h"
#include "core/variables.h"
#include "data_source_client.h"
#include "data_sources.h"

using namespace tally;
using namespace tally::dash;

VariablesDialog::VariablesDialog(CollectorClient* client, DataSources* sources,
                                 std::vector<Variable> variables, QWidget* parent)
    : QDialog(parent), m_client(client), m_sources(sources), m_variables(std::move(variables)) {
  setWindowTitle(tr("Dashboard variables"));
  setObjectName("variablesDialog");
  auto* layout = new QVBoxLayout(this);
  auto* intro = new QLabel(
      tr("A variable offers the values of one tag as a drop-down above the panels. Write "
         "<b>$name</b> as a filter value (or in PromQL as <tt>=~\"$name\"</tt>, or in a title) "
         "and the panel follows the choice."),
      this);
  intro->setWordWrap(true);
  layout->addWidget(intro);

  m_list = new QListWidget(this);
  m_list->setObjectName("variableList");
  layout->addWidget(m_list);
  auto* remove = new QPushButton(tr("Remove"), this);
  remove->setObjectName("removeVariable");
  connect(remove, &QPushButton::clicked, this, [this] { removeAt(m_list->currentRow()); });
  layout->addWidget(remove, 0, Qt::AlignRight);

  auto* form = new QFormLayout();
  m_name = new QLineEdit(this);
  m_name->setPlaceholderText(tr("region"));
  m_source = new QComboBox(this);
  m_source->addItem(tr("Tally collector"), QString());
  if (m_sources)
    for (const QString& n : m_sources->names()) m_source->addItem(n, n);
  m_metric = new QComboBox(this);
  m_metric->setEditable(true);
  m_tag = new QComboBox(this);
  m_tag->setEditable(true);
  m_multi = new QCheckBox(tr("Several values may be chosen"), this);
  m_all = new QCheckBox(tr("Offer “All”"), this);
  m_all->setChecked(true);
  form->addRow(tr("Name"), m_name);
  form->addRow(tr("Source"), m_source);
  form->addRow(tr("Metric"), m_metric);
  form->addRow(tr("Tag"), m_tag);
  form->addRow(QString(), m_multi);
  form->addRow(QString(), m_all);
  layout->addLayout(form);
  auto* add = new QPushButton(tr("Add variable"), this);
  add->setObjectName("addVariable");
  connect(add, &QPushButton::clicked, this, [this] { addFromForm(); });
  layout->addWidget(add, 0, Qt::AlignRight);

  m_error = new QLabel(this);
  m_error->setStyleSheet("color: #b3261e;");
  m_error->setWordWrap(true);
  layout->addWidget(m_error);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  layout->addWidget(buttons);

  connect(m_source, &QComboBox::currentIndexChanged, this, [this] { loadMetrics(); });
  connect(m_metric, &QComboBox::currentTextChanged, this, [this] { loadTags(); });
  loadMetrics();
  refreshList();
}

QString VariablesDialog::error() const {
  return m_error->text();
}

void VariablesDialog::loadMetrics() {
  const std::string source = m_source->currentData().toString().toStdString();
  DataSourceClient* c = dataSourceFor(source, m_client, m_sources);
  if (!c) return;
  c->fetchMetrics(DataSourceClient::MetricDetail::kNames, this,
                  [this, source](Result<std::vector<MetricInfo>> r) {
                    if (!r || m_source->currentData().toString().toStdString() != source) return;
                    const QString typed = m_metric->currentText();
                    m_metric->clear();
                    for (const auto& m : *r) m_metric->addItem(QString::fromStdString(m.name));
                    m_metric->setCurrentText(typed);
                  });
}

void VariablesDialog::loadTags() {
  const std::string source = m_source->currentData().toString().toStdString();
  DataSourceClient* c = dataSourceFor(source, m_client, m_sources);
  if (!c || m_metric->currentText().isEmpty()) return;
  const QString metric = m_metric->currentText();
  c->fetchTags(metric.toStdString(), this, [this, metric](Result<TagValues> r) {
    if (!r || m_metric->currentText() != metric) return;
    const QString typed = m_tag->currentText();
    m_tag->clear();
    for (const auto& [key, values] : *r) m_tag->addItem(QString::fromStdString(key));
    m_tag->setCurrentText(typed);
  });
}

bool VariablesDialog::addFromForm() {
  Variable v;
  v.name = m_name->text().trimmed().toStdString();
  v.source = m_source->currentData().toString().toStdString();
  v.metric = m_metric->currentText().trimmed().toStdString();
  v.tag = m_tag->currentText().trimmed().toStdString();
  v.multi = m_multi->isChecked();
  v.includeAll = m_all->isChecked();
  if (auto s = validateVariable(v, "variable"); !s) {
    m_error->setText(QString::fromStdString(s.message()));
    return false;
  }
  for (const auto& o : m_variables)
    if (o.name == v.name) {
      m_error->setText(tr("There is a variable named %1 already").arg(m_name->text()));
      return false;
    }
  m_error->clear();
  m_variables.push_back(std::move(v));
  m_name->clear();
  refreshList();
  return true;
}

void VariablesDialog::removeAt(int row) {
  if (row < 0 || row >= static_cast<int>(m_variables.size())) return;
  m_variables.erase(m_variables.begin() + row);
  refreshList();
}

void VariablesDialog::refreshList() {
  m_list->clear();
  for (const auto& v : m_variables)
    m_list->addItem(
        tr("$%1: tag %2 of %3%4%5")
            .arg(QString::fromStdString(v.name), QString::fromStdString(v.tag),
                 QString::fromStdString(v.metric) +
                     (v.source.empty() ? QString()
                                       : tr(" on %1").arg(QString::fromStdString(v.source))),
                 v.multi ? tr(", several values") : QString(),
                 v.includeAll ? tr(", with All") : QString()));
}
