#include "collector_client.h"

#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>

#include "http_json.h"

using namespace tally;
using namespace tally::dash;

CollectorClient::CollectorClient(const QUrl& baseUrl, QObject* parent)
    : QObject(parent), m_baseUrl(baseUrl), m_nam(new QNetworkAccessManager(this)) {
  m_pool.setMaxThreadCount(2);
}

CollectorClient::~CollectorClient() {
  m_pool.waitForDone();
}

void CollectorClient::get(const std::string& path, QObject* context, RawCallback cb) {
  send("GET", path, {}, context, std::move(cb));
}

void CollectorClient::send(const QByteArray& verb, const std::string& path, const QByteArray& body,
                           QObject* context, RawCallback cb) {
  QNetworkRequest req(apiUrl(m_baseUrl, path));
  req.setTransferTimeout(m_timeoutMs);
  req.setRawHeader("Accept", "application/json");
  if (!body.isEmpty()) req.setHeader(QNetworkRequest::ContentTypeHeader, "application/json");
  // A collector with http_read_tokens (docs/SECURITY.md): the token comes from the environment,
  // never from a dashboard file.
  if (static const QByteArray token = qgetenv("TALLY_TOKEN"); !token.isEmpty())
    req.setRawHeader("Authorization", "Bearer " + token);
  QNetworkReply* reply =
      verb == "GET" ? m_nam->get(req) : m_nam->sendCustomRequest(req, verb, body);
  ++m_inFlight;
  QPointer<QObject> ctx(context);
  connect(reply, &QNetworkReply::finished, this, [this, reply, ctx, cb = std::move(cb)] {
    reply->deleteLater();
    --m_inFlight;
    QVariant statusAttr = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute);
    int status = statusAttr.isValid() ? statusAttr.toInt() : 0;
    QString netError;
    if (status == 0) {
      netError = reply->errorString();
      emit unreachable(netError);
    } else {
      emit reachable();
    }
    if (ctx) cb(status, reply->readAll(), netError);
  });
}

template <typename T>
void CollectorClient::getParsed(const std::string& path, QObject* context, Callback<T> cb,
                                Result<T> (*parse)(std::string_view)) {
  answerParsed<T>("GET", path, {}, context, std::move(cb), parse);
}

template <typename T>
void CollectorClient::answerParsed(const QByteArray& verb, const std::string& path,
                                   const QByteArray& request, QObject* context, Callback<T> cb,
                                   Result<T> (*parse)(std::string_view)) {
  QPointer<QObject> ctx(context);
  QString where = m_baseUrl.toString();
  send(verb, path, request, context,
       [this, ctx, cb, parse, where](int status, QByteArray body, QString netError) {
         if (status == 0) {
           cb(Status::unavailable(QStringLiteral("collector at %1 is unreachable: %2")
                                      .arg(where, netError)
                                      .toStdString()));
           return;
         }
         if (status != 200) {
           std::string msg =
               errorMessage(status, std::string_view(body.constData(), size_t(body.size())));
           cb(status == 404 ? Status::not_found(msg) : Status::invalid_argument(msg));
           return;
         }
         parseOffThread<T>(m_pool, this, ctx, std::move(body), cb, parse);
       });
}

void CollectorClient::fetchMetrics(QObject* context, Callback<std::vector<MetricInfo>> cb) {
  getParsed<std::vector<MetricInfo>>(metricsPath(), context, std::move(cb), &parseMetrics);
}

void CollectorClient::fetchCardinality(int top, QObject* context, Callback<Cardinality> cb) {
  getParsed<Cardinality>(cardinalityPath(top), context, std::move(cb), &parseCardinality);
}

void CollectorClient::fetchAnnotations(int64_t from, int64_t to, QObject* context,
                                       Callback<std::vector<Annotation>> cb) {
  getParsed<std::vector<Annotation>>(annotationsPath(from, to), context, std::move(cb),
                                     &parseAnnotations);
}

void CollectorClient::addAnnotation(const Annotation& a, QObject* context, Callback<int64_t> cb) {
  answerParsed<int64_t>("POST", "/api/annotations", QByteArray::fromStdString(annotationBody(a)),
                        context, std::move(cb), &parseAnnotationId);
}

void CollectorClient::deleteAnnotation(int64_t id, QObject* context, Callback<int64_t> cb) {
  answerParsed<int64_t>("DELETE", "/api/annotations/" + std::to_string(id), {}, context,
                        std::move(cb), &parseDeletedCount);
}

void CollectorClient::fetchTags(const QString& metric, QObject* context, Callback<TagValues> cb) {
  getParsed<TagValues>(tagsPath(metric.toStdString()), context, std::move(cb), &parseTags);
}

void CollectorClient::query(const QueryRequest& request, QObject* context,
                            Callback<QueryResult> cb) {
  getParsed<QueryResult>(queryPath(request), context, std::move(cb), &parseQuery);
}

void CollectorClient::histogram(const QueryRequest& request, QObject* context,
                                Callback<HistogramResult> cb) {
  getParsed<HistogramResult>(histogramPath(request), context, std::move(cb), &parseHistogram);
}

void CollectorClient::heatmap(const QueryRequest& request, QObject* context,
                              Callback<HeatmapResult> cb) {
  getParsed<HeatmapResult>(heatmapPath(request), context, std::move(cb), &parseHeatmap);
}

void CollectorClient::fetchHealth(QObject* context, std::function<void(Health, bool)> cb) {
  get("/healthz", context, [cb](int status, QByteArray body, QString netError) {
    if (status == 0) {
      Health h;
      h.reason = netError.toStdString();
      cb(h, false);
      return;
    }
    cb(parseHealth(status, std::string_view(body.constData(), size_t(body.size()))), true);
  });
}
