// DataSourcesDialog: Dashboard ▸ Data sources: the dashboard's Prometheus-compatible servers
// (VictoriaMetrics, Prometheus, Mimir, Thanos) beside the built-in Tally collector. Add, edit,
// rename, remove; each has a name, the API's base URL, HTTP headers sent with every request
// (Authorization, X-Scope-OrgID; the Secret column marks values kept in the secret store, not in
// the file, and a label says which store that is) and a minimum step. "Test connection" asks the
// server as typed for /api/v1/status/buildinfo (else evaluates `1`) and shows the answer. A source
// that panels still use cannot be removed (the dialog says how many); renames are reported so the
// panels can follow. OK validates every source (validateDataSource) first.
#pragma once

#include <QDialog>
#include <functional>
#include <map>
#include <vector>

#include "core/dashboard.h"

class PromClient;
class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;
class QTableWidget;
class QWidget;

class DataSourcesDialog : public QDialog {
  Q_OBJECT
 public:
  // `panelsUsing(name)` counts the panels that read a source.
  DataSourcesDialog(const std::vector<tally::dash::DataSource>& sources,
                    std::function<int(const std::string&)> panelsUsing, QWidget* parent = nullptr);

  std::vector<tally::dash::DataSource> sources() const;
  std::map<std::string, std::string> renamed() const;  // old name -> new name

  // For tests and scripted use.
  QListWidget* list() const { return m_list; }
  QLineEdit* nameEdit() const { return m_name; }
  QLineEdit* urlEdit() const { return m_url; }
  QLineEdit* minStepEdit() const { return m_minStep; }
  QTableWidget* headersTable() const { return m_headers; }
  QPushButton* addButton() const { return m_add; }
  QPushButton* removeButton() const { return m_remove; }
  QPushButton* testButton() const { return m_test; }
  QLabel* testResult() const { return m_testResult; }
  QLabel* errorLabel() const { return m_error; }
  QLabel* secretStoreLabel() const { return m_secretStore; }  // where secret values are kept

 public slots:
  void accept() override;
  void addSource();
  void removeSource();
  void testConnection();

 signals:
  void testFinished(bool ok);

 private:
  struct Item {
    tally::dash::DataSource source;
    std::string originalName;  // "" for a source added in this dialog
  };
  void showItem(int row);
  void addHeaderRow(const tally::dash::Header& header);
  void storeForm();  // the form into the current item
  tally::dash::DataSource formSource() const;

  std::vector<Item> m_items;
  std::function<int(const std::string&)> m_panelsUsing;
  int m_current = -1;
  bool m_loading = false;
  QListWidget* m_list;
  QWidget* m_form;
  QLineEdit* m_name;
  QLineEdit* m_url;
  QLineEdit* m_minStep;
  QTableWidget* m_headers;
  QPushButton* m_add;
  QPushButton* m_remove;
  QPushButton* m_test;
  QLabel* m_testResult;
  QLabel* m_error;
  QLabel* m_secretStore;
  PromClient* m_testClient = nullptr;
};
