#include "prom_client.h"

#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QPointer>
#include <QUrl>
#include <memory>

#include "http_json.h"

using namespace tally;
using namespace tally::dash;

PromClient::PromClient(const DataSource& source, QObject* parent)
    : QObject(parent), m_source(source), m_nam(new QNetworkAccessManager(this)) {
  m_pool.setMaxThreadCount(2);
}

PromClient::~PromClient() {
  m_pool.waitForDone();
}

void PromClient::get(const std::string& path, QObject* context, RawCallback cb) {
  QNetworkRequest req(apiUrl(QUrl(QString::fromStdString(m_source.url)), path));
  req.setTransferTimeout(m_timeoutMs);
  req.setRawHeader("Accept", "application/json");
  // The user's allowlist of variables a dashboard file may read (never the file's own).
  static const std::vector<std::string> allowed =
      envAllowPatterns(qEnvironmentVariable("TALLY_DASHBOARD_ENV_ALLOW").toStdString());
  // Reported as a failed request (status -1): nothing is sent.
  auto refuse = [this, context, cb](const QString& why) {
    QPointer<QObject> ctx(context);
    QMetaObject::invokeMethod(
        this,
        [ctx, cb, why] {
          if (ctx) cb(-1, QByteArray(), why);
        },
        Qt::QueuedConnection);
  };
  // The user said "Don't send" to this source's host (host_approval.h).
  if (!m_blocked.isEmpty()) return refuse(m_blocked);
  // Credentials are never sent over plain http beyond loopback.
  if (auto plain = checkCredentialsTransport(m_source); !plain)
    return refuse(QString::fromStdString(plain.message()));
  for (const auto& h : m_source.headers) {
    const std::string& k = h.name;
    if (h.secret && h.value.empty())
      return refuse(QStringLiteral("header %1: its secret value is not in this machine's secret "
                                   "store; enter it in Dashboard › Data sources")
                        .arg(QString::fromStdString(k)));
    auto value = expandHeaderValue(
        h.value,
        [](const std::string& name) -> std::optional<std::string> {
          if (!qEnvironmentVariableIsSet(name.c_str())) return std::nullopt;
          return qEnvironmentVariable(name.c_str()).toStdString();
        },
        &allowed);
    if (!value)  // rather than sent without the header
      return refuse(
          QStringLiteral("header %1: %2")
              .arg(QString::fromStdString(k), QString::fromStdString(value.status().message())));
    req.setRawHeader(QByteArray::fromStdString(k), QByteArray::fromStdString(*value));
  }
  QNetworkReply* reply = m_nam->get(req);
  QPointer<QObject> ctx(context);
  connect(reply, &QNetworkReply::finished, this, [reply, ctx, cb = std::move(cb)] {
    reply->deleteLater();
    QVariant statusAttr = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute);
    int status = statusAttr.isValid() ? statusAttr.toInt() : 0;
    if (ctx) cb(status, reply->readAll(), status == 0 ? reply->errorString() : QString());
  });
}

template <typename T>
void PromClient::getParsed(const std::string& path, QObject* context, Callback<T> cb,
                           std::function<Result<T>(std::string_view)> parse) {
  QPointer<QObject> ctx(context);
  const QString where =
      QStringLiteral("data source '%1' at %2")
          .arg(QString::fromStdString(m_source.name), QString::fromStdString(m_source.url));
  get(path, context, [this, ctx, cb, parse, where](int status, QByteArray body, QString netError) {
    const std::string_view text(body.constData(), size_t(body.size()));
    if (status < 0) {
      cb(Status::invalid_argument(QStringLiteral("%1: %2").arg(where, netError).toStdString()));
      return;
    }
    if (status == 0) {
      cb(Status::unavailable(
          QStringLiteral("%1 is unreachable: %2").arg(where, netError).toStdString()));
      return;
    }
    if (status != 200) {
      std::string msg = promErrorMessage(status, text);
      cb(status == 404 ? Status::not_found(msg) : Status::invalid_argument(msg));
      return;
    }
    parseOffThread<T>(m_pool, this, ctx, std::move(body), cb, parse);
  });
}

