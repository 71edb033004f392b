#include "panel_controller.h"

#include "core/series_stats.h"

#include <QDateTime>
#include <limits>

#include "core/csv.h"
#include "data_source_client.h"
#include "data_sources.h"
#include "live_subscriber.h"

using namespace tally;
using namespace tally::dash;

PanelController::PanelController(CollectorClient* client, LiveSubscriber* live, QObject* parent)
    : QObject(parent),
      m_client(client),
      m_liveSub(live),
      m_now([] { return QDateTime::currentSecsSinceEpoch(); }) {
  m_requeryTimer.setSingleShot(true);
  connect(&m_requeryTimer, &QTimer::timeout, this, &PanelController::refresh);
  if (m_liveSub)
    connect(m_liveSub, &LiveSubscriber::updatesReceived, this, &PanelController::onLiveUpdates);
  m_window = resolveRange(m_range, now());
}

void PanelController::setDataSources(DataSources* sources) {
  if (m_sources) disconnect(m_sources, nullptr, this, nullptr);
  m_sources = sources;
  if (m_sources)
    connect(m_sources, &DataSources::changed, this, [this] {
      if (!m_spec.source.empty()) refresh();  // the panel's source may have changed
    });
}

DataSourceClient* PanelController::source() const {
  return dataSourceFor(m_spec.source, m_client, m_sources);
}

QString PanelController::sourceName() const {
  if (DataSourceClient* s = source()) return s->displayName();
  return m_spec.source.empty() ? tr("the collector")
                               : tr("data source %1").arg(QString::fromStdString(m_spec.source));
}

bool PanelController::streams() const {
  DataSourceClient* s = source();
  // A PromQL panel (several queries, an expression, an offset) is evaluated by the source's
  // Prometheus API, which has no stream: it polls.
  if (m_spec.needsPromQL()) return false;
  return s ? s->features().liveStream : m_spec.source.empty();
}

PanelController::~PanelController() {
  if (m_liveSub && !m_subscribed.isEmpty()) m_liveSub->unsubscribe(m_subscribed);
}

void PanelController::setSpec(const PanelSpec& spec) {
  PanelSpec old = m_spec;
  m_spec = spec;
  bool queryChanged = old.source != spec.source || old.promql != spec.promql ||
                      old.metric != spec.metric || old.filters != spec.filters ||
                      old.groupBy != spec.groupBy || old.fn != spec.fn ||
                      old.offsetS != spec.offsetS || old.queries != spec.queries ||
                      old.expression != spec.expression ||
                      chartNeedsDistribution(old.chart) != chartNeedsDistribution(spec.chart) ||
                      (old.chart == ChartType::Histogram) != (spec.chart == ChartType::Histogram);
  if (old.chart != spec.chart && (old.chart == ChartType::Bars || spec.chart == ChartType::Bars))
    queryChanged = true;
  if (queryChanged) {
    m_series.reset();
    m_histogram.reset();
    m_heatmap.reset();
    m_hidden.clear();
    m_liveKind.reset();
    updateSubscription();
    resetLive();
    refresh();
  } else {
    emit dataChanged();
  }
}

void PanelController::setRange(const TimeRangeSpec& range) {
  m_range = range;
  m_zoom.reset();
  m_window = resolveRange(m_range, now());
  refresh();
}

void PanelController::setLive(bool live) {
  if (m_live == live) return;
  m_live = live;
  updateSubscription();
  resetLive();
  if (live) refresh();
}

void PanelController::updateSubscription() {
  QString want =
      m_live && m_liveSub && streams() ? QString::fromStdString(m_spec.metric) : QString();
  if (want == m_subscribed) return;
  if (m_liveSub && !m_subscribed.isEmpty()) m_liveSub->unsubscribe(m_subscribed);
  m_subscribed = want;
  if (m_liveSub && !m_subscribed.isEmpty()) m_liveSub->subscribe(m_subscribed);
}

void PanelController::resetLive() {
  LiveBuffer::Options o;
  o.metric = m_spec.metric;
  o.filters = m_spec.filters;
  o.groupBy = m_spec.groupBy;
  o.fn = m_spec.fn;
  // Buckets from the next second on are seen whole: every update carries the bucket's full value
  // and each bucket gets a FINAL after the subscription is in place.
  m_liveBuffer.reset(std::move(o), now() + 1);
}

