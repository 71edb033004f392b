#include "query/prom_api.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "query/promql.h"

#ifndef TALLY_VERSION
#define TALLY_VERSION "unknown"
#endif

namespace tally::collector {
namespace {

using json = nlohmann::ordered_json;
using promql::Matcher;
using promql::Node;
using Labels = std::map<std::string, std::string>;

constexpr int64_t kMaxPoints = 11000;  // Prometheus's limit of points per series
constexpr int64_t kLookbackS = 300;    // Prometheus's default lookback delta for gauges
constexpr int64_t kInstantQuantileWindowS =
    60;  // quantiles of an instant query cover the last minute
constexpr const char* kDefaultQuantiles[] = {"0.5", "0.9", "0.99"};

// ---------------------------------------------------------------------------------------------
// Errors in Prometheus's shape: {"status":"error","errorType":"bad_data","error":"..."}

struct PromError {
  int http = 400;
  std::string type = "bad_data";
  std::string message;
};
PromError bad_data(std::string m) {
  return {400, "bad_data", std::move(m)};
}
PromError unsupported(std::string m) {
  return {422, "execution", std::move(m)};
}
PromError from_status(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return bad_data(s.message());
    case StatusCode::kUnavailable:
      return {503, "unavailable", s.message()};
    default:
      return {500, "internal", s.message()};
  }
}
using MaybeError = std::optional<PromError>;

// ---------------------------------------------------------------------------------------------
// Numbers and times as Prometheus writes and reads them

// Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest fixed notation that reads back exactly.
std::string prom_float(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[512];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, p);
}

json prom_time(int64_t ms) {
  if (ms % 1000 == 0) return ms / 1000;
  return static_cast<double>(ms) / 1000.0;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.250+02:00" -> unix ms.
std::optional<int64_t> parse_rfc3339_ms(std::string_view s) {
  auto num = [&](size_t pos, size_t n, int* out) {
    if (pos + n > s.size()) return false;
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + n, *out);
    return ec == std::errc() && p == s.data() + pos + n;
  };
  int y, mo, d, h, mi, se;
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  if (!num(0, 4, &y) || !num(5, 2, &mo) || !num(8, 2, &d) || !num(11, 2, &h) || !num(14, 2, &mi) ||
      !num(17, 2, &se))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t i = 19;
  int64_t frac_ms = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int64_t scale = 100;
    size_t b = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      frac_ms += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == b) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh, om;
    if (!num(i + 1, 2, &oh) || !num(i + 4, 2, &om)) return std::nullopt;
    offset_s = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 86400 + h * 3600 + mi * 60 + se) - offset_s) * 1000 + frac_ms;
}

// Unix seconds (with a fraction) or RFC 3339, as Prometheus's parseTime.
std::optional<int64_t> parse_time_ms(const std::string& s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (!s.empty() && ec == std::errc() && p == s.data() + s.size()) {
    if (!std::isfinite(v) || std::abs(v) > 9.2e12) return std::nullopt;
    return std::llround(v * 1000);
  }
  return parse_rfc3339_ms(s);
}

// Seconds (with a fraction) or a duration ("15s", "1m"), as Prometheus's parseDuration.
std::optional<int64_t> parse_step_ms(const std::string& s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (!s.empty() && ec == std::errc() && p == s.data() + s.size()) {
    if (!std::isfinite(v) || std::abs(v) > 9.2e12) return std::nullopt;
    return std::llround(v * 1000);
  }
  auto d = promql::parse_prom_duration(s);
  if (!d) return std::nullopt;
  return *d;
}

std::optional<PromError> time_param(const httplib::Request& req, const char* name,
                                    std::optional<int64_t> dflt, int64_t* out) {
  if (!req.has_param(name) && dflt) {
    *out = *dflt;
    return std::nullopt;
  }
  std::string v = req.get_param_value(name);
  auto t = parse_time_ms(v);
  if (!t)
    return bad_data("invalid parameter \"" + std::string(name) + "\": cannot parse \"" + v +
                    "\" to a valid timestamp");
  *out = *t;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Names: which Tally metric a Prometheus name means

bool label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool valid_label_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), label_char);
}

// What one Prometheus metric name shows of a Tally metric: its values (counter total, gauge,
// distribution quantiles), or a distribution's cumulative observation count or sum.
enum class Variant { kValue, kCount, kSum };

struct Exposed {
  std::string name;    // Prometheus name
  std::string metric;  // Tally metric
  Kind kind = Kind::kCounter;
  Variant variant = Variant::kValue;
  bool summary() const { return kind == Kind::kDistribution && variant == Variant::kValue; }
};

