#include "query/promql_eval.h"

#include <re2/re2.h>

#include <cstdio>

#include "query/promql_range.h"
#include "tally/common/time_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <system_error>

namespace tally::collector::prom {
namespace {

using promql::Matcher;
using promql::Node;

constexpr int64_t kLookbackS = 300;  // Prometheus's default lookback delta for gauges
constexpr int64_t kInstantQuantileWindowS =
    60;  // quantiles of an instant query cover the last minute

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
  if (op == "atan2") return std::atan2(a, b);
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

bool is_comparison(const std::string& op) {
  return op == "==" || op == "!=" || op == "<" || op == ">" || op == "<=" || op == ">=";
}

bool compare(const std::string& op, double a, double b) {
  if (op == "==") return a == b;
  if (op == "!=") return a != b;
  if (op == "<") return a < b;
  if (op == ">") return a > b;
  if (op == "<=") return a <= b;
  return a >= b;
}

// The labels two series are matched on: on(...) keeps only those, ignoring(...) (and no modifier)
// drops those and the metric name.
Labels signature(const Labels& l, const Node& bin) {
  Labels sig;
  const auto& names = bin.grouping;
  const bool on = bin.matching == "on";
  for (const auto& [k, v] : l) {
    const bool listed = std::find(names.begin(), names.end(), k) != names.end();
    if (on ? listed : (!listed && k != "__name__")) sig.emplace(k, v);
  }
  return sig;
}

// Go's strconv.FormatFloat(v, 'f', -1, 64), as count_values writes a value into a label.
std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[512];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return ec == std::errc() ? std::string(buf, p) : "NaN";
}

// minute(), hour(), ... of a unix time in seconds, UTC, as Prometheus computes them.
double date_part(const std::string& fn, double secs) {
  const int64_t s = static_cast<int64_t>(std::floor(secs));
  const int64_t days = (s >= 0 ? s : s - 86399) / 86400;
  const int64_t in_day = s - days * 86400;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (fn == "minute") return static_cast<double>(in_day / 60 % 60);
  if (fn == "hour") return static_cast<double>(in_day / 3600);
  if (fn == "day_of_week") return static_cast<double>(((days % 7) + 11) % 7);  // 1970-01-01: Thu
  if (fn == "day_of_month") return d;
  if (fn == "month") return m;
  if (fn == "year") return static_cast<double>(y);
  if (fn == "days_in_month") return m == 2 && leap ? 29 : kDays[m - 1];
  // day_of_year
  unsigned doy = d;
  for (unsigned k = 1; k < m; ++k) doy += k == 2 && leap ? 29 : kDays[k - 1];
  return doy;
}

double math_fn(const std::string& fn, double x) {
  if (fn == "abs") return std::fabs(x);
  if (fn == "ceil") return std::ceil(x);
  if (fn == "floor") return std::floor(x);
  if (fn == "exp") return std::exp(x);
  if (fn == "ln") return std::log(x);
  if (fn == "log2") return std::log2(x);
  if (fn == "log10") return std::log10(x);
  if (fn == "sqrt") return std::sqrt(x);
  if (fn == "sgn") return x > 0 ? 1 : x < 0 ? -1 : x;
  if (fn == "acos") return std::acos(x);
  if (fn == "acosh") return std::acosh(x);
  if (fn == "asin") return std::asin(x);
  if (fn == "asinh") return std::asinh(x);
  if (fn == "atan") return std::atan(x);
  if (fn == "atanh") return std::atanh(x);
  if (fn == "cos") return std::cos(x);
  if (fn == "cosh") return std::cosh(x);
  if (fn == "sin") return std::sin(x);
  if (fn == "sinh") return std::sinh(x);
  if (fn == "tan") return std::tan(x);
  if (fn == "tanh") return std::tanh(x);
  if (fn == "deg") return x * 180 / M_PI;
  if (fn == "rad") return x * M_PI / 180;
  return std::nan("");
}

class Evaluator {
 public:
  enum class Mode { kInstant, kIncrease, kRate };

  // times_ms: the evaluation timestamps, ascending; step_ms: the range query's step, 0 for an
  // instant query; [start_ms, end_ms]: the query's own range (what @ start() / end() mean).
  Evaluator(const QueryEngine& engine, const SeriesCatalog& catalog, const Clock& clock,
            const NameTable& names, std::vector<int64_t> times_ms, int64_t step_ms,
            int64_t start_ms, int64_t end_ms, Deadline deadline)
      : deadline_(deadline),
        engine_(engine),
        catalog_(catalog),
        clock_(clock),
        names_(names),
        times_(std::move(times_ms)),
        step_ms_(step_ms),
        start_ms_(start_ms),
        end_ms_(end_ms) {
    // A bucket [b, b + r) counts at time t when it has ended by then: b + r <= t, so
    // b + r <= floor(t) (its sample, at b + r, is not yet there at t = b + r - 0.5).
    for (int64_t t : times_) cutoffs_.push_back(t >= 0 ? t / 1000 : -((-t + 999) / 1000));
    step_s_ = step_ms > 0 ? std::max<int64_t>(1, (step_ms + 999) / 1000) : 0;
  }

  // Whether the result's order is its own (sort, sort_desc) rather than by labels.
  bool ordered() const { return ordered_; }

  MaybeError eval(const Node& n, Value* out) {
    if (deadline_.passed()) return from_status(engine_.deadline_passed());
    const size_t nt = times_.size();
    ordered_ = false;
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
        return shifted(n, [&](Evaluator& ev) { return ev.selector(n, Mode::kInstant, 0, out); });
      case Node::Type::kCall: {
        if (auto e = call(n, out)) return e;
        return merge_same_labels(out);
      }
      case Node::Type::kAggregate:
        if (n.text == "tally_quantile") return tally_quantile(n, out);
        return aggregate(n, out);
      default:
        return unsupported("expression not supported");
    }
  }

 private:
  // Evaluates a selector with offset and @ applied: at shifted times, by an evaluator of its own.
  template <typename Fn>
  MaybeError shifted(const Node& sel, Fn&& fn) {
    if (shifted_ || (!sel.offset_ms && !sel.has_at)) return fn(*this);
    std::vector<int64_t> times = times_;
    if (sel.has_at) {
      const int64_t at = sel.at == Node::At::kStart ? start_ms_
                         : sel.at == Node::At::kEnd ? end_ms_
                                                    : sel.at_ms;
      times.assign(times.size(), at);
    }
    if (sel.offset_ms)
      for (int64_t& t : times) t -= *sel.offset_ms;
    Evaluator sub(engine_, catalog_, clock_, names_, std::move(times), step_ms_, start_ms_, end_ms_,
                  deadline_);
    sub.shifted_ = true;
    return fn(sub);
  }

