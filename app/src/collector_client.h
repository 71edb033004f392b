// CollectorClient: the collector's HTTP/JSON API (docs/API.md) over an asynchronous
// QNetworkAccessManager. Replies are parsed on the client's own thread pool (a range query can
// hold a million points) and handed to the caller as plain result structs, on the GUI thread,
// through a callback that is dropped if its context object is gone.
// Failures arrive as a Status: kUnavailable when the collector cannot be reached (no HTTP
// answer), kNotFound for 404, kInvalidArgument for other HTTP errors (with the collector's
// {"error": ...} message), kCorruption for an answer that does not parse.
// Thread-safety: a QObject of the GUI thread; call it there.
#pragma once

#include <QObject>
#include <QPointer>
#include <QThreadPool>
#include <QUrl>
#include <functional>

#include "core/api.h"

class QNetworkAccessManager;

class CollectorClient : public QObject {
  Q_OBJECT
 public:
  template <typename T>
  using Callback = std::function<void(tally::Result<T>)>;

  explicit CollectorClient(const QUrl& baseUrl, QObject* parent = nullptr);
  ~CollectorClient() override;

  QUrl baseUrl() const { return m_baseUrl; }
  void setBaseUrl(const QUrl& url) { m_baseUrl = url; }
  // Seconds before an unanswered request fails (default 15).
  void setTimeout(int seconds) { m_timeoutMs = seconds * 1000; }

  void fetchMetrics(QObject* context, Callback<std::vector<tally::dash::MetricInfo>> cb);
  void fetchTags(const QString& metric, QObject* context, Callback<tally::dash::TagValues> cb);
  void query(const tally::dash::QueryRequest& request, QObject* context,
             Callback<tally::dash::QueryResult> cb);
  void histogram(const tally::dash::QueryRequest& request, QObject* context,
                 Callback<tally::dash::HistogramResult> cb);
  void heatmap(const tally::dash::QueryRequest& request, QObject* context,
               Callback<tally::dash::HeatmapResult> cb);
  void fetchCardinality(int top, QObject* context, Callback<tally::dash::Cardinality> cb);
  // GET /api/annotations over [from, to).
  void fetchAnnotations(int64_t from, int64_t to, QObject* context,
                        Callback<std::vector<tally::dash::Annotation>> cb);
  // POST /api/annotations: the new annotation's id. With tokens configured this needs an admin
  // token (TALLY_TOKEN); a refusal arrives as kInvalidArgument with the collector's message.
  void addAnnotation(const tally::dash::Annotation& a, QObject* context, Callback<int64_t> cb);
  // DELETE /api/annotations/<id>; kNotFound when it is gone already.
  void deleteAnnotation(int64_t id, QObject* context, Callback<int64_t> cb);
  // Health never fails as a Result: an unreachable collector is a Health with ok == false.
  void fetchHealth(QObject* context, std::function<void(tally::dash::Health, bool reachable)> cb);

  int requestsInFlight() const { return m_inFlight; }

 signals:
  // Any request that got no HTTP answer / any answer at all: drives the health banner quickly.
  void unreachable(const QString& reason);
  void reachable();

 private:
  using RawCallback = std::function<void(int httpStatus, QByteArray body, QString networkError)>;
  void get(const std::string& path, QObject* context, RawCallback cb);
  // Any method: GET, POST (with a JSON body), DELETE.
  void send(const QByteArray& verb, const std::string& path, const QByteArray& body,
            QObject* context, RawCallback cb);
  template <typename T>
  void getParsed(const std::string& path, QObject* context, Callback<T> cb,
                 tally::Result<T> (*parse)(std::string_view));
  // An answer of send() as a Result: unreachable, the collector's error, or parse(body).
  template <typename T>
  void answerParsed(const QByteArray& verb, const std::string& path, const QByteArray& body,
                    QObject* context, Callback<T> cb, tally::Result<T> (*parse)(std::string_view));

  QUrl m_baseUrl;
  QNetworkAccessManager* m_nam;
  int m_timeoutMs = 15000;
  int m_inFlight = 0;
  QThreadPool m_pool;  // last member: destroyed first, waits for running parses
};