// Prometheus name -> Exposed for every metric in the catalog. When several Tally metrics map to
// one name, the first claim wins: names that need no mapping, then mapped names, then the
// _count/_sum of distributions, each in Tally's name order (docs/PROMETHEUS.md, "Names").
class NameTable {
 public:
  explicit NameTable(const SeriesCatalog& catalog) {
    const auto metrics = catalog.metrics();
    for (int pass = 0; pass < 3; ++pass) {
      for (const auto& m : metrics) {
        const std::string base = prom_metric_name(m.name);
        if (pass == 0 && base == m.name) add(base, m, Variant::kValue);
        if (pass == 1 && base != m.name) add(base, m, Variant::kValue);
        if (pass == 2 && m.kind == Kind::kDistribution) {
          add(base + "_count", m, Variant::kCount);
          add(base + "_sum", m, Variant::kSum);
        }
      }
    }
    for (const auto& m : metrics) kinds_.emplace(m.name, m.kind);
  }

  // The names a selector's metric name and __name__ matchers choose. A name that is no
  // Prometheus name but a Tally metric's own ({"api.errors"}, {__name__="api.errors"}) selects
  // that metric, which is how a metric that lost a name collision stays reachable.
  std::vector<Exposed> select(const Node& sel) const {
    auto name_ok = [&](const std::string& n) {
      for (const auto& m : sel.matchers)
        if (m.name == "__name__" && !m.matches(n)) return false;
      return true;
    };
    std::vector<Exposed> out;
    if (!sel.metric.empty()) {
      if (auto it = by_name_.find(sel.metric); it != by_name_.end()) {
        if (name_ok(it->first)) out.push_back(it->second);
      } else if (auto k = kinds_.find(sel.metric); k != kinds_.end()) {
        Exposed e{prom_metric_name(sel.metric), sel.metric, k->second, Variant::kValue};
        if (name_ok(e.name)) out.push_back(std::move(e));
      }
      return out;
    }
    for (const auto& [name, e] : by_name_)
      if (name_ok(name)) out.push_back(e);
    return out;
  }

  const std::map<std::string, Exposed>& all() const { return by_name_; }

 private:
  void add(const std::string& name, const MetricSummary& m, Variant v) {
    by_name_.emplace(name, Exposed{name, m.name, m.kind, v});
  }
  std::map<std::string, Exposed> by_name_;
  std::map<std::string, Kind> kinds_;
};

// The series of one exposed name that a selector's label matchers choose.
struct Leaf {
  Exposed exposed;
  std::vector<const SeriesInfo*> series;
  std::vector<Labels> labels;          // per series, with __name__, without quantile
  std::vector<std::string> quantiles;  // summaries: the quantile label values asked for
};

Labels labels_of(const SeriesInfo& s, const std::string& name) {
  Labels l;
  l["__name__"] = name;
  for (const auto& t : s.tags()) {
    std::string k = prom_label_name(t.key);
    if (k.starts_with("__")) continue;  // reserved for Prometheus's own labels
    l.emplace(std::move(k),
              std::string(t.value));  // mapped-key collisions: the first tag in key order wins
  }
  return l;
}

// A matcher's label: the Prometheus label, else a Tally tag key given quoted
// ({"http.method"="GET"}).
std::string label_value(const Labels& l, const SeriesInfo& s, const std::string& name) {
  if (auto it = l.find(name); it != l.end()) return it->second;
  for (const auto& t : s.tags())
    if (t.key == name) return std::string(t.value);
  return {};
}