void PanelController::zoomTo(const TimeWindow& window) {
  if (window.length() < 2) return;
  m_zoom = window;
  m_window = window;
  refresh();
}

void PanelController::resetZoom() {
  if (!m_zoom) return;
  m_zoom.reset();
  m_window = resolveRange(m_range, now());
  refresh();
}

void PanelController::setPixelWidth(int pixels) {
  pixels = std::max(50, pixels);
  if (pixels == m_pixelWidth) return;
  int64_t oldStep = step();
  m_pixelWidth = pixels;
  if (step() != oldStep && hasData()) {
    m_requeryTimer.start(150);
  }
}

int64_t PanelController::step() const {
  if (DataSourceClient* s = source()) return s->step(m_window, m_pixelWidth, now(), m_spec.chart);
  // A source the dashboard does not (or no longer) define: its query fails and says so.
  return PromSource::stepFor(m_window, m_pixelWidth, now(), m_spec.chart, 10);
}

TimeWindow PanelController::shownWindow() const {
  int64_t st = m_series ? m_series->step : m_heatmap ? m_heatmap->step : 0;
  if (m_spec.chart == ChartType::Histogram || st <= 0) return m_window;
  return {bucket_start(m_window.from, st), m_window.to};
}

bool PanelController::hasData() const {
  return m_series || m_histogram || m_heatmap;
}

void PanelController::refresh() {
  m_requeryTimer.stop();
  if (!m_zoom) m_window = resolveRange(m_range, now());
  DataSourceClient* src = source();
  if (!m_spec.hasQuery() || (!src && m_spec.source.empty())) {
    m_error.clear();  // nothing to ask (or, in tests, no collector client)
    emit stateChanged();
    return;
  }
  const quint64 gen = ++m_generation;
  ++m_queries;
  m_queriedWindow = m_window;
  m_requestedStep = step();
  m_lastQueryAt = now();
  if (!src) {
    m_series.reset();
    finish(Status::not_found("no data source named '" + m_spec.source + "' in this dashboard"));
    return;
  }
  auto text = src->queryText(m_spec, m_requestedStep);
  if (!text) {
    m_series.reset();
    m_lastQueryText.clear();
    finish(text.status());
    return;
  }
  m_lastQueryText = *text;
  m_loading = true;
  emit stateChanged();
  DataSourceClient::PanelQuery q;
  q.spec = m_spec;
  q.window = m_window;
  q.step = m_requestedStep;
  q.histogramBuckets = std::clamp(m_pixelWidth / 10, 10, 120);
  q.now = now();
  const bool live = src->features().liveStream;
  src->runPanel(q, this, [this, gen, live](Result<DataSourceClient::PanelAnswer> r) {
    if (gen != m_generation) return;  // a newer query is on its way
    if (r) {
      if (r->histogram) m_histogram = std::move(*r->histogram);
      if (r->heatmap) m_heatmap = std::move(*r->heatmap);
      if (r->series) {
        m_series = std::move(*r->series);
        m_unknownFrom.reset();  // the source answered for the whole window
        if (live && m_live && !m_zoom) mergeLive();
      }
    }
    finish(r.status());
  });
}

void PanelController::finish(const Status& status) {
  m_loading = false;
  m_error = status ? QString() : QString::fromStdString(status.message());
  emit stateChanged();
  emit dataChanged();
  emit queryFinished(status.is_ok());
}

void PanelController::mergeLive() {
  if (!m_series) {
    // A metric the collector did not know at query time (404) starts from the stream alone.
    if (m_liveBuffer.cellCount() == 0 || !m_liveKind) return;
    QueryResult r;
    r.metric = m_spec.metric;
    r.kind = m_liveKind;
    r.fn = m_spec.fn;
    r.step = step();
    r.from = bucket_start(m_window.from, r.step);
    r.to = r.from;
    m_series = std::move(r);
    m_error.clear();
    emit stateChanged();
  }
  m_liveBuffer.pruneBefore(m_series->from);
  m_liveBuffer.mergeInto(*m_series, m_window.to);
  trimUnknown();
}

void PanelController::trimUnknown() {
  if (!m_unknownFrom || !m_series) return;
  for (auto& s : m_series->series)
    std::erase_if(s.points, [this](const Point& p) { return p.t >= *m_unknownFrom; });
}