  // One series of a range vector: its labels and its samples, oldest first.
  struct RangeSeries {
    Labels labels;
    std::vector<Sample> samples;
  };
  // A range vector: the series and, per evaluation timestamp, the end of its window (ms; the
  // window is (end - range_ms, end]).
  struct RangeVector {
    std::vector<RangeSeries> series;
    std::vector<int64_t> ends;
    int64_t range_ms = 0;
    // 1 when the samples are a coarse resolution's buckets: one ending exactly at a window's
    // start holds points of its whole span, all but its last second before the window, so it is
    // left out (Prometheus, over per-second samples, would see at most that last second's).
    int64_t open_ms = 0;
  };

  // A range selector or a subquery, with its offset and @ applied.
  MaybeError range_vector(const Node& m, RangeVector* out) {
    return shifted(m, [&](Evaluator& ev) {
      return m.type == Node::Type::kSubquery ? ev.subquery_samples(m, out)
                                             : ev.selector_samples(m, *m.range_ms / 1000, out);
    });
  }

  // The samples of a selector's series in the windows [c - w, c] of every cutoff c: one per
  // stored bucket of the finest resolution that still holds the earliest window, at the bucket's
  // end; a counter's (and a distribution's _count/_sum) value is its running total, a gauge's the
  // last value set in the bucket.
  MaybeError selector_samples(const Node& sel, int64_t w, RangeVector* out) {
    out->range_ms = w * 1000;
    // Windows end at the evaluation times themselves: at t = 100.5, [t - 60, t] holds the
    // samples at 41..100 (closed at both ends, and no sample at 40.5).
    out->ends = times_;
    const int64_t earliest = cutoffs_.front() - w;
    const auto& res = engine_.resolutions();
    size_t r = res.size() - 1;
    for (size_t k = 0; k < res.size(); ++k)
      if (horizon(k) <= earliest) {
        r = k;
        break;
      }
    const int64_t rs = res[r].step_s;
    if (rs > 1) out->open_ms = 1;
    // From the bucket that ends at the earliest window's start (windows are closed, [c - w, c]).
    const int64_t a = bucket_start(earliest - 1, rs);
    for (const Exposed& e : names_.select(sel)) {
      Leaf leaf;
      if (auto err = select_leaf(engine_, kMinQueryTime, sel, e, true, &leaf)) return err;
      if (leaf.series.empty()) continue;
      // Only when a quantile series is selected: {job="x"}[5m] must not fail because some other
      // job has a distribution.
      if (e.summary())
        return unsupported("range functions of the quantiles of distribution '" + e.name +
                           "' are not supported; use tally_quantile(φ, " + e.name +
                           ") over a step, or " + e.name + "_count / " + e.name + "_sum");
      std::vector<std::vector<StoredBucket>> buckets;
      if (auto err = read(leaf, r, a, cutoffs_.back(), &buckets)) return err;
      const bool cumulative = e.kind != Kind::kGauge;
      std::vector<double> base;
      std::vector<char> seen;
      if (cumulative)
        if (auto err = totals_before(leaf, r, a, &base, &seen)) return err;
      for (size_t i = 0; i < leaf.series.size(); ++i) {
        RangeSeries rsr{leaf.labels[i], {}};
        double total = cumulative ? base[i] : 0;
        for (const auto& b : buckets[i]) {
          if (b.time + rs > cutoffs_.back()) break;
          if (cumulative) {
            total += amount(b.agg, leaf.exposed);
            rsr.samples.push_back({(b.time + rs) * 1000, total});
          } else if (b.agg.count > 0) {
            rsr.samples.push_back({(b.time + rs) * 1000, b.agg.last});
          }
        }
        out->series.push_back(std::move(rsr));
      }
    }
    return std::nullopt;
  }

  // A subquery expr[range:step]: expr evaluated at every multiple of step from the first window's
  // start to the last timestamp (step defaults to one minute, Prometheus's default evaluation
  // interval); each timestamp's window holds the values within its range.
  MaybeError subquery_samples(const Node& sq, RangeVector* out) {
    constexpr int64_t kDefaultStepMs = 60000;
    constexpr int64_t kMaxPoints = 1000000;  // evaluations of the inner expression
    const int64_t range = *sq.range_ms;
    const int64_t step = sq.step_ms && *sq.step_ms > 0 ? *sq.step_ms : kDefaultStepMs;
    out->range_ms = range;
    out->ends = times_;
    const int64_t lo = times_.front() - range;
    int64_t first = lo / step * step;
    if (first < lo) first += step;
    const int64_t last = times_.back();
    if (last < first) return std::nullopt;
    if ((last - first) / step + 1 > kMaxPoints)
      return bad_data("subquery [" + std::to_string(range / 1000) +
                      "s:" + std::to_string(step / 1000) + "s] over this range needs " +
                      std::to_string((last - first) / step + 1) +
                      " evaluations, more than the limit of " + std::to_string(kMaxPoints) +
                      "; use a coarser subquery step");
    std::vector<int64_t> grid;
    for (int64_t t = first; t <= last; t += step) grid.push_back(t);
    Evaluator inner(engine_, catalog_, clock_, names_, grid, step, start_ms_, end_ms_, deadline_);
    Value v;
    if (auto e = inner.eval(sq.arg(0), &v)) return e;
    for (auto& s : v.vec) {
      RangeSeries rsr{std::move(s.labels), {}};
      for (size_t k = 0; k < grid.size(); ++k)
        if (s.v[k]) rsr.samples.push_back({grid[k], *s.v[k]});
      out->series.push_back(std::move(rsr));
    }
    return std::nullopt;
  }

  // The samples of one series within [end - range, end] (closed at both ends, as Prometheus 2.x).
  static std::span<const Sample> window(const std::vector<Sample>& s, int64_t end, int64_t range,
                                        int64_t open_ms = 0) {
    auto by_time = [](const Sample& x, int64_t t) { return x.t_ms < t; };
    auto lo = std::lower_bound(s.begin(), s.end(), end - range + open_ms, by_time);
    auto hi = std::lower_bound(lo, s.end(), end + 1, by_time);
    return {s.data() + (lo - s.begin()), static_cast<size_t>(hi - lo)};
  }