MaybeError select_leaf(const SeriesCatalog& catalog, const Node& sel, const Exposed& e,
                       bool quantile_label, Leaf* out) {
  out->exposed = e;
  const bool summary = e.summary() && quantile_label;
  if (summary) {
    std::vector<std::string> candidates;
    for (const auto& m : sel.matchers)
      if (m.name == "quantile" && m.op == Matcher::Op::kEq) {
        candidates = {m.value};
        break;
      }
    if (candidates.empty())
      candidates.assign(std::begin(kDefaultQuantiles), std::end(kDefaultQuantiles));
    for (const auto& c : candidates) {
      bool ok = true;
      for (const auto& m : sel.matchers)
        if (m.name == "quantile" && !m.matches(c)) ok = false;
      if (!ok) continue;
      double q = -1;
      auto [p, ec] = std::from_chars(c.data(), c.data() + c.size(), q);
      if (ec != std::errc() || p != c.data() + c.size() || !(q >= 0 && q <= 1))
        return bad_data("quantile=\"" + c + "\" of distribution '" + e.name +
                        "' is not a number between 0 and 1");
      out->quantiles.push_back(c);
    }
    if (out->quantiles.empty()) return std::nullopt;
  }
  for (const SeriesInfo* s : catalog.series_of(e.metric)) {
    Labels l = labels_of(*s, e.name);
    if (e.summary()) l.erase("quantile");  // the summary's own label shadows a tag of that name
    bool ok = true;
    for (const auto& m : sel.matchers) {
      if (m.name == "__name__" || (summary && m.name == "quantile")) continue;
      if (!m.matches(label_value(l, *s, m.name))) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    out->series.push_back(s);
    out->labels.push_back(std::move(l));
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Evaluation over the query's timestamps

struct Series {
  Labels labels;
  std::vector<std::optional<double>> v;  // one per timestamp; nullopt = no value
};

struct Value {
  bool scalar = false;
  std::vector<double> s;  // scalar: one per timestamp
  std::vector<Series> vec;
};

const Node& unparen(const Node& n) {
  const Node* p = &n;
  while (p->type == Node::Type::kParen) p = p->args[0].get();
  return *p;
}

double arith(const std::string& op, double a, double b) {
  if (op == "+") return a + b;
  if (op == "-") return a - b;
  if (op == "*") return a * b;
  if (op == "/") return a / b;
  if (op == "%") return std::fmod(a, b);
  if (op == "^") return std::pow(a, b);
  return std::nan("");
}

Labels group_key(const Labels& l, const Node& agg) {
  Labels key;
  if (agg.without) {
    for (const auto& [k, v] : l) {
      if (k == "__name__" ||
          std::find(agg.grouping.begin(), agg.grouping.end(), k) != agg.grouping.end())
        continue;
      key.emplace(k, v);
    }
  } else {
    for (const auto& g : agg.grouping)
      if (auto it = l.find(g); it != l.end()) key.emplace(g, it->second);
  }
  return key;
}

class Evaluator {
 public:
  enum class Mode { kInstant, kIncrease, kRate };

  // times_ms: the evaluation timestamps, ascending; step_ms: the range query's step, 0 for an
  // instant query.
  Evaluator(const QueryEngine& engine, const SeriesCatalog& catalog, const Clock& clock,
            std::vector<int64_t> times_ms, int64_t step_ms)
      : engine_(engine),
        catalog_(catalog),
        clock_(clock),
        names_(catalog),
        times_(std::move(times_ms)) {
    // A bucket [b, b + r) counts at time t when it has ended by then: b + r <= ceil(t).
    for (int64_t t : times_) cutoffs_.push_back(t >= 0 ? (t + 999) / 1000 : t / 1000);
    step_s_ = step_ms > 0 ? std::max<int64_t>(1, (step_ms + 999) / 1000) : 0;
  }

  MaybeError eval(const Node& n, Value* out) {
    const size_t nt = times_.size();
    switch (n.type) {
      case Node::Type::kNumber:
        out->scalar = true;
        out->s.assign(nt, n.number);
        return std::nullopt;
      case Node::Type::kParen:
        return eval(n.arg(0), out);
      case Node::Type::kUnary: {
        if (auto e = eval(n.arg(0), out)) return e;
        for (double& v : out->s) v = -v;
        for (auto& s : out->vec) {
          s.labels.erase("__name__");
          for (auto& v : s.v)
            if (v) *v = -*v;
        }
        return std::nullopt;
      }
      case Node::Type::kBinary:
        return binary(n, out);
      case Node::Type::kSelector:
        return selector(n, Mode::kInstant, 0, out);
      case Node::Type::kCall: {
        const Node& sel = unparen(n.arg(0));
        return selector(sel, n.text == "rate" ? Mode::kRate : Mode::kIncrease, *sel.range_ms / 1000,
                        out);
      }
      case Node::Type::kAggregate:
        if (n.text == "tally_quantile") return tally_quantile(n, out);
        return aggregate(n, out);
      default:
        return unsupported("expression not supported");
    }
  }

 private:
  MaybeError binary(const Node& n, Value* out) {
    Value l, r;
    if (auto e = eval(n.arg(0), &l)) return e;
    if (auto e = eval(n.arg(1), &r)) return e;
    if (l.scalar && r.scalar) {
      out->scalar = true;
      out->s.resize(times_.size());
      for (size_t i = 0; i < times_.size(); ++i) out->s[i] = arith(n.text, l.s[i], r.s[i]);
      return std::nullopt;
    }
    // One side is a vector, the other a number (check() refuses vector-vector).
    const bool vec_left = !l.scalar;
    Value& v = vec_left ? l : r;
    const Value& s = vec_left ? r : l;
    for (auto& series : v.vec) {
      series.labels.erase("__name__");
      for (size_t i = 0; i < series.v.size(); ++i)
        if (series.v[i])
          series.v[i] =
              vec_left ? arith(n.text, *series.v[i], s.s[i]) : arith(n.text, s.s[i], *series.v[i]);
    }
    *out = std::move(v);
    return std::nullopt;
  }

  MaybeError aggregate(const Node& n, Value* out) {
    Value child;
    if (auto e = eval(*n.args.back(), &child)) return e;
    std::map<Labels, std::vector<const Series*>> groups;
    for (const auto& s : child.vec) groups[group_key(s.labels, n)].push_back(&s);
    const std::string& op = n.text;
    for (auto& [key, members] : groups) {
      Series g{key, std::vector<std::optional<double>>(times_.size())};
      for (size_t i = 0; i < times_.size(); ++i) {
        double acc = 0;
        size_t count = 0;
        for (const Series* m : members) {
          if (!m->v[i]) continue;
          const double x = *m->v[i];
          if (count == 0)
            acc = op == "count" ? 0 : x;
          else if (op == "sum" || op == "avg")
            acc += x;
          else if (op == "min")
            acc = std::isnan(acc) || x < acc ? x : acc;
          else if (op == "max")
            acc = std::isnan(acc) || x > acc ? x : acc;
          ++count;
        }
        if (count == 0) continue;
        if (op == "count")
          g.v[i] = static_cast<double>(count);
        else if (op == "avg")
          g.v[i] = acc / static_cast<double>(count);
        else
          g.v[i] = acc;
      }
      out->vec.push_back(std::move(g));
    }
    return std::nullopt;
  }

  // rate/increase need something cumulative: a counter or a distribution's _count or _sum.
  static MaybeError check_mode(const Exposed& e, Mode mode) {
    if (mode == Mode::kInstant) return std::nullopt;
    const std::string fn = mode == Mode::kRate ? "rate" : "increase";
    if (e.kind == Kind::kGauge)
      return unsupported(fn + "() of gauge '" + e.name +
                         "' is not supported: a Tally gauge is not cumulative; use " + fn +
                         "() on a counter or on a distribution's _count or _sum");
    if (e.summary())
      return unsupported(fn + "() of the quantiles of distribution '" + e.name +
                         "' is not supported; use " + fn + "(" + e.name + "_count[..]) or " + fn +
                         "(" + e.name + "_sum[..])");
    return std::nullopt;
  }

  MaybeError selector(const Node& sel, Mode mode, int64_t window_s, Value* out) {
    for (const Exposed& e : names_.select(sel)) {
      if (auto err = check_mode(e, mode)) return err;
      Leaf leaf;
      if (auto err = select_leaf(catalog_, sel, e, true, &leaf)) return err;
      if (leaf.series.empty()) continue;
      std::vector<Series> part;
      MaybeError err;
      if (e.summary())
        err = summary(leaf, &part);
      else if (e.kind == Kind::kGauge)
        err = gauge(leaf, &part);
      else
        err = cumulative(leaf, mode, window_s, &part);
      if (err) return err;
      for (auto& s : part) {
        if (mode != Mode::kInstant) s.labels.erase("__name__");
        out->vec.push_back(std::move(s));
      }
    }
    return std::nullopt;
  }

  // The coarsest resolution whose step divides every cutoff and the window (so bucket edges fall
  // on them) and that still holds `earliest`; else the finest that holds it (edges then round
  // down to its buckets); else the coarsest.
  size_t choose_resolution(int64_t window_s, int64_t earliest) const {
    int64_t g = window_s;
    for (int64_t c : cutoffs_) g = std::gcd(g, c);
    const auto& res = engine_.resolutions();
    const int64_t now = clock_.now_s();
    auto holds = [&](size_t r) { return now - res[r].retention_s <= earliest; };
    std::optional<size_t> best;
    for (size_t r = 0; r < res.size(); ++r)
      if (g % res[r].step_s == 0 && holds(r)) best = r;
    if (best) return *best;
    for (size_t r = 0; r < res.size(); ++r)
      if (holds(r)) return r;
    return res.size() - 1;
  }

  MaybeError read(const Leaf& leaf, size_t res, int64_t from, int64_t to,
                  std::vector<std::vector<StoredBucket>>* out) const {
    if (from >= to) {
      out->assign(leaf.series.size(), {});
      return std::nullopt;
    }
    if (auto s = engine_.read_buckets(leaf.series, res, from, to, out); !s) return from_status(s);
    return std::nullopt;
  }

  static double amount(const BucketAgg& a, const Exposed& e) {
    if (e.kind == Kind::kDistribution)
      return e.variant == Variant::kCount ? static_cast<double>(a.count) : a.sum;
    return a.sum;
  }

  // The total of every bucket before `a` (a multiple of resolution r's step), read coarsest
  // first so that the long past costs one bucket per coarse step:
  //   [0, a) = [0, floor(a, s_n)) at s_n + [floor(a, s_n), floor(a, s_n-1)) at s_n-1 + ... + [..,
  //   a) at r.
  // Each resolution divides the next (parse_retention), so the pieces tile [0, a) exactly.
  MaybeError totals_before(const Leaf& leaf, size_t r, int64_t a, std::vector<double>* sums,
                           std::vector<char>* seen) const {
    sums->assign(leaf.series.size(), 0);
    seen->assign(leaf.series.size(), 0);
    const auto& res = engine_.resolutions();
    int64_t lo = 0;
    for (size_t k = res.size(); k-- > r;) {
      const int64_t hi = k == r ? a : bucket_start(a, res[k].step_s);
      if (hi <= lo) continue;
      std::vector<std::vector<StoredBucket>> buckets;
      if (auto err = read(leaf, k, lo, hi, &buckets)) return err;
      for (size_t i = 0; i < buckets.size(); ++i) {
        for (const auto& b : buckets[i]) (*sums)[i] += amount(b.agg, leaf.exposed);
        if (!buckets[i].empty()) (*seen)[i] = 1;
      }
      lo = hi;
    }
    return std::nullopt;
  }

  // Counters and a distribution's _count/_sum: cumulative since the series' first bucket.
  MaybeError cumulative(const Leaf& leaf, Mode mode, int64_t w, std::vector<Series>* out) const {
    if (mode == Mode::kInstant) w = 0;
    const size_t r = choose_resolution(w, cutoffs_.front() - w);
    const int64_t rs = engine_.resolutions()[r].step_s;
    const int64_t a = bucket_start(cutoffs_.front() - w, rs);
    std::vector<double> base;
    std::vector<char> seen;
    if (auto err = totals_before(leaf, r, a, &base, &seen)) return err;
    std::vector<std::vector<StoredBucket>> buckets;
    if (auto err = read(leaf, r, a, cutoffs_.back(), &buckets)) return err;
    for (size_t i = 0; i < leaf.series.size(); ++i) {
      std::vector<int64_t> starts;
      std::vector<double> prefix{0};
      for (const auto& b : buckets[i]) {
        starts.push_back(b.time);
        prefix.push_back(prefix.back() + amount(b.agg, leaf.exposed));
      }
      // (total of the buckets that ended by x, whether the series had any by then)
      auto before = [&](int64_t x) {
        size_t n = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), x - rs) -
                                       starts.begin());
        return std::pair<double, bool>{base[i] + prefix[n], seen[i] || n > 0};
      };
      Series s{leaf.labels[i], std::vector<std::optional<double>>(times_.size())};
      for (size_t t = 0; t < cutoffs_.size(); ++t) {
        auto [total, exists] = before(cutoffs_[t]);
        if (!exists) continue;
        if (mode == Mode::kInstant) {
          s.v[t] = total;
          continue;
        }
        const double increase = total - before(cutoffs_[t] - w).first;
        s.v[t] = mode == Mode::kRate ? increase / static_cast<double>(w) : increase;
      }
      out->push_back(std::move(s));
    }
    return std::nullopt;
  }

  // Gauges: the last value of the latest bucket that ended within the lookback.
  MaybeError gauge(const Leaf& leaf, std::vector<Series>* out) const {
    const size_t r = choose_resolution(0, cutoffs_.front() - kLookbackS);
    const int64_t rs = engine_.resolutions()[r].step_s;
    const int64_t lookback = std::max(kLookbackS, rs);
    std::vector<std::vector<StoredBucket>> buckets;
    if (auto err =
            read(leaf, r, bucket_start(cutoffs_.front() - lookback, rs), cutoffs_.back(), &buckets))
      return err;
    for (size_t i = 0; i < leaf.series.size(); ++i) {
      const auto& bs = buckets[i];
      Series s{leaf.labels[i], std::vector<std::optional<double>>(times_.size())};
      for (size_t t = 0; t < cutoffs_.size(); ++t) {
        const int64_t c = cutoffs_[t];
        auto it = std::upper_bound(bs.begin(), bs.end(), c - rs,
                                   [](int64_t x, const StoredBucket& b) { return x < b.time; });
        while (it != bs.begin()) {
          --it;
          if (it->time < c - lookback) break;
          if (it->agg.count > 0) {
            s.v[t] = it->agg.last;
            break;
          }
        }
      }
      out->push_back(std::move(s));
    }
    return std::nullopt;
  }

  // Merges, per group and timestamp, the sketches of the buckets in the quantile window
  // [t - w, t): w is the range query's step (the points tile the range), 1 minute for an
  // instant query. (*sketches)[group][t] stays empty when nothing was observed.
  MaybeError window_sketches(const Leaf& leaf, const std::vector<size_t>& group_of, size_t groups,
                             std::vector<std::vector<Sketch>>* sketches) const {
    int64_t w = step_s_ > 0 ? step_s_ : kInstantQuantileWindowS;
    const size_t r = choose_resolution(w, cutoffs_.front() - w);
    const int64_t rs = engine_.resolutions()[r].step_s;
    w = std::max(w, rs);
    std::vector<std::vector<StoredBucket>> buckets;
    if (auto err = read(leaf, r, bucket_start(cutoffs_.front() - w, rs), cutoffs_.back(), &buckets))
      return err;
    sketches->assign(groups, std::vector<Sketch>(times_.size()));
    for (size_t i = 0; i < leaf.series.size(); ++i) {
      const auto& bs = buckets[i];
      auto& out = (*sketches)[group_of[i]];
      for (size_t t = 0; t < cutoffs_.size(); ++t) {
        const int64_t c = cutoffs_[t];
        auto lo = std::lower_bound(bs.begin(), bs.end(), c - w,
                                   [](const StoredBucket& b, int64_t x) { return b.time < x; });
        for (auto it = lo; it != bs.end() && it->time + rs <= c; ++it)
          if (it->agg.sketch) out[t].merge(*it->agg.sketch);
      }
    }
    return std::nullopt;
  }

  // A distribution as a summary: one series per quantile asked for.
  MaybeError summary(const Leaf& leaf, std::vector<Series>* out) const {
    std::vector<size_t> group_of(leaf.series.size());
    std::iota(group_of.begin(), group_of.end(), size_t{0});
    std::vector<std::vector<Sketch>> sketches;
    if (auto err = window_sketches(leaf, group_of, leaf.series.size(), &sketches)) return err;
    for (size_t i = 0; i < leaf.series.size(); ++i) {
      for (const auto& q : leaf.quantiles) {
        double phi = 0;
        std::from_chars(q.data(), q.data() + q.size(), phi);  // select_leaf checked it
        Series s{leaf.labels[i], std::vector<std::optional<double>>(times_.size())};
        s.labels["quantile"] = q;
        for (size_t t = 0; t < times_.size(); ++t)
          if (!sketches[i][t].empty()) s.v[t] = sketches[i][t].quantile(phi);
        out->push_back(std::move(s));
      }
    }
    return std::nullopt;
  }

  // tally_quantile by (labels) (φ, distribution): the φ-quantile of each group's merged sketch.
  MaybeError tally_quantile(const Node& n, Value* out) {
    const Node& phi_node = unparen(n.arg(0));
    const double phi = phi_node.number;
    const Node& sel = unparen(n.arg(1));
    for (const Exposed& e : names_.select(sel)) {
      if (!e.summary())
        return unsupported("tally_quantile needs a distribution; '" + e.name + "' is " +
                           (e.kind == Kind::kDistribution
                                ? "a distribution's " +
                                      std::string(e.variant == Variant::kCount ? "_count" : "_sum")
                                : std::string("a ") + kind_name(e.kind)));
      for (const auto& m : sel.matchers)
        if (m.name == "quantile")
          return bad_data(
              "tally_quantile's selector must not match on quantile; the quantile is its first "
              "argument");
      Leaf leaf;
      if (auto err = select_leaf(catalog_, sel, e, false, &leaf)) return err;
      if (leaf.series.empty()) continue;
      std::map<Labels, size_t> index;
      std::vector<size_t> group_of;
      for (const auto& l : leaf.labels)
        group_of.push_back(index.emplace(group_key(l, n), index.size()).first->second);
      std::vector<std::vector<Sketch>> sketches;
      if (auto err = window_sketches(leaf, group_of, index.size(), &sketches)) return err;
      for (const auto& [key, g] : index) {
        Series s{key, std::vector<std::optional<double>>(times_.size())};
        for (size_t t = 0; t < times_.size(); ++t)
          if (!sketches[g][t].empty()) s.v[t] = sketches[g][t].quantile(phi);
        out->vec.push_back(std::move(s));
      }
    }
    return std::nullopt;
  }

  const QueryEngine& engine_;
  const SeriesCatalog& catalog_;
  const Clock& clock_;
  NameTable names_;
  std::vector<int64_t> times_;    // ms
  std::vector<int64_t> cutoffs_;  // s
  int64_t step_s_ = 0;
};