void PanelController::setCollectorReachable(bool reachable, int64_t lastContact) {
  if (!streams()) return;  // the collector's health; a polled source's failures are its errors
  if (!reachable) {
    if (m_unknownFrom) return;
    m_unknownFrom = lastContact > 0 ? std::min(lastContact, now()) : now();
    trimUnknown();
    emit stateChanged();
    emit dataChanged();
    return;
  }
  if (!m_unknownFrom) return;
  resetLive();
  refresh();
}

void PanelController::tick() {
  if (!m_live || m_zoom || m_range.isCustom()) return;
  m_window = resolveRange(m_range, now());
  if (!streams()) {
    // No stream from the source: ask again once a step has passed (at most every 5 s).
    const bool due =
        now() - m_lastQueryAt >= std::max<int64_t>(5, m_requestedStep) || step() != m_requestedStep;
    if (!m_loading && due)
      refresh();
    else
      emit dataChanged();
    return;
  }
  if (m_series && !m_loading) {
    // Re-query once the window has slid a quarter of its length past the last answer, or the
    // step no longer fits the width: this bounds memory and picks up anything the stream missed.
    // (Compared with the step asked for: the collector may answer with another one.)
    if (m_window.from - m_queriedWindow.from > m_window.length() / 4 || step() != m_requestedStep) {
      refresh();
      return;
    }
    mergeLive();
  }
  emit dataChanged();
}

void PanelController::onLiveUpdates(const QString& metric, const std::vector<LiveUpdate>& updates) {
  if (!m_live || metric != m_subscribed) return;
  bool changed = false;
  for (const auto& u : updates) changed |= m_liveBuffer.apply(u);
  if (changed && !m_liveKind) m_liveKind = updates.front().kind;
  if (!changed) return;
  if (auto stale = m_liveBuffer.takeStaleCorrection(); stale && *stale >= m_window.from) {
    if (!m_requeryTimer.isActive()) m_requeryTimer.start(300);
  }
  if (chartNeedsDistribution(m_spec.chart)) {
    if (!m_requeryTimer.isActive() && !m_loading) m_requeryTimer.start(2000);
    return;
  }
  if (m_zoom) return;
  if (!m_range.isCustom()) m_window = resolveRange(m_range, now());
  mergeLive();
  emit dataChanged();
}

void PanelController::setSeriesHidden(const QString& label, bool hidden) {
  if (hidden)
    m_hidden.insert(label);
  else
    m_hidden.remove(label);
  emit dataChanged();
}

std::vector<Series> PanelController::visibleSeries() const {
  std::vector<Series> out;
  if (!m_series) return out;
  const TimeWindow shown = shownWindow();
  for (const auto& s : m_series->series) {
    if (m_hidden.contains(QString::fromStdString(s.label(m_spec.metric)))) continue;
    Series v;
    v.tags = s.tags;
    v.partialFrom = s.partialFrom;
    for (const auto& p : s.points)
      if (p.t >= shown.from && p.t < shown.to) v.points.push_back(p);
    out.push_back(std::move(v));
  }
  return out;
}

void PanelController::setAnnotations(std::vector<Annotation> annotations) {
  if (annotations == m_annotations) return;
  m_annotations = std::move(annotations);
  emit dataChanged();
}

std::string PanelController::csv() const {
  if (chartIsReduced(m_spec.chart))
    return statsToCsv(seriesStats(visibleSeries(), m_spec.promql.empty() ? m_spec.metric : ""));
  switch (m_spec.chart) {
    case ChartType::Histogram:
      return m_histogram ? histogramToCsv(*m_histogram) : histogramToCsv({});
    case ChartType::Heatmap:
      return heatmapToCsv(m_heatmap ? *m_heatmap : HeatmapResult{}, shownWindow().from,
                          shownWindow().to);
    default:
      if (!m_spec.promql.empty() || !m_spec.queries.empty() || !m_spec.expression.empty())
        // A raw expression, or several queries: the PromQL the source evaluated.
        return seriesToCsv(m_lastQueryText.empty() ? m_spec.promql : m_lastQueryText, "promql",
                           visibleSeries(), shownWindow().from, shownWindow().to);
      return seriesToCsv(m_spec.metric, fn_name(m_spec.fn), visibleSeries(), shownWindow().from,
                         shownWindow().to);
  }
}
