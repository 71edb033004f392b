// The dashboard document: panels, their queries and layout, and its JSON form (docs/DASHBOARD.md).
//
// A Dashboard is a plain value. parseDashboard() validates everything a file may get wrong and
// names the offending field ("panels[2].chart: unknown chart type 'pie'"); a file written by a
// newer Tally (version > kDashboardVersion) is refused rather than half-read.
// Panels read the Tally collector, or a named Prometheus-compatible data source (VictoriaMetrics,
// Prometheus, Mimir, Thanos) that the dashboard defines (version 2 of the file).
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tally/common/alert_rule.h"
#include "tally/common/label_matcher.h"
#include "tally/common/query_fn.h"
#include "tally/common/series_key.h"
#include "tally/common/status.h"

namespace tally::dash {

// Version 2 added data sources; a dashboard without any is still written as version 1, so older
// Tally builds keep opening it (they would read a panel's "source" as the collector's metric).
// Version 3 added variables (a file with none is written as before): an older build would query
// "$region" literally. Version 4 added stat, gauge and table panels, thresholds, alerts and the
// legend table (again only where a panel uses one of them).
inline constexpr int kDashboardVersion = 4;
inline constexpr std::string_view kDashboardFormat = "tally-dashboard";
inline constexpr int kGridColumns = 12;

// Stat, Gauge and Table show each series reduced to numbers (PanelSpec::reduce; the table shows
// every reduction) instead of over time.
// Row is not a chart: a full-width header (one grid row) that groups the panels below it, up to
// the next row, and can collapse them (layoutRows).
enum class ChartType { Line, StackedArea, Bars, Histogram, Heatmap, Stat, Gauge, Table, Row };
// "line", "stacked", "bars", "histogram", "heatmap", "stat", "gauge", "table", "row"
const char* chartTypeName(ChartType type);
std::optional<ChartType> parseChartType(std::string_view name);
bool chartNeedsDistribution(ChartType type);  // histogram and heatmap
bool chartIsReduced(ChartType type);          // stat, gauge and table
// Added in version 4 of the file.
bool chartIsVersion4(ChartType type);

enum class FilterOp { Eq, NotEq, Regex, NotRegex };  // NotRegex (!~): Prometheus sources only
const char* filterOpName(FilterOp op);               // "=", "!=", "=~", "!~"
std::optional<FilterOp> parseFilterOp(std::string_view op);

struct TagFilter {
  std::string key;
  FilterOp op = FilterOp::Eq;
  std::string value;
  std::string toString() const;  // "endpoint!=/login", the API's `filter` parameter
  // The collector's own matcher (common/label_matcher.h): =~ is an RE2 regex matching the whole
  // value, compiled once here. A bad regex is an error.
  Result<LabelMatcher> compile() const;
  // Same meaning as the collector: a series without the key has the value "" for !=, =~ and !~
  // purposes and never matches =. Compiles on each call: hold a compile()d matcher where it runs
  // often (matchesTags()).
  bool matches(const Tags& tags) const;
  bool operator==(const TagFilter&) const = default;
};

// A compiled filter against a series' tags (the rules of TagFilter::matches()).
bool matchesTags(const LabelMatcher& m, const Tags& tags);

struct GridRect {
  int x = 0;  // column, 0..kGridColumns-1
  int y = 0;  // row
  int w = 6;  // columns
  int h = 4;  // rows
  bool operator==(const GridRect&) const = default;
};

// One HTTP header a data source sends with every request.
struct Header {
  std::string name;   // Authorization, X-Scope-OrgID (a Mimir tenant), ...
  std::string value;  // as typed: may name environment variables, ${NAME} (expandHeaderValue)
  // The value is a credential: the file holds a reference ("keychain:vm/Authorization") and the
  // value lives in the user's secret store (app/src/secret_store.h), unless it only names
  // environment variables (storedAsSecret). Set by isSecretHeaderName() or by the user.
  bool secret = false;
  bool operator==(const Header&) const = default;
};

// A Prometheus-compatible query API that panels may read instead of the collector.
struct DataSource {
  std::string name;  // unique within the dashboard; panels name it in their `source`
  std::string url;   // API base: http://vm:8428, http://vmselect:8481/select/0/prometheus
  // Sent with every request. A value may name environment variables, ${NAME}, so that a shared
  // file need not hold the token itself. A secret one read from a file whose secret store does
  // not hold it has an empty value (and the request fails rather than go without it).
  std::vector<Header> headers;
  int64_t minStepS = 10;  // finest query step; at least the scrape interval of what it holds
  bool operator==(const DataSource&) const = default;
};

// Secret headers (docs/SECURITY.md, "Secrets of data sources"). A header is secret when the user
// marks it so, or when its name (any case) is Authorization, Proxy-Authorization or Cookie, or
// contains auth, token, key, secret, password, passwd, session or credential (X-API-Key,
// X-Auth-Token, X-Grafana-Token). A secret header's value is kept out of the file unless it
// references the environment (${NAME}): then the file holds the reference, not the secret.
bool isSecretHeaderName(std::string_view name);
bool referencesEnvironment(std::string_view value);  // a ${NAME} that expandHeaderValue() reads
// (secret || isSecretHeaderName(name)) && !referencesEnvironment(value): the name rule holds
// whatever the flag says, so no Authorization value is ever written to a file.
bool storedAsSecret(const Header& header);
inline constexpr std::string_view kSecretRefPrefix = "keychain:";
// What the file says instead of the value: "keychain:<source>/<header>".
std::string secretReference(const DataSource& source, const Header& header);
// Where the secret store keeps it: "<scheme>://<host>:<port> <source>/<header>". The URL's origin
// is part of the key, so a file that reuses the names but points elsewhere finds nothing.
std::string secretStoreKey(const DataSource& source, const Header& header);

// The host a URL sends to, "host:port" in lower case with the scheme's default port filled in
// ("vm.example:443", "[::1]:8428"); empty for a URL that is not http(s)://host.
std::string urlHostPort(std::string_view url);
// "https://vm.example:443": scheme, host and port; empty as above.
std::string urlOrigin(std::string_view url);
Status validateDataSource(const DataSource& source, const std::string& where = "source");
// A header value with each ${NAME} replaced by `lookup(NAME)`; a name lookup does not know is an
// error that names it. "$$" is a literal "$". With `allowed`, a NAME that matches none of its
// patterns is an error before anything is looked up (envNameAllowed).
Result<std::string> expandHeaderValue(
    std::string_view value,
    const std::function<std::optional<std::string>(const std::string&)>& lookup,
    const std::vector<std::string>* allowed = nullptr);

// Which environment variables a dashboard file's ${NAME} may read (docs/SECURITY.md): the user's
// list, never the file's, so a dashboard from elsewhere cannot send AWS_SECRET_ACCESS_KEY to its
// own host. Patterns are names, or prefixes ending in '*'. `setting` is the user's
// TALLY_DASHBOARD_ENV_ALLOW ("TALLY_*,GRAFANA_TOKEN", comma-separated); empty = "TALLY_*".
std::vector<std::string> envAllowPatterns(std::string_view setting);
// A source that sends headers (credentials) to a host beyond loopback must use https: a token
// over plain http crosses the network readable (docs/SECURITY.md). OK for no headers, https, or
// http to localhost / 127.x / [::1].
Status checkCredentialsTransport(const DataSource& source);
bool envNameAllowed(std::string_view name, const std::vector<std::string>& patterns);

// A value from which on a panel shows in a colour: a line across time charts, the colour of a
// stat or gauge. Kept sorted by value; below the first, a panel's value is in its base colour.
struct Threshold {
  double value = 0;
  std::string color;  // "#rrggbb"
  bool operator==(const Threshold&) const = default;
};
inline constexpr size_t kMaxThresholds = 10;
// The editor's text form of thresholds: "80 #f9ab00, 95 red" (a value and a colour, #rrggbb or
// one of red, orange, yellow, green, blue, purple, grey), sorted on parsing; "" is none.
Result<std::vector<Threshold>> parseThresholds(std::string_view text);
std::string formatThresholds(const std::vector<Threshold>& thresholds);

// The editor's text form of filters: "status=~5.., endpoint!=/login" (comma-separated key, op,
// value; a value cannot hold a comma here).
Result<std::vector<TagFilter>> parseFilterList(std::string_view text);
std::string formatFilterList(const std::vector<TagFilter>& filters);

// How a time chart lists its series: the plain legend above the plot, or a table below it with
// last / min / max / avg per series (sortable, searchable, the first `legendRows` shown).
enum class LegendMode { List, Table };

// Another query of a panel (B, C, ...) on the panel's source; the panel's own settings are query
// A. A panel with several queries, an expression between them or an offset is evaluated as one
// PromQL expression by its source: the collector's Prometheus API or a Prometheus-compatible
// server (core/promql.h, buildPanelPromQL).
struct QuerySpec {
  std::string ref;     // "B" .. "Z", unique within the panel
  std::string promql;  // a raw expression used instead of metric, filters, group by and fn
  std::string metric;
  std::vector<TagFilter> filters;
  std::vector<std::string> groupBy;
  Fn fn = Fn::kSum;
  int64_t offsetS = 0;  // looks this far back: "1w" is the same time last week
  bool operator==(const QuerySpec&) const = default;
};
inline constexpr size_t kMaxPanelQueries = 10;           // B .. K beside A
inline constexpr int64_t kMaxOffsetS = 2 * 365 * 86400;  // 2y, the longest default retention
// `expression` with each query ref (a capital letter standing alone, outside string literals)
// replaced by "(" + exprs[ref] + ")". A capital letter that names no query is an error, and so is
// an expression that names none.
Result<std::string> substituteQueryRefs(std::string_view expression,
                                        const std::map<std::string, std::string>& exprs);

struct PanelSpec {
  std::string title;
  std::string source;  // "" = the Tally collector, else a DataSource's name
  std::string
      promql;  // Prometheus sources only: a raw expression used instead of metric/filters/fn
  std::string metric;
  std::vector<TagFilter> filters;
  std::vector<std::string> groupBy;
  Fn fn = Fn::kSum;  // tally/common/query_fn.h; the file holds its fn_name()
  ChartType chart = ChartType::Line;
  std::string unit;
  bool logY = false;
  // Stat and gauge: how each series becomes one number (over the final buckets of the range).
  Reduce reduce = Reduce::kLast;
  // A gauge's scale; without, 0 and the largest of the value and the last threshold.
  std::optional<double> minValue;
  std::optional<double> maxValue;
  std::vector<Threshold> thresholds;  // sorted by value
  // Alerts on this panel's series (tally/common/alert_rule.h), each series on its own.
  std::optional<AlertRule> alert;
  LegendMode legend = LegendMode::List;
  int legendRows = 10;             // the legend table's rows before "N more"
  int64_t offsetS = 0;             // query A looks this far back
  std::vector<QuerySpec> queries;  // B, C, ...
  // "B / A * 100": what the panel draws, the queries named by their refs; "" = every query's
  // series (each tagged query=A, query=B, ...).
  std::string expression;
  bool collapsed = false;  // a row: its panels are hidden and those below move up
  GridRect grid;
  bool operator==(const PanelSpec&) const = default;
  // The title, or when untitled "fn(metric{k=v,...}) by k" (the filters too: two panels on one
  // metric with different filters must not read alike).
  std::string displayTitle() const;
  bool hasQuery() const { return !metric.empty() || !promql.empty(); }
  bool onCollector() const { return source.empty(); }
  // Evaluated as PromQL (several queries, an expression, an offset or a raw expression), not by
  // the collector's /api/query.
  bool needsPromQL() const {
    return !promql.empty() || offsetS != 0 || !queries.empty() || !expression.empty();
  }
  // Query `ref` as a panel of its own (A is this panel without its other queries).
  PanelSpec queryAsPanel(const QuerySpec& q) const;
};

// Either a relative range ending now ("1h") or a fixed [from, to) in unix seconds.
struct TimeRangeSpec {
  std::string relative = "1h";
  std::optional<int64_t> from;
  std::optional<int64_t> to;
  bool isCustom() const { return from.has_value() && to.has_value(); }
  bool operator==(const TimeRangeSpec&) const = default;
};

// A dashboard variable: the values of one tag of one metric on the collector, offered as a
// drop-down; panels refer to it as $name or ${name} in filter values, PromQL and titles
// (core/variables.h says how each is replaced).
struct Variable {
  std::string name;        // [A-Za-z_][A-Za-z0-9_]*
  std::string source;      // "" = the Tally collector, else a DataSource's name
  std::string metric;      // whose tag (label) values are offered
  std::string tag;         // which tag
  bool multi = false;      // several values may be chosen
  bool includeAll = true;  // "All" is offered
  // The values chosen; empty = All (or, without includeAll, nothing chosen yet: the same).
  std::vector<std::string> current;
  bool operator==(const Variable&) const = default;
};

struct Dashboard {
  std::string title = "Untitled";
  TimeRangeSpec range;
  bool live = true;
  std::vector<DataSource> sources;
  std::vector<Variable> variables;
  std::vector<PanelSpec> panels;
  bool operator==(const Dashboard&) const = default;
};

// Checks a panel by the rules of its kind of source (metric names, filter operators, charts); that
// a named source exists is validateDashboard()'s job.
Status validatePanel(const PanelSpec& panel, const std::string& where = "panel");
// A Prometheus metric or label name as Tally takes it: not empty, at most 1,024 bytes, no
// control characters (`what` names it in the message).
Status validatePromName(std::string_view name, const char* what);
Status validateDashboard(const Dashboard& dashboard);
// "#1a73e8": a colour a threshold may have.
bool isHexColor(std::string_view text);
// The colour for `value` under `thresholds` (sorted): the last threshold at or below it, or
// `base` below them all (or for NaN).
std::string thresholdColor(const std::vector<Threshold>& thresholds, double value,
                           const std::string& base);
const DataSource* findSource(const Dashboard& dashboard, std::string_view name);
// The version a file needs: 4 when a panel uses a version-4 field, 3 with variables, 2 with data
// sources, else 1.
int dashboardFileVersion(const Dashboard& dashboard);

Result<Dashboard> parseDashboard(std::string_view json);
std::string serializeDashboard(const Dashboard& dashboard);  // pretty-printed, ends with '\n'

// Where each panel shows with its rows' collapsed state: a panel belongs to the nearest row
// above it (row.y < panel.y); a collapsed row hides its panels, and everything below the next
// row moves up by the room they took. Rows and panels above every row always show.
struct RowLayout {
  std::vector<bool> hidden;   // per panel
  std::vector<int> displayY;  // per panel: its row on screen
  int rows = 0;               // grid rows in use on screen
};
RowLayout layoutRows(const std::vector<PanelSpec>& panels);

// First free place for a new panel of width w and height h below or beside the others.
GridRect placeNewPanel(const std::vector<PanelSpec>& panels, int w = 6, int h = 4);

}  // namespace tally::dash
