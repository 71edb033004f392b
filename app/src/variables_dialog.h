// VariablesDialog (Dashboard › Variables…): the dashboard's variables, each a tag of a metric
// whose values become a drop-down above the panels (core/variables.h). Add one by name, metric
// and tag (both completed from the collector), multi-value or not, with or without "All";
// remove one. OK is refused, with the reason shown, while a variable breaks the rules
// (validateVariable) or two share a name.
#pragma once

#include <QDialog>
#include <vector>

#include "core/dashboard.h"

class CollectorClient;
class DataSources;
class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;

class VariablesDialog : public QDialog {
  Q_OBJECT
 public:
  // `sources`: the dashboard's Prometheus sources a variable may read instead of the collector.
  VariablesDialog(CollectorClient* client, DataSources* sources,
                  std::vector<tally::dash::Variable> variables, QWidget* parent = nullptr);
  std::vector<tally::dash::Variable> variables() const { return m_variables; }

  // The form, for tests: fill it, then addFromForm().
  QLineEdit* nameEdit() const { return m_name; }
  QComboBox* sourceBox() const { return m_source; }  // data "" = the collector
  QComboBox* metricBox() const { return m_metric; }
  QComboBox* tagBox() const { return m_tag; }
  QCheckBox* multiBox() const { return m_multi; }
  QCheckBox* allBox() const { return m_all; }
  // Adds the form's variable; false (and the reason shown) when it breaks a rule.
  bool addFromForm();
  void removeAt(int row);
  QString error() const;

 private:
  void refreshList();
  void loadMetrics();
  void loadTags();

  CollectorClient* m_client;
  DataSources* m_sources;
  std::vector<tally::dash::Variable> m_variables;
  QListWidget* m_list;
  QLineEdit* m_name;
  QComboBox* m_source;
  QComboBox* m_metric;
  QComboBox* m_tag;
  QCheckBox* m_multi;
  QCheckBox* m_all;
  QLabel* m_error;
};
