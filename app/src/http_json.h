// What the dashboard's HTTP clients (CollectorClient, PromClient) share: the request URL for an
// API path below a base URL, and parsing an answer on a worker thread with the result handed
// back on the owner's thread.
// Thread-safety: apiUrl is pure; parseOffThread is called on the owner's (GUI) thread.
#pragma once

#include <QMetaObject>
#include <QPointer>
#include <QThreadPool>
#include <QUrl>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tally/common/status.h"

namespace tally::dash {

// base + "/api/v1/x?k=v": the path goes below the base URL's own path (a server behind a proxy
// at http://host/tally/ or a cluster at http://vmselect:8481/select/0/prometheus), the query is
// taken as already percent-encoded.
inline QUrl apiUrl(const QUrl& base, const std::string& pathAndQuery) {
  QUrl url = base;
  const QString p = QString::fromStdString(pathAndQuery);
  const qsizetype q = p.indexOf('?');
  QString basePath = url.path();
  while (basePath.endsWith('/')) basePath.chop(1);
  url.setPath(basePath + (q < 0 ? p : p.left(q)));
  url.setQuery(q < 0 ? QString() : p.mid(q + 1), QUrl::StrictMode);
  return url;
}

// Parses body on pool, then calls cb with the result on owner's thread, unless context is gone.
template <typename T, typename Parse>
void parseOffThread(QThreadPool& pool, QObject* owner, QPointer<QObject> context, QByteArray body,
                    std::function<void(Result<T>)> cb, Parse parse) {
  pool.start([owner, context, cb = std::move(cb), parse = std::move(parse),
              body = std::move(body)] {
    auto parsed =
        std::make_shared<Result<T>>(parse(std::string_view(body.constData(), size_t(body.size()))));
    QMetaObject::invokeMethod(
        owner,
        [context, cb, parsed] {
          if (context) cb(std::move(*parsed));
        },
        Qt::QueuedConnection);
  });
}

}  // namespace tally::dash
