// VariableBar: one drop-down per dashboard variable (core/variables.h), in a row above the
// panels; hidden while the dashboard has none. A drop-down lists "All" (when offered) and the
// values of the variable's tag on its source (the collector's /api/tags, or a Prometheus source's
// label values), fetched when the bar is built and again whenever the list opens; a multi-value
// variable's list has check boxes. Choosing emits valuesChosen(); the canvas applies it to every
// panel that names the variable.
#pragma once

#include <QWidget>
#include <map>
#include <string>
#include <vector>

#include "core/dashboard.h"

class CollectorClient;
class DataSources;
class QHBoxLayout;
class QMenu;
class QToolButton;

class VariableBar : public QWidget {
  Q_OBJECT
 public:
  explicit VariableBar(CollectorClient* client, QWidget* parent = nullptr);
  // The dashboard's Prometheus sources, for variables that name one (it must outlive the bar).
  void setDataSources(DataSources* sources) { m_sources = sources; }

  // Rebuilds the drop-downs (values chosen as the variables say).
  void setVariables(const std::vector<tally::dash::Variable>& variables);
  // The drop-down of a variable (objectName "variable_<name>"), null if there is none.
  QToolButton* button(const QString& name) const;
  // The values offered for a variable: the last answer from the collector, plus any chosen value
  // it no longer has.
  std::vector<std::string> offered(const QString& name) const;
  // Fetches every variable's values now (the lists also fetch when they open).
  void reload();

 signals:
  void valuesChosen(const std::string& name, const std::vector<std::string>& values);

 private:
  void fetch(const tally::dash::Variable& v);
  void fillMenu(const tally::dash::Variable& v);
  void choose(const std::string& name, std::vector<std::string> values);
  static QString buttonText(const tally::dash::Variable& v);

  CollectorClient* m_client;
  DataSources* m_sources = nullptr;
  QHBoxLayout* m_layout;
  std::vector<tally::dash::Variable> m_variables;
  std::map<std::string, std::vector<std::string>> m_values;  // per variable, from the collector
  std::map<std::string, QToolButton*> m_buttons;
};