// Every series (label set) a series selector matches; summaries give one per quantile.
MaybeError series_of(const SeriesCatalog& catalog, const NameTable& names, const Node& sel,
                     std::set<Labels>* out) {
  for (const Exposed& e : names.select(sel)) {
    Leaf leaf;
    if (auto err = select_leaf(catalog, sel, e, true, &leaf)) return err;
    for (auto& l : leaf.labels) {
      if (!e.summary()) {
        out->insert(l);
        continue;
      }
      for (const auto& q : leaf.quantiles) {
        Labels with = l;
        with["quantile"] = q;
        out->insert(std::move(with));
      }
    }
  }
  return std::nullopt;
}

json labels_json(const Labels& l) {
  json o = json::object();
  for (const auto& [k, v] : l) o[k] = v;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Handlers

class PromApi {
 public:
  PromApi(const QueryEngine& engine, const SeriesCatalog& catalog, const Clock& clock,
          SelfMetrics& metrics)
      : engine_(engine), catalog_(catalog), clock_(clock), metrics_(metrics) {}

  using Handler = MaybeError (PromApi::*)(const httplib::Request&, json* data);

  // Runs a handler, answers in Prometheus's envelope, counts it and logs rejections (at most one
  // line a second, with how many were not logged).
  void serve(Handler h, const httplib::Request& req, httplib::Response& res) {
    auto t0 = std::chrono::steady_clock::now();
    json data;
    MaybeError err;
    // A request's boundary: anything thrown becomes an "internal" answer, logged.
    try {
      err = (this->*h)(req, &data);
    } catch (const std::exception& e) {
      err = PromError{500, "internal", e.what()};
    }
    metrics_.queries.fetch_add(1, std::memory_order_relaxed);
    if (err) {
      res.status = err->http;
      res.set_content(
          json{{"status", "error"}, {"errorType", err->type}, {"error", err->message}}.dump(),
          "application/json");
      if (err->http == 400 || err->http == 422)
        metrics_.queries_rejected.fetch_add(1, std::memory_order_relaxed);
      log_rejection(req, *err);
    } else {
      res.status = 200;
      res.set_content(json{{"status", "success"}, {"data", std::move(data)}}.dump(),
                      "application/json");
    }
    metrics_.query_latency.record_us(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count()));
  }

  MaybeError query(const httplib::Request& req, json* data) {
    int64_t t = 0;
    if (auto e = time_param(req, "time", clock_.now_ms(), &t)) return e;
    return run(req.get_param_value("query"), {t}, 0, data);
  }

  MaybeError query_range(const httplib::Request& req, json* data) {
    int64_t start = 0, end = 0;
    if (auto e = time_param(req, "start", std::nullopt, &start)) return e;
    if (auto e = time_param(req, "end", std::nullopt, &end)) return e;
    if (end < start)
      return bad_data("invalid parameter \"end\": end timestamp must not be before start time");
    const std::string step_text = req.get_param_value("step");
    auto step = parse_step_ms(step_text);
    if (!step)
      return bad_data("invalid parameter \"step\": cannot parse \"" + step_text +
                      "\" to a valid duration");
    if (*step <= 0)
      return bad_data(
          "invalid parameter \"step\": zero or negative query resolution step widths are not "
          "accepted. Try a positive integer");
    if ((end - start) / *step > kMaxPoints)
      return bad_data(
          "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
          "resolution (?step=XX)");
    std::vector<int64_t> times;
    for (int64_t t = start; t <= end; t += *step) times.push_back(t);
    return run(req.get_param_value("query"), std::move(times), *step, data);
  }

  MaybeError series(const httplib::Request& req, json* data) {
    if (req.get_param_value_count("match[]") == 0) return bad_data("no match[] parameter provided");
    if (auto e = check_range(req)) return e;
    std::set<Labels> all;
    if (auto e = matched_series(req, &all)) return e;
    *data = json::array();
    for (const auto& l : all) data->push_back(labels_json(l));
    return std::nullopt;
  }

  MaybeError labels(const httplib::Request& req, json* data) {
    if (auto e = check_range(req)) return e;
    std::set<Labels> all;
    if (auto e = matched_series(req, &all)) return e;
    std::set<std::string> names;
    for (const auto& l : all)
      for (const auto& [k, v] : l) names.insert(k);
    *data = json(std::vector<std::string>(names.begin(), names.end()));
    return std::nullopt;
  }

  MaybeError label_values(const httplib::Request& req, json* data) {
    const std::string name = req.matches.size() > 1 ? std::string(req.matches[1]) : "";
    if (!valid_label_name(name)) return bad_data("invalid label name: \"" + name + "\"");
    if (auto e = check_range(req)) return e;
    std::set<Labels> all;
    if (auto e = matched_series(req, &all)) return e;
    std::set<std::string> values;
    for (const auto& l : all)
      if (auto it = l.find(name); it != l.end()) values.insert(it->second);
    *data = json(std::vector<std::string>(values.begin(), values.end()));
    return std::nullopt;
  }

  MaybeError metadata(const httplib::Request& req, json* data) {
    const std::string only = req.get_param_value("metric");
    int64_t limit = -1;
    if (req.has_param("limit")) {
      const std::string l = req.get_param_value("limit");
      auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), limit);
      if (ec != std::errc() || p != l.data() + l.size())
        return bad_data("invalid parameter \"limit\": \"" + l + "\" is not a number");
    }
    *data = json::object();
    NameTable names(catalog_);
    for (const auto& [name, e] : names.all()) {
      if (e.variant != Variant::kValue || (!only.empty() && only != name)) continue;
      if (limit >= 0 && static_cast<int64_t>(data->size()) >= limit) break;
      const char* type = e.kind == Kind::kCounter ? "counter"
                         : e.kind == Kind::kGauge ? "gauge"
                                                  : "summary";
      (*data)[name] =
          json::array({{{"type", type},
                        {"help", std::string("Tally ") + kind_name(e.kind) + " " + e.metric},
                        {"unit", ""}}});
    }
    return std::nullopt;
  }

  MaybeError buildinfo(const httplib::Request&, json* data) {
    *data = {{"version", TALLY_VERSION}, {"revision", ""},  {"branch", ""},
             {"buildUser", ""},          {"buildDate", ""}, {"goVersion", ""}};
    return std::nullopt;
  }

 private:
  MaybeError run(const std::string& query, std::vector<int64_t> times, int64_t step_ms,
                 json* data) {
    auto expr = promql::parse(query);
    if (!expr) return bad_data("invalid parameter \"query\": " + expr.status().message());
    promql::ValueType type = promql::ValueType::kScalar;
    if (auto p = promql::check(*expr->root, &type)) {
      if (p->kind == promql::Problem::Kind::kUnsupported) return unsupported(p->message);
      return bad_data("invalid parameter \"query\": " + p->message);
    }
    const bool range = step_ms > 0;
    if (type == promql::ValueType::kMatrix || type == promql::ValueType::kString) {
      if (range)
        return bad_data(std::string("invalid expression type \"") + promql::value_type_name(type) +
                        "\" for range query, must be Scalar or instant Vector");
      if (type == promql::ValueType::kString)
        return unsupported("a string as the query's result is not supported");
      return unsupported(
          "a range vector as the query's result (raw samples) is not supported; wrap it in rate() "
          "or increase()");
    }
    Evaluator ev(engine_, catalog_, clock_, times, step_ms);
    Value v;
    if (auto e = ev.eval(*expr->root, &v)) return e;

    if (v.scalar) {
      if (!range) {
        *data = {{"resultType", "scalar"},
                 {"result", json::array({prom_time(times[0]), prom_float(v.s[0])})}};
        return std::nullopt;
      }
      Series s{{}, {}};
      for (double x : v.s) s.v.emplace_back(x);
      v.vec = {std::move(s)};
    }
    std::sort(v.vec.begin(), v.vec.end(),
              [](const Series& a, const Series& b) { return a.labels < b.labels; });
    json result = json::array();
    for (const auto& s : v.vec) {
      if (!range) {
        if (s.v[0])
          result.push_back({{"metric", labels_json(s.labels)},
                            {"value", {prom_time(times[0]), prom_float(*s.v[0])}}});
        continue;
      }
      json values = json::array();
      for (size_t i = 0; i < s.v.size(); ++i)
        if (s.v[i]) values.push_back({prom_time(times[i]), prom_float(*s.v[i])});
      if (!values.empty())
        result.push_back({{"metric", labels_json(s.labels)}, {"values", std::move(values)}});
    }
    *data = {{"resultType", range ? "matrix" : "vector"}, {"result", std::move(result)}};
    return std::nullopt;
  }

  // start and end are checked but do not narrow the answer: the catalog lists every series it
  // holds (docs/PROMETHEUS.md).
  static MaybeError check_range(const httplib::Request& req) {
    int64_t t = 0;
    for (const char* p : {"start", "end"})
      if (req.has_param(p))
        if (auto e = time_param(req, p, std::nullopt, &t)) return e;
    return std::nullopt;
  }

  // The series every match[] selects (all series when there is none).
  MaybeError matched_series(const httplib::Request& req, std::set<Labels>* out) const {
    NameTable names(catalog_);
    const size_t n = req.get_param_value_count("match[]");
    if (n == 0) {
      Node all;
      all.type = Node::Type::kSelector;
      return series_of(catalog_, names, all, out);
    }
    for (size_t i = 0; i < n; ++i) {
      const std::string text = req.get_param_value("match[]", i);
      auto sel = promql::parse_selector(text);
      if (!sel) return bad_data("invalid parameter \"match[]\": " + sel.status().message());
      if (auto e = series_of(catalog_, names, *sel->root, out)) return e;
    }
    return std::nullopt;
  }

  void log_rejection(const httplib::Request& req, const PromError& err) {
    const int64_t now = clock_.now_ms();
    int64_t last = last_log_ms_.load(std::memory_order_relaxed);
    if (now - last < 1000 || !last_log_ms_.compare_exchange_strong(last, now)) {
      suppressed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    spdlog::info(
        "event=prom_query_rejected path={} status={} error_type={} error=\"{}\" suppressed={}",
        req.path, err.http, err.type, err.message, suppressed_.exchange(0));
  }

  const QueryEngine& engine_;
  const SeriesCatalog& catalog_;
  const Clock& clock_;
  SelfMetrics& metrics_;
  std::atomic<int64_t> last_log_ms_{0};
  std::atomic<uint64_t> suppressed_{0};
};

}  // namespace

