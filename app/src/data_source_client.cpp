#include "data_source_client.h"

#include <limits>

#include "collector_client.h"
#include "core/promql.h"
#include "data_sources.h"
#include "prom_client.h"

using namespace tally;
using namespace tally::dash;

namespace {

const std::vector<Resolution>& defaultRetention() {
  static const std::vector<Resolution> r = *parse_retention(kDefaultRetention);
  return r;
}

}  // namespace

// ------------------------------------------------------------------------------ the collector

CollectorSource::CollectorSource(CollectorClient* client, QObject* parent)
    : DataSourceClient(parent), m_client(client) {}

CollectorSource* CollectorSource::of(CollectorClient* client) {
  if (!client) return nullptr;
  if (auto* s = client->findChild<CollectorSource*>(QString(), Qt::FindDirectChildrenOnly))
    return s;
  return new CollectorSource(client, client);
}

DataSourceClient::Features CollectorSource::features() const {
  Features f;
  f.liveStream = true;
  f.distributions = true;
  f.seriesCounts = true;
  f.expressions = true;  // the collector's Prometheus API evaluates PromQL
  return f;
}

QString CollectorSource::displayName() const {
  return tr("the collector");
}

void CollectorSource::fetchMetrics(MetricDetail, QObject* context,
                                   Callback<std::vector<MetricInfo>> cb) {
  if (m_client) m_client->fetchMetrics(context, std::move(cb));
}

void CollectorSource::fetchTags(const std::string& metric, QObject* context,
                                Callback<TagValues> cb) {
  if (m_client) m_client->fetchTags(QString::fromStdString(metric), context, std::move(cb));
}

int64_t CollectorSource::step(const TimeWindow& window, int pixelWidth, int64_t now,
                              ChartType chart) const {
  const int ppp = chart == ChartType::Bars ? 8 : chart == ChartType::Heatmap ? 8 : 3;
  return chooseStep(window, pixelWidth, now, defaultRetention(), ppp);
}

Result<std::string> CollectorSource::queryText(const PanelSpec& spec, int64_t step) const {
  // A panel of one query: its settings are the query (/api/query's parameters).
  if (!spec.needsPromQL()) return std::string();
  return buildPanelPromQL(spec, step, PromDialect::Tally);
}

PromClient* CollectorSource::promClient() {
  if (!m_client) return nullptr;
  DataSource s;
  s.name = "collector";
  s.url = m_client->baseUrl().toString(QUrl::StripTrailingSlash).toStdString();
  s.minStepS = 1;
  // The collector's read token, as CollectorClient sends it (docs/SECURITY.md).
  if (const QByteArray token = qgetenv("TALLY_TOKEN"); !token.isEmpty())
    s.headers.push_back({"Authorization", "Bearer " + token.toStdString(), false});
  if (!m_prom)
    m_prom = new PromClient(s, this);
  else if (!(m_prom->source() == s))
    m_prom->setSource(s);
  return m_prom;
}

void CollectorSource::runPanel(const PanelQuery& q, QObject* context, Callback<PanelAnswer> cb) {
  if (!m_client) return;
  if (q.spec.needsPromQL()) {
    auto expr = buildPanelPromQL(q.spec, q.step, PromDialect::Tally);
    if (!expr) return cb(expr.status());
    if (PromClient* prom = promClient()) runPromQL(prom, q, *expr, context, std::move(cb));
    return;
  }
  QueryRequest r;
  r.metric = q.spec.metric;
  r.filters = q.spec.filters;
  r.groupBy = q.spec.groupBy;
  r.fn = q.spec.fn;
  r.from = q.window.from;
  r.to = q.window.to;
  r.step = q.step;
  r.histogramBuckets = q.histogramBuckets;
  switch (q.spec.chart) {
    case ChartType::Histogram:
      m_client->histogram(r, context, [cb](Result<HistogramResult> h) {
        if (!h) return cb(h.status());
        PanelAnswer a;
        a.histogram = std::move(*h);
        cb(std::move(a));
      });
      break;
    case ChartType::Heatmap:
      m_client->heatmap(r, context, [cb](Result<HeatmapResult> h) {
        if (!h) return cb(h.status());
        PanelAnswer a;
        a.heatmap = std::move(*h);
        cb(std::move(a));
      });
      break;
    default:
      m_client->query(r, context, [cb](Result<QueryResult> s) {
        if (!s) return cb(s.status());
        PanelAnswer a;
        a.series = std::move(*s);
        cb(std::move(a));
      });
  }
}

Status CollectorSource::supportsFunction(Fn fn, const std::string&, std::optional<Kind> kind,
                                         const std::vector<MetricInfo>&) const {
  // A metric of unknown kind (not sent yet) may be anything: everything stays possible.
  if (is_percentile(fn) && kind && *kind != Kind::kDistribution)
    return Status::invalid_argument("percentiles need a distribution");
  if (fn == Fn::kRate && kind == Kind::kGauge)
    return Status::invalid_argument("a gauge has no rate");
  return Status::ok();
}

