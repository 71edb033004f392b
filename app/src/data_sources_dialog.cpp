#include "data_sources_dialog.h"

#include <QDialogButtonBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>

#include "prom_client.h"
#include "secret_store.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::dash;

DataSourcesDialog::DataSourcesDialog(const std::vector<DataSource>& sources,
                                     std::function<int(const std::string&)> panelsUsing,
                                     QWidget* parent)
    : QDialog(parent), m_panelsUsing(std::move(panelsUsing)) {
  setWindowTitle(tr("Data sources"));
  setMinimumSize(760, 420);
  for (const auto& s : sources) m_items.push_back({s, s.name});

  m_list = new QListWidget(this);
  m_list->setObjectName("sourceList");
  m_add = new QPushButton(tr("Add"), this);
  m_add->setObjectName("addSourceButton");
  m_remove = new QPushButton(tr("Remove"), this);
  m_remove->setObjectName("removeSourceButton");
  auto* builtin =
      new QLabel(tr("The Tally collector is always there; add Prometheus-compatible servers "
                    "(VictoriaMetrics, Prometheus, Mimir, Thanos Query) here."),
                 this);
  builtin->setWordWrap(true);
  builtin->setStyleSheet("color: #5f6368;");

  m_form = new QWidget(this);
  m_name = new QLineEdit(m_form);
  m_name->setObjectName("sourceName");
  m_name->setPlaceholderText(tr("e.g. vm"));
  m_url = new QLineEdit(m_form);
  m_url->setObjectName("sourceUrl");
  m_url->setPlaceholderText(
      tr("http://127.0.0.1:8428  or  http://vmselect:8481/select/0/prometheus"));
  m_minStep = new QLineEdit(m_form);
  m_minStep->setObjectName("sourceMinStep");
  m_minStep->setToolTip(
      tr("The finest step panels ask for: at least the scrape interval of the data (10s, 1m)"));
  m_headers = new QTableWidget(0, 3, m_form);
  m_headers->setObjectName("sourceHeaders");
  m_headers->setHorizontalHeaderLabels({tr("Header"), tr("Value"), tr("Secret")});
  m_headers->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Stretch);
  m_headers->horizontalHeader()->setSectionResizeMode(2, QHeaderView::ResizeToContents);
  m_secretStore = new QLabel(
      tr("Secret values (Authorization, tokens, keys, and what you mark Secret) are kept in %1, "
         "never in the dashboard file.")
          .arg(SecretStore::instance().describe()),
      m_form);
  m_secretStore->setObjectName("secretStoreLabel");
  m_secretStore->setWordWrap(true);
  m_secretStore->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_secretStore->setStyleSheet("color: #5f6368;");
  m_headers->verticalHeader()->hide();
  m_headers->setMinimumHeight(110);
  auto* addHeader = new QPushButton(tr("Add header"), m_form);
  auto* removeHeader = new QPushButton(tr("Remove header"), m_form);
  m_test = new QPushButton(tr("Test connection"), m_form);
  m_test->setObjectName("testConnectionButton");
  m_testResult = new QLabel(m_form);
  m_testResult->setObjectName("testResult");
  m_testResult->setWordWrap(true);
  m_testResult->setTextInteractionFlags(Qt::TextSelectableByMouse);

  auto* headerButtons = new QHBoxLayout;
  headerButtons->addWidget(addHeader);
  headerButtons->addWidget(removeHeader);
  headerButtons->addStretch(1);
  auto* headerBox = new QVBoxLayout;
  headerBox->addWidget(m_headers);
  headerBox->addLayout(headerButtons);
  headerBox->addWidget(m_secretStore);
  auto* form = new QFormLayout(m_form);
  form->addRow(tr("Name"), m_name);
  form->addRow(tr("URL"), m_url);
  form->addRow(tr("Min step"), m_minStep);
  form->addRow(tr("HTTP headers"), headerBox);
  auto* test = new QHBoxLayout;
  test->addWidget(m_test);
  test->addWidget(m_testResult, 1);
  form->addRow(QString(), test);

  m_error = new QLabel(this);
  m_error->setObjectName("errorLabel");
  m_error->setStyleSheet("color: #b3261e;");
  m_error->setWordWrap(true);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  connect(buttons, &QDialogButtonBox::accepted, this, &DataSourcesDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &DataSourcesDialog::reject);

  auto* left = new QVBoxLayout;
  left->addWidget(m_list, 1);
  auto* listButtons = new QHBoxLayout;
  listButtons->addWidget(m_add);
  listButtons->addWidget(m_remove);
  left->addLayout(listButtons);
  auto* top = new QHBoxLayout;
  top->addLayout(left, 1);
  top->addWidget(m_form, 3);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(builtin);
  layout->addLayout(top, 1);
  layout->addWidget(m_error);
  layout->addWidget(buttons);

  for (const auto& it : m_items) m_list->addItem(QString::fromStdString(it.source.name));
  connect(m_list, &QListWidget::currentRowChanged, this, [this](int row) {
    storeForm();
    showItem(row);
  });
  connect(m_add, &QPushButton::clicked, this, &DataSourcesDialog::addSource);
  connect(m_remove, &QPushButton::clicked, this, &DataSourcesDialog::removeSource);
  connect(m_test, &QPushButton::clicked, this, &DataSourcesDialog::testConnection);
  connect(addHeader, &QPushButton::clicked, this, [this] {
    addHeaderRow({});
    m_headers->setCurrentCell(m_headers->rowCount() - 1, 0);
  });
  connect(removeHeader, &QPushButton::clicked, this, [this] {
    if (m_headers->currentRow() >= 0) m_headers->removeRow(m_headers->currentRow());
  });
  connect(m_name, &QLineEdit::textEdited, this, [this](const QString& text) {
    if (auto* item = m_list->currentItem()) item->setText(text);
  });
  showItem(-1);
  if (!m_items.empty()) m_list->setCurrentRow(0);
}

