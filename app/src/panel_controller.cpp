#include "panel_controller.h"

#include <QDateTime>
#include <limits>

#include "collector_client.h"
#include "core/csv.h"
#include "core/promql.h"
#include "data_sources.h"
#include "live_subscriber.h"
#include "prom_client.h"

using namespace tally;
using namespace tally::dash;

namespace {
const std::vector<Resolution>& defaultRetention() {
  static const std::vector<Resolution> r = *parse_retention(kDefaultRetention);
  return r;
}
}  // namespace

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
      if (onPrometheus()) refresh();
    });
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
                      chartNeedsDistribution(old.chart) != chartNeedsDistribution(spec.chart) ||
                      (old.chart == ChartType::Histogram) != (spec.chart == ChartType::Histogram);
  if (old.chart != spec.chart && (old.chart == ChartType::Bars || spec.chart == ChartType::Bars))
    queryChanged = true;
  if (queryChanged) {
    m_series.reset();
    m_histogram.reset();
    m_heatmap.reset();
    m_hidden.clear();
    m_liveKind.clear();
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
      m_live && m_liveSub && !onPrometheus() ? QString::fromStdString(m_spec.metric) : QString();
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
  if (onPrometheus()) {
    const DataSource* src = m_sources ? m_sources->find(m_spec.source) : nullptr;
    const std::vector<Resolution> finest = {
        {src ? src->minStepS : 10, std::numeric_limits<int64_t>::max()}};
    return chooseStep(m_window, m_pixelWidth, now(), finest,
                      m_spec.chart == ChartType::Bars ? 8 : 3);
  }
  int ppp = m_spec.chart == ChartType::Bars ? 8 : m_spec.chart == ChartType::Heatmap ? 8 : 3;
  return chooseStep(m_window, m_pixelWidth, now(), defaultRetention(), ppp);
}

TimeWindow PanelController::shownWindow() const {
  int64_t st = m_series ? m_series->step : m_heatmap ? m_heatmap->step : 0;
  if (m_spec.chart == ChartType::Histogram || st <= 0) return m_window;
  return {bucket_start(m_window.from, st), m_window.to};
}

bool PanelController::hasData() const {
  return m_series || m_histogram || m_heatmap;
}

QueryRequest PanelController::request() const {
  QueryRequest r;
  r.metric = m_spec.metric;
  r.filters = m_spec.filters;
  r.groupBy = m_spec.groupBy;
  r.fn = m_spec.fn;
  r.from = m_window.from;
  r.to = m_window.to;
  r.step = step();
  r.histogramBuckets = std::clamp(m_pixelWidth / 10, 10, 120);
  return r;
}

void PanelController::refresh() {
  m_requeryTimer.stop();
  if (!m_zoom) m_window = resolveRange(m_range, now());
  if (onPrometheus()) {
    refreshPrometheus();
    return;
  }
  if (m_spec.metric.empty() || !m_client) {
    m_error.clear();
    emit stateChanged();
    return;
  }
  const quint64 gen = ++m_generation;
  ++m_queries;
  m_loading = true;
  emit stateChanged();
  QueryRequest req = request();
  m_queriedWindow = m_window;
  m_requestedStep = req.step;
  auto stale = [this, gen] { return gen != m_generation; };
  switch (m_spec.chart) {
    case ChartType::Histogram:
      m_client->histogram(req, this, [this, stale](Result<HistogramResult> r) {
        if (stale()) return;
        if (r) m_histogram = std::move(*r);
        finish(r.status());
      });
      break;
    case ChartType::Heatmap:
      m_client->heatmap(req, this, [this, stale](Result<HeatmapResult> r) {
        if (stale()) return;
        if (r) m_heatmap = std::move(*r);
        finish(r.status());
      });
      break;
    default:
      m_client->query(req, this, [this, stale](Result<QueryResult> r) {
        if (stale()) return;
        if (r) {
          m_series = std::move(*r);
          m_unknownFrom.reset();  // the collector answered for the whole window
          if (m_live && !m_zoom) mergeLive();
        }
        finish(r.status());
      });
  }
}

void PanelController::refreshPrometheus() {
  if (!m_spec.hasQuery()) {
    m_error.clear();
    emit stateChanged();
    return;
  }
  const quint64 gen = ++m_generation;
  ++m_queries;
  m_queriedWindow = m_window;
  m_requestedStep = step();
  m_lastQueryAt = now();
  PromClient* client = m_sources ? m_sources->client(m_spec.source) : nullptr;
  if (!client) {
    m_series.reset();
    finish(Status::not_found("no data source named '" + m_spec.source + "' in this dashboard"));
    return;
  }
  auto expr = buildPromQL(m_spec, m_requestedStep);
  if (!expr) {
    m_series.reset();
    m_lastPromQL.clear();
    finish(expr.status());
    return;
  }
  m_lastPromQL = *expr;
  // Buckets still filling up are left out: an evaluation time in the future is answered from
  // older data (VictoriaMetrics repeats its last point there), not from the bucket's samples.
  PromRange range = promRangeFor(m_window.from, m_window.to, m_requestedStep);
  range.end = std::min(range.end, bucket_start(now(), range.step));
  if (range.end < range.start) {
    QueryResult empty;
    empty.metric = m_spec.metric;
    empty.step = empty.resolution = range.step;
    empty.from = empty.to = range.start - range.step;
    m_series = std::move(empty);
    finish(Status::ok());
    return;
  }
  m_loading = true;
  emit stateChanged();
  client->queryRange(*expr, range, this, [this, gen, range](Result<QueryResult> r) {
    if (gen != m_generation) return;
    if (r) {
      r->metric = m_spec.metric;
      r->fn = m_spec.promql.empty() ? m_spec.fn : "promql";
      r->from = range.start - range.step;
      r->to = range.end;
      m_series = std::move(*r);
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
    if (m_liveBuffer.cellCount() == 0 || m_liveKind.empty()) return;
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
  if (onPrometheus()) return;
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
  if (onPrometheus()) {
    // No stream from a Prometheus server: ask again once a step has passed (at most every 5 s).
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
  if (changed && m_liveKind.empty()) m_liveKind = kind_name(updates.front().kind);
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

std::string PanelController::csv() const {
  switch (m_spec.chart) {
    case ChartType::Histogram:
      return m_histogram ? histogramToCsv(*m_histogram) : histogramToCsv({});
    case ChartType::Heatmap:
      return heatmapToCsv(m_heatmap ? *m_heatmap : HeatmapResult{}, shownWindow().from,
                          shownWindow().to);
    default:
      if (onPrometheus() && !m_spec.promql.empty())
        return seriesToCsv(m_spec.promql, "promql", visibleSeries(), shownWindow().from,
                           shownWindow().to);
      return seriesToCsv(m_spec.metric, m_spec.fn, visibleSeries(), shownWindow().from,
                         shownWindow().to);
  }
}
