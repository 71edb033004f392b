#include "data_sources.h"

#include "data_source_client.h"
#include "prom_client.h"

using namespace tally::dash;

DataSources::DataSources(QObject* parent) : QObject(parent) {}

void DataSources::setSources(const std::vector<DataSource>& sources) {
  if (sources == m_sources) return;
  std::map<std::string, PromSource*> clients;
  for (const auto& s : sources) {
    auto it = m_clients.find(s.name);
    if (it != m_clients.end() && it->second->source() == s) {
      clients[s.name] = it->second;
      m_clients.erase(it);
    } else {
      auto* c = new PromSource(s, this);
      c->client()->setTimeout(m_timeoutS);
      applyBlocked(s.name, c->client());
      clients[s.name] = c;
    }
  }
  for (auto& [name, c] : m_clients) c->deleteLater();  // callbacks in flight die with it
  m_clients = std::move(clients);
  m_sources = sources;
  emit changed();
}

QStringList DataSources::names() const {
  QStringList out;
  for (const auto& s : m_sources) out << QString::fromStdString(s.name);
  return out;
}

PromSource* DataSources::source(const std::string& name) const {
  auto it = m_clients.find(name);
  return it == m_clients.end() ? nullptr : it->second;
}

PromClient* DataSources::client(const std::string& name) const {
  PromSource* s = source(name);
  return s ? s->client() : nullptr;
}

const DataSource* DataSources::find(const std::string& name) const {
  for (const auto& s : m_sources)
    if (s.name == name) return &s;
  return nullptr;
}

void DataSources::setTimeout(int seconds) {
  m_timeoutS = seconds;
  for (auto& [name, c] : m_clients) c->client()->setTimeout(seconds);
}

void DataSources::setBlocked(const std::set<std::string>& names) {
  m_blocked = names;
  for (auto& [name, c] : m_clients) applyBlocked(name, c->client());
}

void DataSources::applyBlocked(const std::string& name, PromClient* client) const {
  client->setBlocked(
      m_blocked.count(name)
          ? QStringLiteral("nothing sent: you chose not to send this source's headers to %1 "
                           "(open the dashboard again to be asked, or edit the source in "
                           "Dashboard › Data sources)")
                .arg(QString::fromStdString(urlHostPort(client->source().url)))
          : QString());
}
