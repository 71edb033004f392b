// PanelController: one panel's data: its spec, the window it shows, the last query answer as a
// plain value, and the live updates merged into it. It asks the panel's data source
// (DataSourceClient, data_source_client.h: the collector, or a Prometheus-compatible server the
// spec names) for a range query (line, stacked, bars), a histogram or a heatmap, with the step
// following the chart's pixel width and what the source can answer, and emits dataChanged();
// views read the snapshot and draw it (they hold no data).
//
// Live: while live is on and the range is relative, the window slides with tick() (once a
// second). On a source with a live stream (the collector's), series panels merge LiveBuffer's
// buckets (replace, never add), histogram and heatmap panels re-query at most every two seconds
// while updates arrive, and a correction older than what the buffer covers triggers a re-query.
// On a source without one the panel re-queries every step (at least every 5 s).
// Thread-safety: GUI thread.
#pragma once

#include <QObject>
#include <QPointer>
#include <QSet>
#include <QTimer>
#include <optional>

#include "core/api.h"
#include "core/dashboard.h"
#include "core/live_buffer.h"
#include "core/time_range.h"

class CollectorClient;
class DataSourceClient;
class DataSources;
class LiveSubscriber;

class PanelController : public QObject {
  Q_OBJECT
 public:
  PanelController(CollectorClient* client, LiveSubscriber* live, QObject* parent = nullptr);
  ~PanelController() override;

  // Where panels on a named data source find its client; without it they show an error.
  void setDataSources(DataSources* sources);
  const tally::dash::PanelSpec& spec() const { return m_spec; }
  // The client of the panel's source (dataSourceFor); nullptr when there is none.
  DataSourceClient* source() const;
  // For messages: "the collector", "data source vm".
  QString sourceName() const;
  // The query text of the last query (its PromQL; "" where the settings are the query).
  const std::string& lastPromQL() const { return m_lastQueryText; }
  void setSpec(const tally::dash::PanelSpec& spec);  // re-queries if the query changed
  void setGrid(const tally::dash::GridRect& grid) { m_spec.grid = grid; }

  // The dashboard's range and live flag; a zoom overrides the range until resetZoom().
  void setRange(const tally::dash::TimeRangeSpec& range);
  void setLive(bool live);
  bool isLive() const { return m_live; }
  void zoomTo(const tally::dash::TimeWindow& window);
  void resetZoom();
  bool isZoomed() const { return m_zoom.has_value(); }
  // Plot width in pixels: the query step follows it.
  void setPixelWidth(int pixels);
  int pixelWidth() const { return m_pixelWidth; }
  // The clock; tests may pin it.
  void setNowFunction(std::function<int64_t()> now) { m_now = std::move(now); }
  int64_t currentTime() const { return m_now(); }

  tally::dash::TimeWindow window() const { return m_window; }
  // The window widened down to the start of its first bucket: what the chart's x axis spans.
  tally::dash::TimeWindow shownWindow() const;
  int64_t step() const;
  bool isLoading() const { return m_loading; }
  QString error() const { return m_error; }
  bool hasData() const;

  const tally::dash::QueryResult* series() const { return m_series ? &*m_series : nullptr; }
  const tally::dash::HistogramResult* histogram() const {
    return m_histogram ? &*m_histogram : nullptr;
  }
  const tally::dash::HeatmapResult* heatmap() const { return m_heatmap ? &*m_heatmap : nullptr; }

  // Series hidden by a legend click (by label); hidden series are not drawn nor exported.
  void setSeriesHidden(const QString& label, bool hidden);
  const QSet<QString>& hiddenSeries() const { return m_hidden; }
  // The series shown, clipped to the window (what the chart draws and the CSV holds).
  std::vector<tally::dash::Series> visibleSeries() const;
  std::string csv() const;

  // The collector cannot be reached (HealthMonitor): time from `lastContact` on is unknown, so the
  // panel stops drawing there (a gap, never zeros filled in while the window slides) and says
  // since when its data is stale. reachable(true) resets the stream's coverage (seconds missed
  // were not seen whole) and re-queries; the answer is the collector's word for the gap.
  void setCollectorReachable(bool reachable, int64_t lastContact = 0);
  std::optional<int64_t> unknownFrom() const { return m_unknownFrom; }

  // The dashboard's annotations over its range (AnnotationFeed); line, stacked and bar charts
  // mark them.
  void setAnnotations(std::vector<tally::dash::Annotation> annotations);
  const std::vector<tally::dash::Annotation>& annotations() const { return m_annotations; }

  const tally::dash::LiveBuffer& liveBuffer() const { return m_liveBuffer; }
  int queriesIssued() const { return m_queries; }

 public slots:
  void refresh();
  // Slides a relative window to now and merges live data; re-queries when it slid far.
  void tick();
  void onLiveUpdates(const QString& metric, const std::vector<tally::dash::LiveUpdate>& updates);

 signals:
  void dataChanged();
  void stateChanged();  // loading / error
  void queryFinished(bool ok);

 private:
  void resetLive();
  // Whether the source streams live updates (else the panel polls).
  bool streams() const;
  void updateSubscription();
  void finish(const tally::Status& status);
  void mergeLive();
  void trimUnknown();
  int64_t now() const { return m_now(); }

  CollectorClient* m_client;
  QPointer<DataSources> m_sources;
  std::string m_lastQueryText;
  int64_t m_lastQueryAt = 0;
  QPointer<LiveSubscriber> m_liveSub;  // may go first when the window is torn down
  tally::dash::PanelSpec m_spec;
  tally::dash::TimeRangeSpec m_range;
  std::optional<tally::dash::TimeWindow> m_zoom;
  tally::dash::TimeWindow m_window;
  tally::dash::TimeWindow m_queriedWindow;
  int64_t m_requestedStep = 0;
  int m_pixelWidth = 800;
  bool m_live = false;
  QString m_subscribed;
  std::function<int64_t()> m_now;

  std::optional<tally::dash::QueryResult> m_series;
  std::optional<tally::dash::HistogramResult> m_histogram;
  std::optional<tally::dash::HeatmapResult> m_heatmap;
  QString m_error;
  bool m_loading = false;
  quint64 m_generation = 0;
  int m_queries = 0;
  QSet<QString> m_hidden;
  std::optional<int64_t> m_unknownFrom;

  std::vector<tally::dash::Annotation> m_annotations;
  tally::dash::LiveBuffer m_liveBuffer;
  std::optional<tally::Kind> m_liveKind;  // kind of the metric as the stream tells it
  QTimer m_requeryTimer;
};