void DataSourcesDialog::showItem(int row) {
  m_current = row;
  m_loading = true;
  const bool valid = row >= 0 && row < int(m_items.size());
  m_form->setEnabled(valid);
  m_remove->setEnabled(valid);
  const DataSource s = valid ? m_items[size_t(row)].source : DataSource{};
  m_name->setText(QString::fromStdString(s.name));
  m_url->setText(QString::fromStdString(s.url));
  m_minStep->setText(QString::fromStdString(format_duration(s.minStepS)));
  m_headers->setRowCount(0);
  for (const auto& h : s.headers) addHeaderRow(h);
  m_testResult->clear();
  m_loading = false;
}

void DataSourcesDialog::addHeaderRow(const Header& h) {
  const int r = m_headers->rowCount();
  m_headers->insertRow(r);
  m_headers->setItem(r, 0, new QTableWidgetItem(QString::fromStdString(h.name)));
  auto* value = new QTableWidgetItem(QString::fromStdString(h.value));
  if (h.secret && h.value.empty())
    value->setToolTip(tr("Not in this machine's secret store: type the value"));
  m_headers->setItem(r, 1, value);
  // Ticked by the name rule (isSecretHeaderName) or by the user; a rule match stays secret.
  auto* secret = new QTableWidgetItem;
  secret->setFlags(Qt::ItemIsUserCheckable | Qt::ItemIsEnabled | Qt::ItemIsSelectable);
  secret->setCheckState(h.secret || isSecretHeaderName(h.name) ? Qt::Checked : Qt::Unchecked);
  secret->setToolTip(tr("Keep the value in %1, not in the dashboard file")
                         .arg(SecretStore::instance().describe()));
  m_headers->setItem(r, 2, secret);
}

DataSource DataSourcesDialog::formSource() const {
  DataSource s;
  s.name = m_name->text().trimmed().toStdString();
  s.url = m_url->text().trimmed().toStdString();
  // An unreadable step is kept as 0 so that validation names it.
  auto step = parse_duration(m_minStep->text().trimmed().toStdString());
  s.minStepS = step ? *step : 0;
  for (int r = 0; r < m_headers->rowCount(); ++r) {
    auto text = [&](int c) {
      return m_headers->item(r, c) ? m_headers->item(r, c)->text().trimmed() : QString();
    };
    if (text(0).isEmpty() && text(1).isEmpty()) continue;
    const QTableWidgetItem* secret = m_headers->item(r, 2);
    const std::string name = text(0).toStdString();
    s.headers.push_back(
        {name, text(1).toStdString(),
         (secret && secret->checkState() == Qt::Checked) || isSecretHeaderName(name)});
  }
  // The file keeps headers in name order; so does the dialog, so equal sources compare equal.
  std::stable_sort(s.headers.begin(), s.headers.end(),
                   [](const Header& a, const Header& b) { return a.name < b.name; });
  return s;
}

