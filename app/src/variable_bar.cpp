#include "variable_bar.h"

#include <QAction>
#include <QHBoxLayout>
#include <QLabel>
#include <QMenu>
#include <QToolButton>
#include <algorithm>

#include "collector_client.h"
#include "data_source_client.h"

using namespace tally;
using namespace tally::dash;

VariableBar::VariableBar(CollectorClient* client, QWidget* parent)
    : QWidget(parent), m_client(client), m_layout(new QHBoxLayout(this)) {
  setObjectName("variableBar");
  m_layout->setContentsMargins(10, 4, 10, 4);
  m_layout->setSpacing(6);
  hide();
}

QToolButton* VariableBar::button(const QString& name) const {
  auto it = m_buttons.find(name.toStdString());
  return it == m_buttons.end() ? nullptr : it->second;
}

std::vector<std::string> VariableBar::offered(const QString& name) const {
  const std::string n = name.toStdString();
  std::vector<std::string> out;
  if (auto it = m_values.find(n); it != m_values.end()) out = it->second;
  for (const auto& v : m_variables)
    if (v.name == n)
      for (const auto& c : v.current)
        if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  std::sort(out.begin(), out.end());
  return out;
}

QString VariableBar::buttonText(const Variable& v) {
  if (v.current.empty()) return tr("All");
  QStringList parts;
  for (const auto& c : v.current) parts << QString::fromStdString(c);
  return parts.join(QStringLiteral(" + "));
}

void VariableBar::setVariables(const std::vector<Variable>& variables) {
  const bool same = [&] {
    if (variables.size() != m_variables.size()) return false;
    for (size_t i = 0; i < variables.size(); ++i)
      if (variables[i].name != m_variables[i].name ||
          variables[i].metric != m_variables[i].metric || variables[i].tag != m_variables[i].tag ||
          variables[i].multi != m_variables[i].multi ||
          variables[i].includeAll != m_variables[i].includeAll)
        return false;
    return true;
  }();
  m_variables = variables;
  if (same) {
    for (const auto& v : m_variables) {
      if (QToolButton* b = m_buttons[v.name]) b->setText(buttonText(v));
      fillMenu(v);
    }
    return;
  }
  while (QLayoutItem* item = m_layout->takeAt(0)) {
    delete item->widget();
    delete item;
  }
  m_buttons.clear();
  for (const auto& v : m_variables) {
    auto* label = new QLabel(QString::fromStdString(v.name), this);
    auto* b = new QToolButton(this);
    b->setObjectName(QStringLiteral("variable_") + QString::fromStdString(v.name));
    b->setPopupMode(QToolButton::InstantPopup);
    b->setToolButtonStyle(Qt::ToolButtonTextOnly);
    b->setText(buttonText(v));
    b->setToolTip(
        tr("Values of tag %1 of %2%3; panels use it as $%4")
            .arg(QString::fromStdString(v.tag), QString::fromStdString(v.metric),
                 v.source.empty() ? QString() : tr(" on %1").arg(QString::fromStdString(v.source)),
                 QString::fromStdString(v.name)));
    auto* menu = new QMenu(b);
    b->setMenu(menu);
    const std::string name = v.name;
    connect(menu, &QMenu::aboutToShow, this, [this, name] {
      for (const auto& var : m_variables)
        if (var.name == name) fetch(var);
    });
    m_buttons[v.name] = b;
    m_layout->addWidget(label);
    m_layout->addWidget(b);
    m_layout->addSpacing(8);
    fillMenu(v);
  }
  m_layout->addStretch(1);
  setVisible(!m_variables.empty());
  reload();
}

void VariableBar::reload() {
  for (const auto& v : m_variables) fetch(v);
}

void VariableBar::fetch(const Variable& v) {
  DataSourceClient* source = dataSourceFor(v.source, m_client, m_sources);
  if (!source) return;  // a source the dashboard does not define: nothing to offer
  const std::string name = v.name, tag = v.tag;
  source->fetchTags(v.metric, this, [this, name, tag](Result<TagValues> r) {
    if (!r) return;  // the drop-down keeps what it had
    auto it = r->find(tag);
    m_values[name] = it == r->end() ? std::vector<std::string>() : it->second;
    for (const auto& var : m_variables)
      if (var.name == name) fillMenu(var);
  });
}

void VariableBar::fillMenu(const Variable& v) {
  QToolButton* b = m_buttons.count(v.name) ? m_buttons[v.name] : nullptr;
  if (!b) return;
  QMenu* menu = b->menu();
  menu->clear();
  const std::string name = v.name;
  if (v.includeAll) {
    QAction* all = menu->addAction(tr("All"));
    all->setCheckable(true);
    all->setChecked(v.current.empty());
    connect(all, &QAction::triggered, this, [this, name] { choose(name, {}); });
    menu->addSeparator();
  }
  for (const auto& value : offered(QString::fromStdString(v.name))) {
    QAction* a = menu->addAction(QString::fromStdString(value));
    a->setCheckable(true);
    a->setChecked(std::find(v.current.begin(), v.current.end(), value) != v.current.end());
    connect(a, &QAction::triggered, this, [this, name, value](bool checked) {
      for (const auto& var : m_variables) {
        if (var.name != name) continue;
        if (!var.multi) {
          choose(name, {value});
          return;
        }
        std::vector<std::string> now = var.current;
        now.erase(std::remove(now.begin(), now.end(), value), now.end());
        if (checked) now.push_back(value);
        std::sort(now.begin(), now.end());
        choose(name, now);
      }
    });
  }
  if (menu->isEmpty()) menu->addAction(tr("(no values yet)"))->setEnabled(false);
}

void VariableBar::choose(const std::string& name, std::vector<std::string> values) {
  for (auto& v : m_variables) {
    if (v.name != name) continue;
    if (values.empty() && !v.includeAll) return;  // All is not offered: keep what there is
    v.current = values;
    if (QToolButton* b = m_buttons[name]) b->setText(buttonText(v));
    fillMenu(v);
  }
  emit valuesChosen(name, values);
}
