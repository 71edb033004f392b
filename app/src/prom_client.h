// PromClient: one Prometheus-compatible data source's HTTP API (/api/v1/..., docs/DASHBOARD.md,
// "Data sources") over an asynchronous QNetworkAccessManager, with the source's headers on every
// request. Like CollectorClient, answers are parsed on a small thread pool and handed to the
// caller on the GUI thread through a callback that is dropped if its context object is gone.
// Failures arrive as a Status: kUnavailable when the server cannot be reached, kInvalidArgument
// for an HTTP or Prometheus error ("bad_data: 1:5: parse error: ..."), kCorruption for an answer
// that does not parse.
// Thread-safety: a QObject of the GUI thread; call it there.
#pragma once

#include <QObject>
#include <QThreadPool>
#include <functional>

#include "core/dashboard.h"
#include "core/promql.h"

class QNetworkAccessManager;

class PromClient : public QObject {
  Q_OBJECT
 public:
  template <typename T>
  using Callback = std::function<void(tally::Result<T>)>;

  explicit PromClient(const tally::dash::DataSource& source, QObject* parent = nullptr);
  ~PromClient() override;

  const tally::dash::DataSource& source() const { return m_source; }
  void setSource(const tally::dash::DataSource& source) { m_source = source; }
  // Seconds before an unanswered request fails (default 15).
  void setTimeout(int seconds) { m_timeoutMs = seconds * 1000; }
  // Non-empty: every request fails with this reason and nothing is sent (the user did not allow
  // this source's host, host_approval.h).
  void setBlocked(const QString& reason) { m_blocked = reason; }

  // Metric names (/api/v1/label/__name__/values).
  void fetchMetricNames(QObject* context, Callback<std::vector<std::string>> cb);
  // Metric family -> Prometheus type (/api/v1/metadata); empty where the server keeps none.
  void fetchMetadata(QObject* context, Callback<tally::dash::PromTypes> cb);
  // Label names of a metric's series, without __name__ (/api/v1/labels?match[]=metric).
  void fetchLabels(const std::string& metric, QObject* context,
                   Callback<std::vector<std::string>> cb);
  // Values of one label among a metric's series (/api/v1/label/<k>/values?match[]=metric).
  void fetchLabelValues(const std::string& label, const std::string& metric, QObject* context,
                        Callback<std::vector<std::string>> cb);
  // Labels and their values in one answer (what the panel editor completes); at most
  // kMaxCompletedLabels labels get their values fetched.
  void fetchTags(const std::string& metric, QObject* context, Callback<tally::dash::TagValues> cb);
  static constexpr int kMaxCompletedLabels = 40;
  // query_range of `expr` over `range`; points at their bucket's start (promql.h).
  void queryRange(const std::string& expr, const tally::dash::PromRange& range, QObject* context,
                  Callback<tally::dash::QueryResult> cb);
  // Build info, else whether `1` evaluates: "Prometheus API version 2.42.0" or why not.
  void testConnection(QObject* context, Callback<std::string> cb);

 private:
  using RawCallback = std::function<void(int httpStatus, QByteArray body, QString networkError)>;
  void get(const std::string& path, QObject* context, RawCallback cb);
  template <typename T>
  void getParsed(const std::string& path, QObject* context, Callback<T> cb,
                 std::function<tally::Result<T>(std::string_view)> parse);

  tally::dash::DataSource m_source;
  QNetworkAccessManager* m_nam;
  int m_timeoutMs = 15000;
  QString m_blocked;
  QThreadPool m_pool;  // last member: destroyed first, waits for running parses
};
