// DataSourceClient: what the dashboard asks of a data source, whichever kind it is. A panel runs
// its query through it, the panel editor and the metric browser list metrics and tags through
// it, and its features() say what the source can do (a live stream or polling, histograms, the
// !~ operator, raw expressions). Two implementations:
//   CollectorSource  the Tally collector (CollectorClient, docs/API.md), "" in a panel's spec;
//   PromSource       a Prometheus-compatible server (PromClient, promql.h), by its name.
// dataSourceFor() is the one place a panel's source name picks one; a third kind of source is a
// third implementation, and the callers do not change.
// Answers arrive on the GUI thread through callbacks that are dropped if their context object is
// gone, as the wrapped clients deliver them (possibly at once, before the call returns).
// Thread-safety: QObjects of the GUI thread.
#pragma once

#include <QObject>
#include <QPointer>
#include <functional>
#include <optional>

#include "core/api.h"
#include "core/dashboard.h"
#include "core/time_range.h"

class CollectorClient;
class DataSources;
class PromClient;

class DataSourceClient : public QObject {
  Q_OBJECT
 public:
  template <typename T>
  using Callback = std::function<void(tally::Result<T>)>;

  struct Features {
    bool liveStream = false;     // pushes 1 s updates (LiveSubscriber); otherwise panels poll
    bool distributions = false;  // histogram and heatmap charts, and the kind of every metric
    bool notRegex = false;       // the !~ filter operator
    bool seriesCounts = false;   // the metric list says how many series each metric has
    bool expressions = false;    // a panel may hold a raw query expression (spec.promql)
  };
  // What to list: names only, or names with their kinds where the source can tell (a second
  // request on a Prometheus server).
  enum class MetricDetail { kNames, kKinds };
  // A panel's query: the spec over `window` at `step` seconds, evaluated at `now`.
  struct PanelQuery {
    tally::dash::PanelSpec spec;
    tally::dash::TimeWindow window;
    int64_t step = 0;
    int histogramBuckets = 0;
    int64_t now = 0;
  };
  // The answer: series, or the histogram or heatmap a distribution chart asked for.
  struct PanelAnswer {
    std::optional<tally::dash::QueryResult> series;
    std::optional<tally::dash::HistogramResult> histogram;
    std::optional<tally::dash::HeatmapResult> heatmap;
  };

  using QObject::QObject;

  virtual Features features() const = 0;
  // For messages: "the collector", "data source vm".
  virtual QString displayName() const = 0;

  virtual void fetchMetrics(MetricDetail detail, QObject* context,
                            Callback<std::vector<tally::dash::MetricInfo>> cb) = 0;
  virtual void fetchTags(const std::string& metric, QObject* context,
                         Callback<tally::dash::TagValues> cb) = 0;

  // The step of a panel drawn `pixelWidth` pixels wide: one the source can answer exactly.
  virtual int64_t step(const tally::dash::TimeWindow& window, int pixelWidth, int64_t now,
                       tally::dash::ChartType chart) const = 0;
  // The text of the query a panel stands for at `step` (its PromQL), "" where the panel's settings
  // are the query; an error for settings the source cannot express.
  virtual tally::Result<std::string> queryText(const tally::dash::PanelSpec& spec,
                                               int64_t step) const = 0;
  virtual void runPanel(const PanelQuery& query, QObject* context, Callback<PanelAnswer> cb) = 0;

  // Whether the source can compute `fn` for `metric` (of `kind`, nullopt when unknown) among
  // `metrics` (what fetchMetrics listed); the error says why not.
  virtual tally::Status supportsFunction(
      tally::Fn fn, const std::string& metric, std::optional<tally::Kind> kind,
      const std::vector<tally::dash::MetricInfo>& metrics) const = 0;
  // Whether a chart type can show a metric of `kind` (nullopt when unknown).
  virtual bool supportsChart(tally::dash::ChartType chart,
                             std::optional<tally::Kind> kind) const = 0;
};

// Runs a panel's PromQL `expr` as a query_range over the panel's window and step, leaving out
// the buckets still filling (an evaluation time in the future is answered from older data).
void runPromQL(PromClient* client, const DataSourceClient::PanelQuery& query,
               const std::string& expr, QObject* context,
               DataSourceClient::Callback<DataSourceClient::PanelAnswer> cb);

// The Tally collector through a CollectorClient (not owned).
class CollectorSource : public DataSourceClient {
  Q_OBJECT
 public:
  explicit CollectorSource(CollectorClient* client, QObject* parent = nullptr);
  // The one CollectorSource of `client` (a child of it, made on first use); nullptr for nullptr.
  static CollectorSource* of(CollectorClient* client);

  Features features() const override;
  QString displayName() const override;
  void fetchMetrics(MetricDetail detail, QObject* context,
                    Callback<std::vector<tally::dash::MetricInfo>> cb) override;
  void fetchTags(const std::string& metric, QObject* context,
                 Callback<tally::dash::TagValues> cb) override;
  int64_t step(const tally::dash::TimeWindow& window, int pixelWidth, int64_t now,
               tally::dash::ChartType chart) const override;
  tally::Result<std::string> queryText(const tally::dash::PanelSpec& spec,
                                       int64_t step) const override;
  void runPanel(const PanelQuery& query, QObject* context, Callback<PanelAnswer> cb) override;
  tally::Status supportsFunction(
      tally::Fn fn, const std::string& metric, std::optional<tally::Kind> kind,
      const std::vector<tally::dash::MetricInfo>& metrics) const override;
  bool supportsChart(tally::dash::ChartType chart, std::optional<tally::Kind> kind) const override;

 private:
  // The collector's Prometheus API (/api/v1 on the same address), for PromQL panels.
  PromClient* promClient();
  QPointer<CollectorClient> m_client;
  PromClient* m_prom = nullptr;
};

// A Prometheus-compatible server through its PromClient (owned, a child).
class PromSource : public DataSourceClient {
  Q_OBJECT
 public:
  explicit PromSource(const tally::dash::DataSource& source, QObject* parent = nullptr);

  PromClient* client() const { return m_client; }
  const tally::dash::DataSource& source() const;
  // The finest step of a source that is not (or no longer) defined: 10 s.
  static int64_t stepFor(const tally::dash::TimeWindow& window, int pixelWidth, int64_t now,
                         tally::dash::ChartType chart, int64_t minStepS);

  Features features() const override;
  QString displayName() const override;
  void fetchMetrics(MetricDetail detail, QObject* context,
                    Callback<std::vector<tally::dash::MetricInfo>> cb) override;
  void fetchTags(const std::string& metric, QObject* context,
                 Callback<tally::dash::TagValues> cb) override;
  int64_t step(const tally::dash::TimeWindow& window, int pixelWidth, int64_t now,
               tally::dash::ChartType chart) const override;
  tally::Result<std::string> queryText(const tally::dash::PanelSpec& spec,
                                       int64_t step) const override;
  void runPanel(const PanelQuery& query, QObject* context, Callback<PanelAnswer> cb) override;
  tally::Status supportsFunction(
      tally::Fn fn, const std::string& metric, std::optional<tally::Kind> kind,
      const std::vector<tally::dash::MetricInfo>& metrics) const override;
  bool supportsChart(tally::dash::ChartType chart, std::optional<tally::Kind> kind) const override;

 private:
  PromClient* m_client;
};

// The client of the source a panel names: "" is the collector (through `collector`), any other
// name the dashboard's source of that name in `sources`. nullptr when there is none.
DataSourceClient* dataSourceFor(const std::string& name, CollectorClient* collector,
                                const DataSources* sources);
