// DataSources: the dashboard's Prometheus-compatible data sources and one PromSource (a
// DataSourceClient over a PromClient) for each. The canvas owns one; panels, the panel editor and
// the metric browser find their source's client by name through dataSourceFor()
// (data_source_client.h). Replacing the list keeps the clients of unchanged sources (their requests
// in flight stay valid) and emits changed(). Thread-safety: a QObject of the GUI thread.
#pragma once

#include <QObject>
#include <QStringList>
#include <map>
#include <set>
#include <vector>

#include "core/dashboard.h"

class PromClient;
class PromSource;

class DataSources : public QObject {
  Q_OBJECT
 public:
  explicit DataSources(QObject* parent = nullptr);

  const std::vector<tally::dash::DataSource>& sources() const { return m_sources; }
  void setSources(const std::vector<tally::dash::DataSource>& sources);
  QStringList names() const;
  // nullptr for "" (the collector) and for unknown names.
  PromSource* source(const std::string& name) const;
  PromClient* client(const std::string& name) const;  // source(name)'s HTTP client
  const tally::dash::DataSource* find(const std::string& name) const;
  // Seconds before a request fails, for every client (headless --timeout).
  void setTimeout(int seconds);
  // Sources whose host the user did not allow (host_approval.h): their clients send nothing and
  // fail every request saying so. Set before setSources() so that no request goes out first;
  // kept for sources added later under these names.
  void setBlocked(const std::set<std::string>& names);
  const std::set<std::string>& blocked() const { return m_blocked; }

 signals:
  void changed();

 private:
  std::vector<tally::dash::DataSource> m_sources;
  std::map<std::string, PromSource*> m_clients;
  int m_timeoutS = 15;
  std::set<std::string> m_blocked;
  void applyBlocked(const std::string& name, PromClient* client) const;
};
