// HttpApi: the collector's HTTP/JSON API (docs/API.md) on cpp-httplib: metrics list, tags, range
// query, histogram, heatmap, /healthz and /metrics. Parameter parsing lives here; the work is the
// QueryEngine's. Bad queries get 400 with {"error": ...} and are counted.
// Thread-safety: start()/stop() from the owning thread; handlers run on httplib's pool.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "aggregate/cardinality.h"
#include "auth/http_guard.h"
#include "query/promql.h"
#include "query/query_engine.h"
#include "self_metrics.h"
#include "storage/annotation_store.h"
#include "tally/common/backup.h"

namespace httplib {
class Server;
struct Request;
}  // namespace httplib

namespace tally::collector {

// Parses a time parameter: unix seconds, "now", or "-<duration>" relative to now.
Result<int64_t> parse_time_param(std::string_view text, int64_t now_s);
// Reads from (default -1h) and to (default now, exclusive: now means the current second too) in
// unix seconds; 'to' must be after 'from'.
Result<std::pair<int64_t, int64_t>> parse_from_to(const httplib::Request& req, int64_t now_s);
// Reads metric, filter, group_by, from, to, step, points and (need_fn) fn of a range request.
Result<RangeQuery> parse_range_params(const httplib::Request& req, int64_t now_s, bool need_fn);

class HttpApi {
 public:
  HttpApi(QueryEngine& engine, const SeriesCatalog& catalog, Router& router, SelfMetrics& metrics,
          const Clock& clock);
  ~HttpApi();

  // Bounds on PromQL queries (before start()).
  void set_promql_limits(const promql::Limits& l) { promql_limits_ = l; }
  // The cardinality limits' state for /api/cardinality and /metrics (before start()).
  void set_cardinality(const CardinalityGuard* g) { cardinality_ = g; }
  // The annotation store behind /api/annotations (before start()); without it those routes 404.
  void set_annotations(AnnotationStore* store) { annotations_ = store; }
  // Extra health condition beside the shards' (e.g. the write-ahead log is writable).
  void set_health_check(std::function<bool()> fn) { health_ = std::move(fn); }
  // POST /api/admin/backup?dir=/abs/path writes a backup there (Server::backup).
  using BackupFn = std::function<Result<backup::Manifest>(const std::string& dir)>;
  void set_backup(BackupFn fn) { backup_ = std::move(fn); }
  // Tokens, Host and Origin allowlists (auth/http_guard.h) and TLS (both files set = HTTPS),
  // before start(). Without it: no tokens, loopback Host names, no Origin allowed.
  struct Security {
    HttpGuardOptions guard;
    std::string tls_cert_file;
    std::string tls_key_file;
  };
  void set_security(Security s) { security_ = std::move(s); }
  // POST /api/admin/reload runs this (admin scope): keys and tokens read again; its answer says
  // what was loaded, or why nothing was.
  void set_reload(std::function<Result<std::string>()> fn) { reload_ = std::move(fn); }
  // Replaces the accepted tokens (a reload), while serving.
  void set_tokens(std::vector<std::string> read, std::vector<std::string> admin);
  // HTTP connections waiting for their request or for a worker (http_max_connections).
  void set_max_connections(size_t n) { max_connections_ = n; }
  // Listens on "host:port" (port 0 picks a free one); returns the bound port.
  Result<int> start(const std::string& listen);
  void stop();

 private:
  void routes();
  void log_refusal(const httplib::Request& req, const GuardVerdict& v);
  QueryEngine& engine_;
  const SeriesCatalog& catalog_;
  Router& router_;
  SelfMetrics& metrics_;
  const Clock& clock_;
  int64_t started_s_;
  std::function<bool()> health_;
  BackupFn backup_;
  const CardinalityGuard* cardinality_ = nullptr;
  AnnotationStore* annotations_ = nullptr;
  Security security_;
  std::unique_ptr<HttpGuard> guard_;
  std::function<Result<std::string>()> reload_;
  std::atomic<int64_t> last_refusal_log_s_{0};
  std::atomic<uint64_t> suppressed_refusals_{0};
  promql::Limits promql_limits_;
  size_t max_connections_ = 512;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace tally::collector