bool CollectorSource::supportsChart(ChartType chart, std::optional<Kind> kind) const {
  return !kind || *kind == Kind::kDistribution || !chartNeedsDistribution(chart);
}

// ------------------------------------------------------------ a Prometheus-compatible server

PromSource::PromSource(const DataSource& source, QObject* parent)
    : DataSourceClient(parent), m_client(new PromClient(source, this)) {}

const DataSource& PromSource::source() const {
  return m_client->source();
}

int64_t PromSource::stepFor(const TimeWindow& window, int pixelWidth, int64_t now, ChartType chart,
                            int64_t minStepS) {
  const std::vector<Resolution> finest = {{minStepS, std::numeric_limits<int64_t>::max()}};
  return chooseStep(window, pixelWidth, now, finest, chart == ChartType::Bars ? 8 : 3);
}

DataSourceClient::Features PromSource::features() const {
  Features f;
  f.notRegex = true;
  f.expressions = true;
  return f;
}

QString PromSource::displayName() const {
  return tr("data source %1").arg(QString::fromStdString(source().name));
}

void PromSource::fetchMetrics(MetricDetail detail, QObject* context,
                              Callback<std::vector<MetricInfo>> cb) {
  QPointer<PromClient> guard(m_client);
  auto withNames = [detail, context, guard, cb](Result<std::vector<std::string>> r) {
    if (!r) return cb(r.status());
    if (detail == MetricDetail::kNames) {
      std::vector<MetricInfo> metrics;
      for (auto& n : *r) metrics.push_back({std::move(n), std::nullopt, 0});
      return cb(std::move(metrics));
    }
    if (!guard) return;
    // Kinds from the metadata where the server keeps it (Prometheus does, VictoriaMetrics not);
    // without it the list still comes, kinds unknown.
    guard->fetchMetadata(context, [names = *r, cb](Result<PromTypes> t) {
      cb(promMetricKinds(names, t ? *t : PromTypes{}));
    });
  };
  m_client->fetchMetricNames(context, std::move(withNames));
}

void PromSource::fetchTags(const std::string& metric, QObject* context, Callback<TagValues> cb) {
  m_client->fetchTags(metric, context, std::move(cb));
}

int64_t PromSource::step(const TimeWindow& window, int pixelWidth, int64_t now,
                         ChartType chart) const {
  return stepFor(window, pixelWidth, now, chart, source().minStepS);
}

Result<std::string> PromSource::queryText(const PanelSpec& spec, int64_t step) const {
  return buildPanelPromQL(spec, step);
}

void PromSource::runPanel(const PanelQuery& q, QObject* context, Callback<PanelAnswer> cb) {
  auto expr = buildPanelPromQL(q.spec, q.step);
  if (!expr) return cb(expr.status());
  runPromQL(m_client, q, *expr, context, std::move(cb));
}

void runPromQL(PromClient* client, const DataSourceClient::PanelQuery& q, const std::string& expr,
               QObject* context, DataSourceClient::Callback<DataSourceClient::PanelAnswer> cb) {
  using PanelAnswer = DataSourceClient::PanelAnswer;
  // Buckets still filling up are left out: an evaluation time in the future is answered from
  // older data (VictoriaMetrics repeats its last point there), not from the bucket's samples.
  PromRange range = promRangeFor(q.window.from, q.window.to, q.step);
  range.end = std::min(range.end, bucket_start(q.now, range.step));
  if (range.end < range.start) {
    PanelAnswer a;
    a.series.emplace();
    a.series->metric = q.spec.metric;
    a.series->step = a.series->resolution = range.step;
    a.series->from = a.series->to = range.start - range.step;
    return cb(std::move(a));
  }
  client->queryRange(
      expr, range, context,
      [metric = q.spec.metric,
       fn = q.spec.promql.empty() && q.spec.queries.empty() && q.spec.expression.empty()
                ? std::optional<Fn>(q.spec.fn)
                : std::nullopt,
       range, cb](Result<QueryResult> r) {
        if (!r) return cb(r.status());
        r->metric = metric;
        r->fn = fn;
        r->from = range.start - range.step;
        r->to = range.end;
        PanelAnswer a;
        a.series = std::move(*r);
        cb(std::move(a));
      });
}

Status PromSource::supportsFunction(Fn fn, const std::string& metric, std::optional<Kind>,
                                    const std::vector<MetricInfo>& metrics) const {
  if (metric.empty()) return Status::ok();
  std::vector<std::string> names;
  names.reserve(metrics.size());
  for (const auto& m : metrics) names.push_back(m.name);
  return promFunctionSupported(fn, metric, names);
}

bool PromSource::supportsChart(ChartType chart, std::optional<Kind>) const {
  return !chartNeedsDistribution(chart);  // no distributions: no histogram nor heatmap
}

// ------------------------------------------------------------------------------ the choice

DataSourceClient* dataSourceFor(const std::string& name, CollectorClient* collector,
                                const DataSources* sources) {
  if (name.empty()) return CollectorSource::of(collector);
  return sources ? sources->source(name) : nullptr;
}
