#include "query/promql_eval.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

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
}  // namespace

MaybeError evaluate(const EvalContext& ctx, const Node& root, Value* out) {
  Evaluator ev(ctx.engine, ctx.catalog, ctx.clock, ctx.times_ms, ctx.step_ms);
  return ev.eval(root, out);
}

}  // namespace tally::collector::prom