std::string prom_metric_name(std::string_view tally_metric) {
  std::string out(tally_metric);
  for (char& c : out)
    if (!label_char(c) && c != ':') c = '_';
  return out;
}

std::string prom_label_name(std::string_view tally_key) {
  std::string out(tally_key);
  for (char& c : out)
    if (!label_char(c)) c = '_';
  return out;
}

void register_prom_routes(httplib::Server& server, const QueryEngine& engine,
                          const SeriesCatalog& catalog, const Clock& clock, SelfMetrics& metrics) {
  auto api = std::make_shared<PromApi>(engine, catalog, clock, metrics);
  auto route = [&](const char* path, PromApi::Handler h) {
    auto fn = [api, h](const httplib::Request& req, httplib::Response& res) {
      api->serve(h, req, res);
    };
    server.Get(path, fn);
    server.Post(path, fn);
  };
  route("/api/v1/query", &PromApi::query);
  route("/api/v1/query_range", &PromApi::query_range);
  route("/api/v1/series", &PromApi::series);
  route("/api/v1/labels", &PromApi::labels);
  route(R"(/api/v1/label/([^/]+)/values)", &PromApi::label_values);
  route("/api/v1/metadata", &PromApi::metadata);
  route("/api/v1/status/buildinfo", &PromApi::buildinfo);
}

}  // namespace tally::collector