  // A function of a range vector (rate, irate, delta, *_over_time, ..., absent_over_time).
  MaybeError range_call(const Node& n, Value* out) {
    const std::string& fn = n.text;
    const size_t nt = times_.size();
    const size_t mi = fn == "quantile_over_time" ? 1 : 0;
    // The scalar arguments, per evaluation timestamp.
    std::vector<std::vector<double>> params;
    for (size_t k = 0; k < n.args.size(); ++k) {
      if (k == mi) continue;
      params.emplace_back();
      if (auto e = scalar_arg(n.arg(k), &params.back())) return e;
    }
    if (fn == "holt_winters" || fn == "double_exponential_smoothing") {
      for (size_t i = 0; i < nt; ++i) {
        char buf[64];
        for (int f = 0; f < 2; ++f) {
          const double x = params[static_cast<size_t>(f)][i];
          if (x > 0 && x < 1) continue;
          std::snprintf(buf, sizeof buf, "%f", x);
          return bad_data(std::string("invalid ") + (f == 0 ? "smoothing" : "trend") +
                          " factor. Expected: 0 < " + (f == 0 ? "sf" : "tf") + " < 1, got: " + buf);
        }
      }
    }
    const Node& m = unparen(n.arg(mi));
    RangeVector rv;
    if (auto e = range_vector(m, &rv)) return e;
    if (fn == "absent_over_time") {
      Series one{{}, std::vector<std::optional<double>>(nt)};
      for (size_t i = 0; i < nt; ++i) {
        bool any = false;
        for (const auto& s : rv.series)
          any = any || !window(s.samples, rv.ends[i], rv.range_ms, rv.open_ms).empty();
        if (!any) one.v[i] = 1;
      }
      if (m.type == Node::Type::kSelector)
        for (const auto& mt : m.matchers)
          if (mt.op == Matcher::Op::kEq && mt.name != "__name__") one.labels[mt.name] = mt.value;
      out->vec.push_back(std::move(one));
      return std::nullopt;
    }
    const bool keep_name = fn == "last_over_time";
    std::vector<double> at(params.size());
    for (auto& s : rv.series) {
      Series r{std::move(s.labels), std::vector<std::optional<double>>(nt)};
      if (!keep_name) r.labels.erase("__name__");
      bool any = false;
      for (size_t i = 0; i < nt; ++i) {
        for (size_t k = 0; k < params.size(); ++k) at[k] = params[k][i];
        r.v[i] = eval_range_function(
            fn,
            Window{window(s.samples, rv.ends[i], rv.range_ms, rv.open_ms), rv.ends[i], rv.range_ms},
            at);
        any = any || r.v[i].has_value();
      }
      if (any) out->vec.push_back(std::move(r));
    }
    return std::nullopt;
  }

  // timestamp(v): a gauge's sample time (the end of the bucket its value was last set in);
  // anything else has its value at the evaluation time itself.
  MaybeError timestamp(const Node& n, Value* out) {
    Value v;
    if (auto e = eval(n.arg(0), &v)) return e;
    std::map<Labels, std::vector<Sample>> gauge_samples;
    const Node& arg = unparen(n.arg(0));
    if (arg.type == Node::Type::kSelector) {
      RangeVector rv;
      const auto gauges_only = [&](Evaluator& ev) -> MaybeError {
        for (const Exposed& e : ev.names_.select(arg))
          if (e.kind != Kind::kGauge) return std::nullopt;
        return ev.selector_samples(arg, kLookbackS, &rv);
      };
      if (auto e = shifted(arg, gauges_only)) return e;
      for (auto& s : rv.series) gauge_samples[s.labels] = std::move(s.samples);
      for (auto& s : v.vec) {
        auto it = gauge_samples.find(s.labels);
        for (size_t i = 0; i < times_.size(); ++i) {
          if (!s.v[i]) continue;
          if (it == gauge_samples.end()) {
            s.v[i] = static_cast<double>(times_[i]) / 1000.0;
            continue;
          }
          auto w = window(it->second, rv.ends[i], rv.range_ms, rv.open_ms);
          s.v[i] = w.empty() ? static_cast<double>(times_[i]) / 1000.0
                             : static_cast<double>(w.back().t_ms) / 1000.0;
        }
        s.labels.erase("__name__");
      }
    } else {
      for (auto& s : v.vec) {
        for (size_t i = 0; i < times_.size(); ++i)
          if (s.v[i]) s.v[i] = static_cast<double>(times_[i]) / 1000.0;
        s.labels.erase("__name__");
      }
    }
    out->vec = std::move(v.vec);
    return std::nullopt;
  }

  // A function call (the kCall case of eval()).
  MaybeError call(const Node& n, Value* out) {
    if (n.text == "timestamp") return timestamp(n, out);
    if (n.text == "histogram_quantile") return histogram_quantile(n, out);

    if (n.text == "absent_over_time" || is_range_function(n.text)) {
      const Node& arg = unparen(n.arg(n.text == "quantile_over_time" ? 1 : 0));
      // rate and increase of a range selector are exact bucket sums (cumulative()).
      if ((n.text != "rate" && n.text != "increase") || arg.type != Node::Type::kSelector)
        return range_call(n, out);
    }
    if (n.text != "rate" && n.text != "increase") return function(n, out);
    const Node& sel = unparen(n.arg(0));
    const Mode mode = n.text == "rate" ? Mode::kRate : Mode::kIncrease;
    return shifted(
        sel, [&](Evaluator& ev) { return ev.selector(sel, mode, *sel.range_ms / 1000, out); });
  }