void PromClient::fetchMetricNames(QObject* context, Callback<std::vector<std::string>> cb) {
  getParsed<std::vector<std::string>>(promLabelValuesPath("__name__"), context, std::move(cb),
                                      &parsePromStrings);
}

void PromClient::fetchMetadata(QObject* context, Callback<PromTypes> cb) {
  getParsed<PromTypes>("/api/v1/metadata", context, std::move(cb), &parsePromMetadata);
}

void PromClient::fetchLabels(const std::string& metric, QObject* context,
                             Callback<std::vector<std::string>> cb) {
  getParsed<std::vector<std::string>>(
      promLabelsPath(promSelector(metric, {})), context,
      [cb](Result<std::vector<std::string>> r) {
        if (r) std::erase(*r, std::string("__name__"));
        cb(std::move(r));
      },
      &parsePromStrings);
}

void PromClient::fetchLabelValues(const std::string& label, const std::string& metric,
                                  QObject* context, Callback<std::vector<std::string>> cb) {
  getParsed<std::vector<std::string>>(promLabelValuesPath(label, promSelector(metric, {})), context,
                                      std::move(cb), &parsePromStrings);
}

void PromClient::fetchTags(const std::string& metric, QObject* context, Callback<TagValues> cb) {
  QPointer<QObject> ctx(context);
  fetchLabels(metric, context, [this, metric, ctx, cb](Result<std::vector<std::string>> labels) {
    if (!ctx) return;
    if (!labels) {
      cb(labels.status());
      return;
    }
    auto tags = std::make_shared<TagValues>();
    auto pending = std::make_shared<int>(0);
    for (const auto& k : *labels) {
      (*tags)[k];
      if (*pending >= kMaxCompletedLabels) continue;
      ++*pending;
      fetchLabelValues(k, metric, ctx,
                       [k, tags, pending, cb](Result<std::vector<std::string>> values) {
                         // A label whose values cannot be listed is still a key to filter or group
                         // by.
                         if (values) (*tags)[k] = std::move(*values);
                         if (--*pending == 0) cb(std::move(*tags));
                       });
    }
    if (*pending == 0) cb(std::move(*tags));
  });
}

void PromClient::queryRange(const std::string& expr, const PromRange& range, QObject* context,
                            Callback<QueryResult> cb) {
  const int64_t step = range.step;
  getParsed<QueryResult>(promQueryRangePath(expr, range), context, std::move(cb),
                         [step](std::string_view body) { return parsePromMatrix(body, step); });
}

void PromClient::testConnection(QObject* context, Callback<std::string> cb) {
  QPointer<QObject> ctx(context);
  getParsed<std::string>(
      promBuildInfoPath(), context,
      [this, ctx, cb](Result<std::string> info) {
        if (!ctx) return;
        if (info) {
          cb(std::string(info->empty()
                             ? "Connected: Prometheus API (the server does not report a version)"
                             : "Connected: Prometheus API, version " + *info));
          return;
        }
        if (info.status().code() == StatusCode::kUnavailable) {
          cb(info.status());
          return;
        }
        // Not every compatible server has buildinfo; one that evaluates `1` answers queries.
        const std::string why = info.status().message();
        getParsed<std::string>(
            promInstantQueryPath("1"), ctx,
            [why, cb](Result<std::string> q) {
              if (q)
                cb(std::string(
                    "Connected: the server answers PromQL queries (no build info: " + why + ")"));
              else
                cb(q.status());
            },
            [](std::string_view body) -> Result<std::string> {
              if (auto st = checkPromAnswer(body); !st) return st;
              return std::string("ok");
            });
      },
      &parsePromBuildInfo);
}