void DataSourcesDialog::storeForm() {
  if (m_loading || m_current < 0 || m_current >= int(m_items.size())) return;
  m_items[size_t(m_current)].source = formSource();
}

void DataSourcesDialog::addSource() {
  storeForm();
  DataSource s;
  std::string name = "prometheus";
  for (int i = 2; std::any_of(m_items.begin(), m_items.end(),
                              [&](const Item& it) { return it.source.name == name; });
       ++i)
    name = "prometheus-" + std::to_string(i);
  s.name = name;
  s.url = "http://127.0.0.1:8428";
  m_items.push_back({s, ""});
  m_list->addItem(QString::fromStdString(s.name));
  m_list->setCurrentRow(m_list->count() - 1);
  m_name->setFocus();
  m_name->selectAll();
}

void DataSourcesDialog::removeSource() {
  const int row = m_list->currentRow();
  if (row < 0 || row >= int(m_items.size())) return;
  const Item& it = m_items[size_t(row)];
  const int used = it.originalName.empty() || !m_panelsUsing ? 0 : m_panelsUsing(it.originalName);
  if (used > 0) {
    m_error->setText(tr("'%1' is used by %2; point them at another source first.")
                         .arg(QString::fromStdString(it.originalName),
                              used == 1 ? tr("1 panel") : tr("%1 panels").arg(used)));
    return;
  }
  m_error->clear();
  m_loading = true;  // the row is going: nothing to store
  m_items.erase(m_items.begin() + row);
  m_current = -1;
  delete m_list->takeItem(row);
  m_loading = false;
  showItem(m_list->currentRow());
}

void DataSourcesDialog::testConnection() {
  const DataSource s = formSource();
  if (auto st = validateDataSource(s, "source"); !st) {
    m_testResult->setStyleSheet("color: #b3261e;");
    m_testResult->setText(QString::fromStdString(st.message()));
    emit testFinished(false);
    return;
  }
  delete m_testClient;  // an older test's answer no longer matters
  m_testClient = new PromClient(s, this);
  m_testClient->setTimeout(10);
  m_testResult->setStyleSheet("color: #5f6368;");
  m_testResult->setText(tr("Asking %1 …").arg(QString::fromStdString(s.url)));
  m_testClient->testConnection(this, [this](Result<std::string> r) {
    m_testResult->setStyleSheet(r ? "color: #188038;" : "color: #b3261e;");
    m_testResult->setText(QString::fromStdString(r ? *r : r.status().message()));
    emit testFinished(r.has_value());
  });
}

std::vector<DataSource> DataSourcesDialog::sources() const {
  std::vector<DataSource> out;
  for (const auto& it : m_items) out.push_back(it.source);
  return out;
}

std::map<std::string, std::string> DataSourcesDialog::renamed() const {
  std::map<std::string, std::string> out;
  for (const auto& it : m_items)
    if (!it.originalName.empty() && it.originalName != it.source.name)
      out[it.originalName] = it.source.name;
  return out;
}

void DataSourcesDialog::accept() {
  storeForm();
  for (size_t i = 0; i < m_items.size(); ++i) {
    const DataSource& s = m_items[i].source;
    const std::string where =
        s.name.empty() ? "source " + std::to_string(i + 1) : "'" + s.name + "'";
    Status st = validateDataSource(s, where);
    for (size_t j = 0; j < i && st; ++j)
      if (m_items[j].source.name == s.name)
        st = Status::invalid_argument(where + ": the name is used twice");
    if (!st) {
      m_list->setCurrentRow(int(i));
      m_error->setText(QString::fromStdString(st.message()));
      return;
    }
  }
  QDialog::accept();
}