  // Series a function left with the same labels (label_replace, or a function dropping the
  // metric name of two metrics) are one series, as in Prometheus; two values at one time are an
  // error ("vector cannot contain metrics with the same labelset").
  MaybeError merge_same_labels(Value* v) {
    if (v->scalar || v->vec.size() < 2) return std::nullopt;
    // Usually there is none: find out without copying a label set.
    std::vector<const Labels*> sorted;
    sorted.reserve(v->vec.size());
    for (const auto& s : v->vec) sorted.push_back(&s.labels);
    std::sort(sorted.begin(), sorted.end(),
              [](const Labels* a, const Labels* b) { return *a < *b; });
    bool dup = false;
    for (size_t j = 1; j < sorted.size() && !dup; ++j) dup = *sorted[j - 1] == *sorted[j];
    if (!dup) return std::nullopt;
    std::vector<Series> merged;
    std::map<Labels, size_t> at;
    for (auto& s : v->vec) {
      auto [it, fresh] = at.emplace(s.labels, merged.size());
      if (fresh) {
        merged.push_back(std::move(s));
        continue;
      }
      Series& m = merged[it->second];
      for (size_t i = 0; i < s.v.size(); ++i) {
        if (!s.v[i]) continue;
        if (m.v[i]) return unsupported("vector cannot contain metrics with the same labelset");
        m.v[i] = s.v[i];
      }
    }
    v->vec = std::move(merged);
    return std::nullopt;
  }

  // histogram_quantile(φ, v): Prometheus's classic-histogram quantile over series with an `le`
  // label (cumulative bucket counts, e.g. rate() of counters tagged le); series are grouped by
  // their labels without `le` (the metric name included) and the result drops name and `le`.
  // Series without a numeric `le` are skipped, as Prometheus skips them.
  MaybeError histogram_quantile(const Node& n, Value* out) {
    std::vector<double> q;
    if (auto e = scalar_arg(n.arg(0), &q)) return e;
    Value v;
    if (auto e = eval(n.arg(1), &v)) return e;
    struct Group {
      Labels labels;
      std::vector<std::pair<double, const Series*>> buckets;  // (upper bound, series)
    };
    std::map<Labels, Group> groups;
    for (const auto& s : v.vec) {
      auto le = s.labels.find("le");
      if (le == s.labels.end()) continue;
      const std::string& text = le->second;
      char* end = nullptr;
      const double upper = std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size()) continue;
      Labels key = s.labels;
      key.erase("le");
      auto [it, fresh] = groups.try_emplace(key);
      if (fresh) {
        it->second.labels = key;
        it->second.labels.erase("__name__");
      }
      it->second.buckets.emplace_back(upper, &s);
    }
    const size_t nt = times_.size();
    for (auto& [key, g] : groups) {
      Series res{g.labels, std::vector<std::optional<double>>(nt)};
      std::vector<std::pair<double, double>> b;
      bool any = false;
      for (size_t i = 0; i < nt; ++i) {
        b.clear();
        for (const auto& [upper, s] : g.buckets)
          if (s->v[i]) b.emplace_back(upper, *s->v[i]);
        if (b.empty()) continue;
        res.v[i] = bucket_quantile(q[i], b);
        any = true;
      }
      if (any) out->vec.push_back(std::move(res));
    }
    return std::nullopt;
  }

  // Prometheus 2.x's bucketQuantile (promql/quantile.go): sorted by upper bound, buckets of one
  // bound added up, counts made monotonic, linear interpolation within the bucket.
  static double bucket_quantile(double q, std::vector<std::pair<double, double>>& b) {
    if (std::isnan(q)) return std::nan("");
    if (q < 0) return -INFINITY;
    if (q > 1) return INFINITY;
    std::stable_sort(b.begin(), b.end(),
                     [](const auto& x, const auto& y) { return x.first < y.first; });
    if (!std::isinf(b.back().first) || b.back().first < 0) return std::nan("");
    std::vector<std::pair<double, double>> c;
    for (const auto& x : b) {
      if (!c.empty() && c.back().first == x.first)
        c.back().second += x.second;
      else
        c.push_back(x);
    }
    double max = -INFINITY;
    for (auto& x : c) {
      if (x.second > max)
        max = x.second;
      else if (x.second < max)
        x.second = max;
    }
    if (c.size() < 2) return std::nan("");
    const double observations = c.back().second;
    if (observations == 0) return std::nan("");
    double rank = q * observations;
    size_t k = 0;
    while (k < c.size() - 1 && !(c[k].second >= rank)) ++k;
    if (k == c.size() - 1) return c[c.size() - 2].first;
    if (k == 0 && c[0].first <= 0) return c[0].first;
    double start = 0, end = c[k].first, count = c[k].second;
    if (k > 0) {
      start = c[k - 1].first;
      count -= c[k - 1].second;
      rank -= c[k - 1].second;
    }
    return start + (end - start) * (rank / count);
  }

  MaybeError scalar_arg(const Node& n, std::vector<double>* out) {
    Value v;
    if (auto e = eval(n, &v)) return e;
    *out = std::move(v.s);
    return std::nullopt;
  }

  static const std::string& string_arg(const Node& n) { return unparen(n).text; }

  MaybeError function(const Node& n, Value* out) {
    const std::string& fn = n.text;
    const size_t nt = times_.size();
    if (fn == "time" || fn == "pi") {
      out->scalar = true;
      out->s.resize(nt);
      for (size_t i = 0; i < nt; ++i)
        out->s[i] = fn == "pi" ? M_PI : static_cast<double>(times_[i]) / 1000.0;
      return std::nullopt;
    }
    if (fn == "vector") {
      std::vector<double> s;
      if (auto e = scalar_arg(n.arg(0), &s)) return e;
      Series one{{}, {}};
      for (double x : s) one.v.emplace_back(x);
      out->vec.push_back(std::move(one));
      return std::nullopt;
    }
    if (fn == "scalar") {
      Value v;
      if (auto e = eval(n.arg(0), &v)) return e;
      out->scalar = true;
      out->s.assign(nt, std::nan(""));
      for (size_t i = 0; i < nt; ++i) {
        size_t count = 0;
        for (const auto& s : v.vec)
          if (s.v[i]) {
            ++count;
            out->s[i] = *s.v[i];
          }
        if (count != 1) out->s[i] = std::nan("");
      }
      return std::nullopt;
    }
    // Date functions without an argument read vector(time()).
    if (n.args.empty()) {
      Series one{{}, {}};
      for (int64_t t : times_) one.v.emplace_back(date_part(fn, static_cast<double>(t) / 1000.0));
      out->vec.push_back(std::move(one));
      return std::nullopt;
    }
    Value v;
    if (auto e = eval(n.arg(0), &v)) return e;
    if (fn == "absent") {
      Series one{{}, std::vector<std::optional<double>>(nt)};
      for (size_t i = 0; i < nt; ++i) {
        bool any = false;
        for (const auto& s : v.vec) any = any || s.v[i].has_value();
        if (!any) one.v[i] = 1;
      }
      // The labels of the argument's equality matchers, as Prometheus gives them.
      const Node& sel = unparen(n.arg(0));
      if (sel.type == Node::Type::kSelector)
        for (const auto& m : sel.matchers)
          if (m.op == Matcher::Op::kEq && m.name != "__name__") one.labels[m.name] = m.value;
      out->vec.push_back(std::move(one));
      return std::nullopt;
    }
    if (fn == "sort" || fn == "sort_desc") {
      // Only an instant query has one order; a range query keeps its series sorted by labels.
      *out = std::move(v);
      if (nt == 1) {
        const bool desc = fn == "sort_desc";
        std::stable_sort(out->vec.begin(), out->vec.end(), [&](const Series& a, const Series& b) {
          const double x = a.v[0].value_or(std::nan("")), y = b.v[0].value_or(std::nan(""));
          if (std::isnan(x) || std::isnan(y)) return !std::isnan(x) && std::isnan(y);
          return desc ? x > y : x < y;
        });
        ordered_ = true;
      }
      return std::nullopt;
    }
    if (fn == "label_replace") {
      const std::string& dst = string_arg(n.arg(1));
      const std::string& repl = string_arg(n.arg(2));
      const std::string& src = string_arg(n.arg(3));
      const std::string& re = string_arg(n.arg(4));
      // RE2, anchored as Prometheus anchors it.
      const re2::RE2 compiled("^(?s:" + re + ")$");
      if (!compiled.ok()) return bad_data("invalid regular expression in label_replace(): " + re);
      const int groups = compiled.NumberOfCapturingGroups() + 1;
      if (!valid_label_name(dst))
        return bad_data("invalid destination label name in label_replace(): " + dst);
      for (auto& s : v.vec) {
        const std::string value = s.labels.count(src) ? s.labels[src] : "";
        std::vector<re2::StringPiece> m(static_cast<size_t>(groups));
        if (!compiled.Match(value, 0, value.size(), re2::RE2::ANCHOR_BOTH, m.data(), groups))
          continue;
        // $1, ${1}: the groups, as Go's Regexp.Expand.
        std::string res;
        for (size_t i = 0; i < repl.size(); ++i) {
          if (repl[i] != '$' || i + 1 >= repl.size()) {
            res += repl[i];
            continue;
          }
          size_t j = i + 1;
          const bool brace = repl[j] == '{';
          if (brace) ++j;
          size_t k = j;
          while (k < repl.size() && std::isdigit(static_cast<unsigned char>(repl[k]))) ++k;
          if (k == j || (brace && (k >= repl.size() || repl[k] != '}'))) {
            res += repl[i];
            continue;
          }
          const size_t g = std::stoul(repl.substr(j, k - j));
          if (g < m.size()) res += std::string(m[g].data(), m[g].size());
          i = brace ? k : k - 1;
        }
        if (res.empty())
          s.labels.erase(dst);
        else
          s.labels[dst] = res;
      }
      *out = std::move(v);
      return std::nullopt;
    }
    if (fn == "label_join") {
      const std::string& dst = string_arg(n.arg(1));
      const std::string& sep = string_arg(n.arg(2));
      if (!valid_label_name(dst))
        return bad_data("invalid destination label name in label_join(): " + dst);
      for (auto& s : v.vec) {
        std::string res;
        for (size_t a = 3; a < n.args.size(); ++a) {
          if (a > 3) res += sep;
          auto it = s.labels.find(string_arg(n.arg(a)));
          if (it != s.labels.end()) res += it->second;
        }
        if (res.empty())
          s.labels.erase(dst);
        else
          s.labels[dst] = res;
      }
      *out = std::move(v);
      return std::nullopt;
    }
    // Element-wise functions; they drop the metric name.
    std::vector<double> a1, a2;
    if (n.args.size() > 1)
      if (auto e = scalar_arg(n.arg(1), &a1)) return e;
    if (n.args.size() > 2)
      if (auto e = scalar_arg(n.arg(2), &a2)) return e;
    for (auto& s : v.vec) {
      s.labels.erase("__name__");
      for (size_t i = 0; i < nt; ++i) {
        if (!s.v[i]) continue;
        double& x = *s.v[i];
        if (fn == "round") {
          const double to = a1.empty() ? 1 : a1[i];
          x = std::floor(x * (1 / to) + 0.5) / (1 / to);
        } else if (fn == "clamp") {
          if (a2[i] < a1[i])
            s.v[i].reset();
          else
            x = std::max(a1[i], std::min(a2[i], x));
        } else if (fn == "clamp_min") {
          x = std::max(a1[i], x);
        } else if (fn == "clamp_max") {
          x = std::min(a1[i], x);
        } else if (fn == "minute" || fn == "hour" || fn == "day_of_week" || fn == "day_of_month" ||
                   fn == "day_of_year" || fn == "days_in_month" || fn == "month" || fn == "year") {
          x = date_part(fn, x);
        } else {
          x = math_fn(fn, x);
        }
      }
    }
    *out = std::move(v);
    return std::nullopt;
  }

  MaybeError binary(const Node& n, Value* out) {
    Value l, r;
    if (auto e = eval(n.arg(0), &l)) return e;
    if (auto e = eval(n.arg(1), &r)) return e;
    const std::string& op = n.text;
    const bool cmp = is_comparison(op);
    if (l.scalar && r.scalar) {
      out->scalar = true;
      out->s.resize(times_.size());
      for (size_t i = 0; i < times_.size(); ++i)
        out->s[i] = cmp ? (compare(op, l.s[i], r.s[i]) ? 1 : 0) : arith(op, l.s[i], r.s[i]);
      return std::nullopt;
    }
    if (op == "and" || op == "or" || op == "unless") return set_operation(n, l, r, out);
    if (l.scalar || r.scalar) {
      const bool vec_left = !l.scalar;
      Value& v = vec_left ? l : r;
      const Value& s = vec_left ? r : l;
      for (auto& series : v.vec) {
        if (!cmp || n.bool_modifier) series.labels.erase("__name__");
        for (size_t i = 0; i < series.v.size(); ++i) {
          if (!series.v[i]) continue;
          const double a = vec_left ? *series.v[i] : s.s[i];
          const double b = vec_left ? s.s[i] : *series.v[i];
          if (!cmp)
            series.v[i] = arith(op, a, b);
          else if (n.bool_modifier)
            series.v[i] = compare(op, a, b) ? 1 : 0;
          else if (!compare(op, a, b))
            series.v[i].reset();
        }
      }
      *out = std::move(v);
      return std::nullopt;
    }
    return vector_vector(n, l, r, out);
  }

  // Vector op vector with one-to-one, many-to-one (group_left) or one-to-many (group_right)
  // matching, per timestamp, as Prometheus's VectorBinop.
  MaybeError vector_vector(const Node& n, Value& l, Value& r, Value* out) {
    const std::string& op = n.text;
    const bool cmp = is_comparison(op);
    const bool right = n.group == "group_right";
    const bool grouped = !n.group.empty();
    // "many" is the side whose series the result keeps; "one" is matched to each.
    Value& many = right ? r : l;
    Value& one = right ? l : r;
    std::map<Labels, std::vector<size_t>> one_by_sig;
    for (size_t j = 0; j < one.vec.size(); ++j)
      one_by_sig[signature(one.vec[j].labels, n)].push_back(j);
    const size_t nt = times_.size();
    std::map<Labels, size_t> result_index;
    for (auto& m : many.vec) {
      auto it = one_by_sig.find(signature(m.labels, n));
      if (it == one_by_sig.end()) continue;
      for (size_t i = 0; i < nt; ++i) {
        if (!m.v[i]) continue;
        const Series* match = nullptr;
        for (size_t j : it->second) {
          if (!one.vec[j].v[i]) continue;
          if (match)
            return unsupported(
                "found duplicate series for the match group on the " +
                std::string(right ? "left" : "right") +
                " hand-side of the operation; many-to-many matching not allowed: matching labels "
                "must be unique on one side");
          match = &one.vec[j];
        }
        if (!match) continue;
        const double a = right ? *match->v[i] : *m.v[i];
        const double b = right ? *m.v[i] : *match->v[i];
        std::optional<double> value;
        if (!cmp)
          value = arith(op, a, b);
        else if (n.bool_modifier)
          value = compare(op, a, b) ? 1 : 0;
        else if (compare(op, a, b))
          value = a;  // a comparison keeps the left-hand value
        if (!value) continue;
        Labels labels = m.labels;
        if (!cmp || n.bool_modifier) labels.erase("__name__");
        if (!grouped) {
          if (n.matching == "on") {
            Labels kept;
            for (const auto& g : n.grouping)
              if (auto f = labels.find(g); f != labels.end()) kept.insert(*f);
            labels = std::move(kept);
          } else {
            for (const auto& g : n.grouping) labels.erase(g);
          }
        } else {
          for (const auto& g : n.include) {
            if (auto f = match->labels.find(g); f != match->labels.end())
              labels[g] = f->second;
            else
              labels.erase(g);
          }
        }
        auto [at, fresh] = result_index.emplace(labels, out->vec.size());
        if (fresh) out->vec.push_back({labels, std::vector<std::optional<double>>(nt)});
        auto& dst = out->vec[at->second].v[i];
        if (dst)
          return unsupported(
              grouped ? "multiple matches for labels: grouping labels must ensure unique matches"
                      : "found duplicate series for the match group on the left hand-side of the "
                        "operation; many-to-many matching not allowed: matching labels must be "
                        "unique on one side");
        dst = value;
      }
    }
    return std::nullopt;
  }

  // and, or, unless: per timestamp, by the matching labels.
  MaybeError set_operation(const Node& n, Value& l, Value& r, Value* out) {
    const size_t nt = times_.size();
    std::map<Labels, std::vector<const Series*>> rhs;
    for (const auto& s : r.vec) rhs[signature(s.labels, n)].push_back(&s);
    auto present = [&](const std::vector<const Series*>* group, size_t i) {
      if (!group) return false;
      for (const Series* s : *group)
        if (s->v[i]) return true;
      return false;
    };
    std::map<Labels, std::vector<const Series*>> lhs;
    for (auto& s : l.vec) {
      const Labels sig = signature(s.labels, n);
      auto it = rhs.find(sig);
      const auto* group = it == rhs.end() ? nullptr : &it->second;
      if (n.text != "or")
        for (size_t i = 0; i < nt; ++i)
          if (s.v[i] && present(group, i) != (n.text == "and")) s.v[i].reset();
      lhs[sig].push_back(&s);
    }
    std::vector<Series> result = std::move(l.vec);
    if (n.text == "or") {
      for (auto& s : r.vec) {
        auto it = lhs.find(signature(s.labels, n));
        const auto* group = it == lhs.end() ? nullptr : &it->second;
        for (size_t i = 0; i < nt; ++i)
          if (s.v[i] && present(group, i)) s.v[i].reset();
        result.push_back(std::move(s));
      }
    }
    out->vec = std::move(result);
    return std::nullopt;
  }

  MaybeError aggregate(const Node& n, Value* out) {
    Value child;
    if (auto e = eval(*n.args.back(), &child)) return e;
    const std::string& op = n.text;
    const size_t nt = times_.size();
    std::vector<double> param;
    if (n.args.size() > 1 && op != "count_values")
      if (auto e = scalar_arg(n.arg(0), &param)) return e;
    std::map<Labels, std::vector<Series*>> groups;
    for (auto& s : child.vec) groups[group_key(s.labels, n)].push_back(&s);
    if (op == "topk" || op == "bottomk") {
      // The k largest (smallest) of each group at each timestamp keep their own labels.
      for (auto& [key, members] : groups) {
        std::vector<std::vector<std::optional<double>>> kept(
            members.size(), std::vector<std::optional<double>>(nt));
        for (size_t i = 0; i < nt; ++i) {
          const double kf = param[i];
          if (std::isnan(kf) || kf < 1) continue;
          const size_t k = static_cast<size_t>(std::min(kf, 1e9));
          std::vector<size_t> idx;
          for (size_t m = 0; m < members.size(); ++m)
            if (members[m]->v[i]) idx.push_back(m);
          // An init-capture: clang 14 cannot capture a structured binding (members) by [&].
          auto better = [&, &ms = members](size_t a, size_t b) {
            const double x = *ms[a]->v[i], y = *ms[b]->v[i];
            if (std::isnan(x) || std::isnan(y)) return !std::isnan(x) && std::isnan(y);
            return op == "topk" ? x > y : x < y;
          };
          std::stable_sort(idx.begin(), idx.end(), better);
          for (size_t q = 0; q < idx.size() && q < k; ++q) kept[idx[q]][i] = members[idx[q]]->v[i];
        }
        for (size_t m = 0; m < members.size(); ++m)
          out->vec.push_back({members[m]->labels, std::move(kept[m])});
      }
      return std::nullopt;
    }
    if (op == "count_values") {
      const std::string label = unparen(n.arg(0)).text;
      if (!valid_label_name(label)) return bad_data("invalid label name \"" + label + "\"");
      std::map<Labels, Series> result;
      for (auto& [key, members] : groups)
        for (size_t i = 0; i < nt; ++i)
          for (const Series* m : members) {
            if (!m->v[i]) continue;
            Labels l = key;
            l[label] = format_value(*m->v[i]);
            auto [it, fresh] = result.try_emplace(l, Series{l, {}});
            if (fresh) it->second.v.resize(nt);
            it->second.v[i] = it->second.v[i].value_or(0) + 1;
          }
      for (auto& [l, s] : result) out->vec.push_back(std::move(s));
      return std::nullopt;
    }
    for (auto& [key, members] : groups) {
      Series g{key, std::vector<std::optional<double>>(nt)};
      std::vector<double> xs;
      for (size_t i = 0; i < nt; ++i) {
        xs.clear();
        for (const Series* m : members)
          if (m->v[i]) xs.push_back(*m->v[i]);
        if (xs.empty()) continue;
        const double count = static_cast<double>(xs.size());
        if (op == "count") {
          g.v[i] = count;
        } else if (op == "group") {
          g.v[i] = 1;
        } else if (op == "sum" || op == "avg") {
          double acc = 0;
          for (double x : xs) acc += x;
          g.v[i] = op == "avg" ? acc / count : acc;
        } else if (op == "min" || op == "max") {
          double acc = xs[0];
          for (double x : xs)
            if (std::isnan(acc) || (op == "min" ? x < acc : x > acc)) acc = x;
          g.v[i] = acc;
        } else if (op == "stddev" || op == "stdvar") {
          // Welford's running mean and variance, as Prometheus computes them.
          double mean = 0, m2 = 0, c = 0;
          for (double x : xs) {
            c += 1;
            const double d = x - mean;
            mean += d / c;
            m2 += d * (x - mean);
          }
          const double var = m2 / c;
          g.v[i] = op == "stddev" ? std::sqrt(var) : var;
        } else if (op == "quantile") {
          g.v[i] = prom_quantile(param[i], xs);
        }
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
      if (auto err = select_leaf(engine_, kMinQueryTime, sel, e, true, &leaf)) return err;
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
    if (auto s = engine_.read_buckets(leaf.series, res, from, to, out, deadline_); !s)
      return from_status(s);
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

  // The oldest second resolution k still holds.
  int64_t horizon(size_t k) const {
    const int64_t keep = engine_.resolutions()[k].retention_s;
    return keep > 0 ? clock_.now_s() - keep : std::numeric_limits<int64_t>::min();
  }

  // What resolution r's whole buckets miss before each x in xs: [bucket_start(x, r), x), read
  // from the finer resolutions, coarsest first, each for the part it covers and as far back as
  // it still holds:
  //   [floor(x, s_r), floor(x, s_r-1)) at r-1 + ... + [floor(x, s_1), x) at the finest.
  // (*sums)[i][j] is series i's amount there before xs[j]; (*seen)[i][j] whether it had any.
  // When every x is a multiple of r's step (a range query whose grid r divides) nothing is read.
  MaybeError tails(const Leaf& leaf, size_t r, const std::vector<int64_t>& xs,
                   std::vector<std::vector<double>>* sums,
                   std::vector<std::vector<char>>* seen) const {
    const auto& res = engine_.resolutions();
    sums->assign(leaf.series.size(), std::vector<double>(xs.size(), 0));
    seen->assign(leaf.series.size(), std::vector<char>(xs.size(), 0));
    for (size_t k = r; k-- > 0;) {
      struct Piece {
        size_t x;
        int64_t lo, hi;
      };
      std::vector<Piece> pieces;
      for (size_t j = 0; j < xs.size(); ++j) {
        const int64_t lo = bucket_start(xs[j], res[k + 1].step_s);
        const int64_t hi = bucket_start(xs[j], res[k].step_s);
        if (lo < hi && lo >= horizon(k)) pieces.push_back({j, lo, hi});
      }
      if (pieces.empty()) continue;
      // A few pieces (an instant query: its time and the window's start) are read one by one;
      // many (an unaligned range query) in one read over their span.
      std::vector<std::pair<int64_t, int64_t>> reads;
      if (pieces.size() <= 4) {
        for (const auto& p : pieces) reads.emplace_back(p.lo, p.hi);
      } else {
        int64_t lo = pieces.front().lo, hi = pieces.front().hi;
        for (const auto& p : pieces) lo = std::min(lo, p.lo), hi = std::max(hi, p.hi);
        reads.emplace_back(lo, hi);
      }
      for (const auto& [lo, hi] : reads) {
        std::vector<std::vector<StoredBucket>> buckets;
        if (auto err = read(leaf, k, lo, hi, &buckets)) return err;
        for (size_t i = 0; i < leaf.series.size(); ++i) {
          const auto& bs = buckets[i];
          if (bs.empty()) continue;
          std::vector<double> prefix{0};
          for (const auto& b : bs) prefix.push_back(prefix.back() + amount(b.agg, leaf.exposed));
          auto index = [&](int64_t x) {
            return static_cast<size_t>(
                std::lower_bound(bs.begin(), bs.end(), x,
                                 [](const StoredBucket& b, int64_t v) { return b.time < v; }) -
                bs.begin());
          };
          for (const auto& p : pieces) {
            if (p.lo < lo || p.hi > hi) continue;
            const size_t a = index(p.lo), b = index(p.hi);
            if (a == b) continue;
            (*sums)[i][p.x] += prefix[b] - prefix[a];
            (*seen)[i][p.x] = 1;
          }
        }
      }
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
    // Every point a total is taken at: each cutoff, then (rate, increase) each window's start.
    std::vector<int64_t> xs = cutoffs_;
    if (mode != Mode::kInstant)
      for (int64_t c : cutoffs_) xs.push_back(c - w);
    std::vector<std::vector<double>> tail;
    std::vector<std::vector<char>> tail_seen;
    if (auto err = tails(leaf, r, xs, &tail, &tail_seen)) return err;
    const size_t nc = cutoffs_.size();
    // rate/increase over a window the collector never covered: Prometheus has no samples where
    // nothing was scraped, so no value there (not an invented 0), unless a bucket is stored in it.
    std::vector<char> window_covered(nc, 1);
    if (mode != Mode::kInstant) {
      if (auto cov = engine_.coverage())
        for (size_t t = 0; t < nc; ++t)
          window_covered[t] = cov->overlaps((cutoffs_[t] - w) * 1000, cutoffs_[t] * 1000) ? 1 : 0;
    }
    for (size_t i = 0; i < leaf.series.size(); ++i) {
      std::vector<int64_t> starts;
      std::vector<double> prefix{0};
      for (const auto& b : buckets[i]) {
        starts.push_back(b.time);
        prefix.push_back(prefix.back() + amount(b.agg, leaf.exposed));
      }
      // (total of the buckets that ended by xs[j], whether the series had any by then)
      auto before = [&](size_t j) {
        const int64_t x = xs[j];
        size_t n = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), x - rs) -
                                       starts.begin());
        return std::pair<double, bool>{base[i] + prefix[n] + tail[i][j],
                                       seen[i] || n > 0 || tail_seen[i][j]};
      };
      Series s{leaf.labels[i], std::vector<std::optional<double>>(times_.size())};
      for (size_t t = 0; t < nc; ++t) {
        auto [total, exists] = before(t);
        if (!exists) continue;
        if (mode == Mode::kInstant) {
          s.v[t] = total;
          continue;
        }
        const double increase = total - before(nc + t).first;
        if (!window_covered[t] && increase == 0) {
          // Any bucket that ended in the window (c - w, c]?
          const auto lo = std::upper_bound(starts.begin(), starts.end(), cutoffs_[t] - w - rs);
          const auto hi = std::upper_bound(starts.begin(), starts.end(), cutoffs_[t] - rs);
          if (lo == hi) continue;
        }
        s.v[t] = mode == Mode::kRate ? increase / static_cast<double>(w) : increase;
      }
      out->push_back(std::move(s));
    }
    return std::nullopt;
  }

  // Gauges: the last value of the latest bucket that ended within the lookback [c - 5m, c]
  // (closed, as Prometheus 2.x: a sample exactly 5 minutes old still counts). A coarser bucket
  // ending exactly at c - 5m holds points of several seconds, of which only its last second's is
  // in the lookback: that second is read from the finest resolution.
  MaybeError gauge(const Leaf& leaf, std::vector<Series>* out) const {
    const size_t r = choose_resolution(0, cutoffs_.front() - kLookbackS);
    const int64_t rs = engine_.resolutions()[r].step_s;
    const int64_t lookback = std::max(kLookbackS, rs);
    std::vector<std::vector<StoredBucket>> buckets;
    if (auto err = read(leaf, r, bucket_start(cutoffs_.front() - lookback - 1, rs), cutoffs_.back(),
                        &buckets))
      return err;
    const int64_t fine_step = engine_.resolutions()[0].step_s;
    std::map<int64_t, std::vector<std::vector<StoredBucket>>> edge_seconds;  // by second
    auto edge_value = [&](size_t i, int64_t second) -> Result<std::optional<double>> {
      if (r == 0 || fine_step != 1 || horizon(0) > second) return std::optional<double>();
      auto it = edge_seconds.find(second);
      if (it == edge_seconds.end()) {
        std::vector<std::vector<StoredBucket>> one;
        if (auto err = read(leaf, 0, second, second + 1, &one))
          return Status::invalid_argument(err->message);
        it = edge_seconds.emplace(second, std::move(one)).first;
      }
      for (const auto& b : it->second[i])
        if (b.time == second && b.agg.count > 0) return std::optional<double>(b.agg.last);
      return std::optional<double>();
    };
    for (size_t i = 0; i < leaf.series.size(); ++i) {
      const auto& bs = buckets[i];
      Series s{leaf.labels[i], std::vector<std::optional<double>>(times_.size())};
      for (size_t t = 0; t < cutoffs_.size(); ++t) {
        const int64_t c = cutoffs_[t];
        // The first second whose end is in [t - lookback, t] (t may have a fraction).
        const int64_t t_ms = times_[t] - lookback * 1000;
        const int64_t from = t_ms >= 0 ? (t_ms + 999) / 1000 : t_ms / 1000;
        auto it = std::upper_bound(bs.begin(), bs.end(), c - rs,
                                   [](int64_t x, const StoredBucket& b) { return x < b.time; });
        while (it != bs.begin()) {
          --it;
          if (it->time + rs < from) break;  // ended before [t - lookback, t]
          if (it->agg.count == 0) continue;
          if (it->time + rs == from && rs > 1) {
            auto v = edge_value(i, from - 1);
            if (!v) return from_status(v.status());
            s.v[t] = *v;
            break;
          }
          s.v[t] = it->agg.last;
          break;
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
      if (auto err = select_leaf(engine_, kMinQueryTime, sel, e, false, &leaf)) return err;
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

  const Deadline deadline_;
  const QueryEngine& engine_;
  const SeriesCatalog& catalog_;
  const Clock& clock_;
  const NameTable& names_;
  std::vector<int64_t> times_;    // ms
  std::vector<int64_t> cutoffs_;  // s
  int64_t step_ms_ = 0;
  int64_t step_s_ = 0;
  int64_t start_ms_ = 0, end_ms_ = 0;
  bool shifted_ = false;  // offset and @ already applied
  bool ordered_ = false;
};
}  // namespace

MaybeError evaluate(const EvalContext& ctx, const Node& root, Value* out) {
  const NameTable names(ctx.catalog);
  Evaluator ev(ctx.engine, ctx.catalog, ctx.clock, names, ctx.times_ms, ctx.step_ms,
               ctx.times_ms.front(), ctx.times_ms.back(), ctx.deadline);
  if (auto e = ev.eval(root, out)) return e;
  out->ordered = ev.ordered();
  return std::nullopt;
}

}  // namespace tally::collector::prom
