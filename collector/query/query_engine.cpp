#include "query/query_engine.h"

#include <unordered_set>

#include <algorithm>
#include <cmath>
#include <future>
#include <limits>
#include <map>
#include <unordered_map>

namespace tally::collector {
namespace {

// The counter fast path keeps a groups x steps grid per shard: beyond this many cells (64 MiB of
// doubles) a query takes the general path.
constexpr size_t kMaxFastPathCells = size_t{8} << 20;
constexpr double kInf = std::numeric_limits<double>::infinity();

// Accumulates one group's step bucket from per-series step aggregates.
struct GroupAcc {
  double total = 0;     // counter totals / gauge sums
  double last_sum = 0;  // gauges: sum of each series' last
  uint64_t count = 0;
  uint64_t nseries = 0;
  double min = kInf, max = -kInf;
  Sketch sketch;

  void fold(const BucketAgg& a, Kind kind) {
    ++nseries;
    switch (kind) {
      case Kind::kCounter:
        total += a.sum;
        min = std::min(min, a.sum);
        max = std::max(max, a.sum);
        break;
      case Kind::kGauge:
        total += a.sum;
        last_sum += a.last;
        count += a.count;
        min = std::min(min, a.min);
        max = std::max(max, a.max);
        break;
      case Kind::kDistribution:
        if (a.sketch) sketch.merge(*a.sketch);
        break;
    }
  }

  std::optional<double> value(Fn fn, Kind kind, int64_t step) const {
    if (kind == Kind::kDistribution) {
      if (sketch.empty()) return std::nullopt;
      switch (fn) {
        case Fn::kSum:
          return sketch.sum();
        case Fn::kCount:
          return static_cast<double>(sketch.count());
        case Fn::kRate:
          return static_cast<double>(sketch.count()) / static_cast<double>(step);
        case Fn::kAvg:
          return sketch.sum() / static_cast<double>(sketch.count());
        case Fn::kMin:
          return sketch.min();
        case Fn::kMax:
          return sketch.max();
        case Fn::kP50:
          return sketch.quantile(0.5);
        case Fn::kP90:
          return sketch.quantile(0.9);
        case Fn::kP99:
          return sketch.quantile(0.99);
      }
    }
    if (nseries == 0) return std::nullopt;
    if (kind == Kind::kCounter) {
      switch (fn) {
        case Fn::kSum:
        case Fn::kCount:
          return total;
        case Fn::kRate:
          return total / static_cast<double>(step);
        case Fn::kAvg:
          return total / static_cast<double>(nseries);
        case Fn::kMin:
          return min;
        case Fn::kMax:
          return max;
        default:
          return std::nullopt;
      }
    }
    switch (fn) {  // gauge
      case Fn::kSum:
        return last_sum;
      case Fn::kCount:
        return static_cast<double>(count);
      case Fn::kAvg:
        return count ? total / static_cast<double>(count) : 0.0;
      case Fn::kMin:
        return min;
      case Fn::kMax:
        return max;
      default:
        return std::nullopt;
    }
  }
};

// Calls emit(step_start, per-series aggregate) for each step bucket that has data.
template <typename Emit>
void per_step(const std::vector<StoredBucket>& buckets, Kind kind, int64_t step, Emit&& emit) {
  size_t i = 0;
  while (i < buckets.size()) {
    int64_t s = bucket_start(buckets[i].time, step);
    BucketAgg acc = buckets[i].agg;
    size_t j = i + 1;
    for (; j < buckets.size() && bucket_start(buckets[j].time, step) == s; ++j)
      acc.merge(buckets[j].agg, kind);
    emit(s, acc);
    i = j;
  }
}

}  // namespace

Result<TagFilter> parse_filter(std::string_view text) {
  auto f = LabelMatcher::parse(text);
  if (!f) return Status::invalid_argument("filter " + f.status().message());
  if (auto s = validate_tag_key(f->name()); !s)
    return Status::invalid_argument("filter '" + std::string(text) + "': " + s.message());
  return f;
}

namespace {

template <typename TagRange>
bool matches_all(const std::vector<TagFilter>& filters, const TagRange& tags) {
  for (const auto& f : filters) {
    std::optional<std::string_view> v;
    for (const auto& t : tags) {
      if (t.key == f.name()) {
        v = std::string_view(t.value);
        break;
      }
    }
    if (!v && f.op() == LabelMatcher::Op::kEq) return false;
    if (!f.matches(v.value_or(std::string_view()))) return false;
  }
  return true;
}

}  // namespace

bool filter_matches(const std::vector<TagFilter>& filters, const Tags& tags) {
  return matches_all(filters, tags);
}
bool filter_matches(const std::vector<TagFilter>& filters, const TagsView& tags) {
  return matches_all(filters, tags);
}

std::vector<Sketch::Bin> coarsen_bins(const std::vector<Sketch::Bin>& bins, size_t max_bins) {
  if (max_bins == 0 || bins.size() <= max_bins) return bins;
  std::vector<Sketch::Bin> out;
  const size_t per = (bins.size() + max_bins - 1) / max_bins;
  for (size_t i = 0; i < bins.size(); i += per) {
    Sketch::Bin b = bins[i];
    for (size_t j = i + 1; j < std::min(bins.size(), i + per); ++j) {
      b.upper = bins[j].upper;
      b.count += bins[j].count;
    }
    out.push_back(b);
  }
  return out;
}

QueryEngine::QueryEngine(const SeriesCatalog& catalog, Router& router,
                         std::vector<Resolution> resolutions, const Clock& clock,
                         QueryLimits limits, SelfMetrics* metrics)
    : catalog_(catalog),
      router_(router),
      clock_(clock),
      own_limits_(std::make_unique<LiveLimits>([&] {
        LiveLimitValues v;
        v.input.query_max_points = limits.max_points;
        v.input.query_max_series = limits.max_series;
        v.input.query_max_samples = limits.max_samples;
        v.input.query_timeout_ms = limits.timeout_ms;
        v.resolutions = std::move(resolutions);
        return v;
      }())),
      limits_(*own_limits_),
      metrics_(metrics) {}

Result<std::pair<int64_t, size_t>> QueryEngine::plan(int64_t from, int64_t to, int64_t step,
                                                     int64_t points) const {
  // Clamped here too (query() clamps and counts): plan() is called with raw parameters, and
  // to - from of two unclamped times overflows.
  from = std::clamp(from, kMinQueryTime, kMaxQueryTime);
  to = std::clamp(to, kMinQueryTime, kMaxQueryTime);
  if (to <= from) return Status::invalid_argument("'to' must be after 'from'");
  const int64_t now = clock_.now_s();
  const auto lim = limits_.get();
  const std::vector<Resolution>& resolutions = lim->resolutions;
  auto covers = [&](size_t r) { return now - resolutions[r].retention_s <= from; };
  if (step > 0) {
    // The coarsest resolution that divides the step and still holds the start of the range.
    std::optional<size_t> best;
    for (size_t r = 0; r < resolutions.size(); ++r) {
      if (step % resolutions[r].step_s != 0) continue;
      if (covers(r) || !best) best = r;
    }
    if (!best) best = 0;
    if ((to - from) / step > lim->input.query_max_points)
      return over(Limit::kQueryPoints, "step " + std::to_string(step) + "s gives more than " +
                                           std::to_string(lim->input.query_max_points) +
                                           " points per series; use a larger step");
    return std::make_pair(step, *best);
  }
  if (points <= 0) points = 300;
  const int64_t raw = std::max<int64_t>(1, (to - from + points - 1) / points);
  // The finest resolution at least as coarse as the wanted step that holds the range's start.
  for (size_t r = 0; r < resolutions.size(); ++r) {
    if (resolutions[r].step_s >= raw && covers(r)) return std::make_pair(resolutions[r].step_s, r);
  }
  // Every resolution that holds the start is finer than wanted, or none holds it: use the
  // coarsest one with the step rounded up to its multiple.
  const size_t r = resolutions.size() - 1;
  const int64_t rs = resolutions[r].step_s;
  return std::make_pair((raw + rs - 1) / rs * rs, r);
}

Status QueryEngine::over(Limit l, std::string msg) const {
  if (metrics_) metrics_->hit(l);
  return Status::invalid_argument(std::move(msg) + " (limit " + limit_name(l) + ")");
}

RangeQuery QueryEngine::clamp_times(const RangeQuery& in) const {
  RangeQuery q = in;
  q.from = std::clamp(q.from, kMinQueryTime, kMaxQueryTime);
  q.to = std::clamp(q.to, kMinQueryTime, kMaxQueryTime);
  if ((q.from != in.from || q.to != in.to) && metrics_) metrics_->hit(Limit::kQueryRange);
  return q;
}

Status QueryEngine::check_budget(size_t series, size_t res, int64_t from, int64_t to) const {
  const auto lim = limits_.get();
  const std::vector<Resolution>& resolutions = lim->resolutions;
  if (static_cast<int64_t>(series) > lim->input.query_max_series)
    return over(Limit::kQuerySeries,
                "the query matches " + std::to_string(series) + " series; the limit is " +
                    std::to_string(lim->input.query_max_series) + "; add a filter");
  // Stored buckets it may read: series x buckets of the resolution in the range (checked: a
  // product that overflows is over any budget).
  // Nothing older than the resolution's retention is read, however early `from` is.
  const int64_t keep = resolutions[res].retention_s;
  if (keep > 0) from = std::max(from, clock_.now_s() - keep);
  const int64_t buckets = std::max<int64_t>(0, to - from) / resolutions[res].step_s + 1;
  int64_t samples = 0;
  if (__builtin_mul_overflow(static_cast<int64_t>(series), buckets, &samples) ||
      samples > lim->input.query_max_samples)
    return over(Limit::kQuerySamples, "the query would read up to " +
                                          (samples > 0 ? std::to_string(samples) : "too many") +
                                          " stored buckets; the limit is " +
                                          std::to_string(lim->input.query_max_samples) +
                                          "; narrow the range or add a filter");
  return Status::ok();
}

Status QueryEngine::check_deadline(int64_t started_ms) const {
  if (clock_.now_ms() - started_ms <= timeout_ms()) return Status::ok();
  return deadline_passed();
}

Status QueryEngine::deadline_passed() const {
  return over(Limit::kQueryDeadline, "the query ran past its deadline of " +
                                         std::to_string(timeout_ms()) +
                                         " ms; narrow the range or add a filter");
}

Result<std::shared_ptr<SeriesSet>> QueryEngine::series_of(std::string_view metric,
                                                          int64_t from_s) const {
  auto set = std::make_shared<SeriesSet>();
  // Memory first, then storage: a series that left memory before the first look was written as
  // expired before it left, so the second finds it; one in both is taken once.
  set->pin = catalog_.pin();
  set->series = catalog_.series_of(metric);
  if (!catalog_.has_stored(metric)) return set;
  const int64_t since = from_s <= kMinQueryTime ? std::numeric_limits<int64_t>::min()
                                                : from_s - limits_.get()->max_future_s;
  std::vector<SeriesDef> defs;
  for (size_t i = 0; i < router_.shard_count(); ++i) {
    ShardStore& store = router_.shard(i).store();
    auto reader = store.acquire_reader();
    if (!reader) return reader.status();
    const size_t before = defs.size();
    Status s = (*reader)->expired_series(metric, since, &defs);
    store.release_reader(std::move(*reader));
    if (!s) return s;
    for (size_t k = before; k < defs.size(); ++k) defs[k].shard = static_cast<uint32_t>(i);
  }
  if (defs.empty()) return set;
  std::unordered_set<uint64_t> in_memory;
  for (const SeriesInfo* s : set->series) in_memory.insert(s->id);
  for (const auto& d : defs) {
    if (in_memory.count(d.id)) continue;
    if (!set->stored) set->stored = std::make_shared<SeriesCatalog>(catalog_.shard_count());
    if (auto s = set->stored->restore(d); !s) return s;
    set->series.push_back(set->stored->by_id(d.id));
  }
  return set;
}

Result<QueryEngine::Matched> QueryEngine::match(const RangeQuery& q) const {
  auto kind = catalog_.kind_of(q.metric);
  if (!kind) return Status::not_found("unknown metric '" + q.metric + "'");
  auto set = series_of(q.metric, q.from);
  if (!set) return set.status();
  Matched m{*kind, {}, *set};
  for (const SeriesInfo* s : (*set)->series) {
    if (filter_matches(q.filters, s->tags())) m.series.push_back(s);
  }
  return m;
}

Status QueryEngine::read(const std::vector<const SeriesInfo*>& series, size_t res, int64_t from,
                         int64_t to, std::vector<std::vector<StoredBucket>>* out,
                         int64_t* watermark, const Deadline& deadline) const {
  out->assign(series.size(), {});
  std::vector<std::vector<size_t>> by_shard(router_.shard_count());
  for (size_t i = 0; i < series.size(); ++i) by_shard[series[i]->shard].push_back(i);
  struct Part {
    std::vector<const SeriesInfo*> series;
    std::vector<std::vector<StoredBucket>> buckets;
    int64_t watermark = 0;
    Status status;
  };
  std::vector<Part> parts(by_shard.size());
  auto run_shard = [&](size_t sh) {
    Part& p = parts[sh];
    for (size_t i : by_shard[sh]) p.series.push_back(series[i]);
    p.status = router_.shard(sh).read(p.series, res, from, to, &p.buckets, &p.watermark, deadline);
  };
  // Fan out to the shards that hold matching series; the calling thread takes the last one.
  std::vector<std::future<void>> futures;
  std::vector<size_t> busy;
  for (size_t sh = 0; sh < by_shard.size(); ++sh)
    if (!by_shard[sh].empty()) busy.push_back(sh);
  for (size_t k = 0; k + 1 < busy.size(); ++k)
    futures.push_back(std::async(std::launch::async, run_shard, busy[k]));
  if (!busy.empty()) run_shard(busy.back());
  for (auto& f : futures) f.wait();
  *watermark = std::numeric_limits<int64_t>::max();
  for (size_t sh : busy) {
    if (!parts[sh].status) return deadline.passed() ? deadline_passed() : parts[sh].status;
    *watermark = std::min(*watermark, parts[sh].watermark);
    for (size_t k = 0; k < by_shard[sh].size(); ++k)
      (*out)[by_shard[sh][k]] = std::move(parts[sh].buckets[k]);
  }
  if (busy.empty()) *watermark = clock_.now_s();
  return Status::ok();
}

Status QueryEngine::sum_counters(const std::vector<const SeriesInfo*>& series,
                                 const std::vector<uint32_t>& group_of, size_t groups, size_t res,
                                 const StepGrid& grid, std::vector<double>* totals,
                                 int64_t* watermark, const Deadline& deadline) const {
  const size_t cells = groups * grid.steps();
  struct Part {
    std::vector<const SeriesInfo*> series;
    std::vector<uint32_t> rows;
    std::vector<double> grid;
    int64_t watermark = 0;
    Status status;
  };
  std::vector<Part> parts(router_.shard_count());
  for (size_t i = 0; i < series.size(); ++i) {
    Part& p = parts[series[i]->shard];
    p.series.push_back(series[i]);
    p.rows.push_back(group_of[i]);
  }
  std::vector<size_t> busy;
  for (size_t sh = 0; sh < parts.size(); ++sh)
    if (!parts[sh].series.empty()) busy.push_back(sh);
  // The first busy shard adds straight into the totals; the others into grids of their own.
  totals->assign(cells, 0.0);
  auto run_shard = [&](size_t k) {
    Part& p = parts[busy[k]];
    double* out = totals->data();
    if (k > 0) {
      p.grid.assign(cells, 0.0);
      out = p.grid.data();
    }
    p.status = router_.shard(busy[k]).add_counter_sums(p.series, p.rows, res, grid, out,
                                                       &p.watermark, deadline);
  };
  std::vector<std::future<void>> futures;
  for (size_t k = 1; k < busy.size(); ++k)
    futures.push_back(std::async(std::launch::async, run_shard, k));
  if (!busy.empty()) run_shard(0);
  for (auto& f : futures) f.wait();
  *watermark = std::numeric_limits<int64_t>::max();
  for (size_t k = 0; k < busy.size(); ++k) {
    const Part& p = parts[busy[k]];
    if (!p.status) return deadline.passed() ? deadline_passed() : p.status;
    *watermark = std::min(*watermark, p.watermark);
    for (size_t c = 0; k > 0 && c < cells; ++c) (*totals)[c] += p.grid[c];
  }
  if (busy.empty()) *watermark = clock_.now_s();
  return Status::ok();
}

std::vector<char> QueryEngine::covered_steps(int64_t from, int64_t to, int64_t step) const {
  if (!coverage_) return {};
  const CoverageSet set = coverage_->snapshot();
  std::vector<char> out;
  bool all = true;
  for (int64_t t = from; t < to; t += step) {
    // A step partly covered counts as covered: the collector counted in part of it.
    const bool c = set.overlaps(t * 1000, (t + step) * 1000);
    all = all && c;
    out.push_back(c ? 1 : 0);
  }
  if (all) out.clear();
  return out;
}

Result<RangeResult> QueryEngine::range(const RangeQuery& asked) const {
  const int64_t started_ms = clock_.now_ms();
  // Checked between the phases and inside their loops (every 256 series, stored chunks or rows).
  const Deadline deadline(clock_, started_ms + timeout_ms());
  uint32_t ticks = 0;
  const RangeQuery q = clamp_times(asked);
  auto m = match(q);
  if (!m) return m.status();
  const Kind kind = m->kind;
  if (is_percentile(q.fn) && kind != Kind::kDistribution)
    return Status::invalid_argument(std::string(fn_name(q.fn)) + " needs a distribution; '" +
                                    q.metric + "' is a " + kind_name(kind));
  if (q.fn == Fn::kRate && kind == Kind::kGauge)
    return Status::invalid_argument("rate is not defined for a gauge");
  auto p = plan(q.from, q.to, q.step, q.points);
  if (!p) return p.status();
  const auto [step, res] = *p;
  RangeResult out;
  out.kind = kind;
  out.step = step;
  const auto lim = limits_.get();
  out.resolution = lim->resolutions[res].step_s;
  out.from = bucket_start(q.from, step);
  out.to = bucket_start(q.to - 1, step) + step;
  if ((out.to - out.from) / step > lim->input.query_max_points)
    return over(Limit::kQueryPoints, "the range has more than " +
                                         std::to_string(lim->input.query_max_points) + " steps");
  if (auto s = check_budget(m->series.size(), res, out.from, out.to); !s) return s;

  // Counter sums, rates and counts add bucket sums and nothing else: the fast path hands each shard
  // a grid of groups x steps and never builds a bucket, a map or a sketch.
  // Zero-filled only where the collector ran (coverage): a step it never covered that holds no
  // stored bucket is left out, as an empty gauge step is; a stored bucket is always returned.
  const bool zero_fill = kind == Kind::kCounter && is_additive(q.fn);
  const std::vector<char> covered =
      zero_fill ? covered_steps(out.from, out.to, step) : std::vector<char>();
  // The uncovered runs of steps [a, b) (step indexes): the fast path reads them again to tell a
  // stored bucket from nothing there; beyond kMaxGapReads runs the general path is cheaper.
  constexpr size_t kMaxGapReads = 16;
  std::vector<std::pair<size_t, size_t>> gaps;
  for (size_t k = 0; k < covered.size(); ++k) {
    if (covered[k]) continue;
    if (!gaps.empty() && gaps.back().second == k)
      gaps.back().second = k + 1;
    else
      gaps.emplace_back(k, k + 1);
  }
  if (zero_fill && gaps.size() <= kMaxGapReads) {
    std::vector<uint32_t> group_of(m->series.size());
    std::vector<Tags> keys;
    std::unordered_map<std::string, uint32_t> index;
    std::string sig;
    for (size_t i = 0; i < m->series.size(); ++i) {
      sig.clear();
      for (const auto& g : q.group_by) {
        for (const auto& t : m->series[i]->tags()) {
          if (t.key == g) sig.append(t.value).push_back(kKeySeparator);
        }
        sig.push_back('\x1e');
      }
      auto [it, added] = index.emplace(sig, static_cast<uint32_t>(keys.size()));
      if (added) {
        Tags key;
        for (const auto& g : q.group_by)
          for (const auto& t : m->series[i]->tags())
            if (t.key == g) key.push_back(t);
        keys.push_back(std::move(key));
      }
      group_of[i] = it->second;
    }
    const StepGrid grid{out.from, out.to, step};
    const size_t steps = grid.steps();
    if (keys.size() * steps <= kMaxFastPathCells) {
      std::vector<double> totals;
      int64_t wm = 0;
      if (auto s =
              sum_counters(m->series, group_of, keys.size(), res, grid, &totals, &wm, deadline);
          !s)
        return s;
      if (auto s = check_deadline(started_ms); !s) return s;
      // Which uncovered steps hold a stored bucket (of any value, 0 included).
      std::vector<char> stored(gaps.empty() ? 0 : keys.size() * steps, 0);
      for (const auto& [a, b] : gaps) {
        std::vector<std::vector<StoredBucket>> found;
        int64_t gap_wm = 0;
        const int64_t ga = out.from + static_cast<int64_t>(a) * step;
        const int64_t gb = out.from + static_cast<int64_t>(b) * step;
        if (auto s = read(m->series, res, ga, gb, &found, &gap_wm, deadline); !s) return s;
        for (size_t i = 0; i < found.size(); ++i)
          for (const auto& bk : found[i])
            stored[group_of[i] * steps +
                   static_cast<size_t>((bucket_start(bk.time, step) - out.from) / step)] = 1;
      }
      // Groups come out in Tags order, as the general path's std::map gives them.
      std::vector<uint32_t> order(keys.size());
      for (uint32_t g = 0; g < order.size(); ++g) order[g] = g;
      std::sort(order.begin(), order.end(),
                [&](uint32_t a, uint32_t b) { return keys[a] < keys[b]; });
      int64_t first_open = bucket_start(wm, step);
      if (first_open + step <= wm) first_open += step;
      for (uint32_t g : order) {
        SeriesResult sr;
        sr.group = keys[g];
        sr.points.reserve(steps);
        const double* row = totals.data() + g * steps;
        for (size_t k = 0; k < steps; ++k) {
          // Left out: not covered and nothing stored (a sum other than 0 means a bucket arrived
          // between the two reads, so it is kept).
          if (!covered.empty() && !covered[k] && !stored[g * steps + k] && row[k] == 0) continue;
          const double v = q.fn == Fn::kRate ? row[k] / static_cast<double>(step) : row[k];
          sr.points.emplace_back(out.from + static_cast<int64_t>(k) * step, v);
        }
        if (first_open < out.to && !sr.points.empty() && sr.points.back().first >= first_open)
          sr.partial_from = std::max(first_open, out.from);
        out.series.push_back(std::move(sr));
      }
      return out;
    }
  }

  std::vector<std::vector<StoredBucket>> buckets;
  int64_t wm = 0;
  if (auto s = read(m->series, res, out.from, out.to, &buckets, &wm, deadline); !s) return s;
  if (auto s = check_deadline(started_ms); !s) return s;

  // Group the series by their group-by tag values.
  std::map<Tags, std::map<int64_t, GroupAcc>> groups;
  for (size_t i = 0; i < m->series.size(); ++i) {
    if (deadline.passed_every(&ticks)) return deadline_passed();
    Tags key;
    for (const auto& g : q.group_by) {
      for (const auto& t : m->series[i]->tags()) {
        if (t.key == g) key.push_back(t);
      }
    }
    auto& g = groups[key];
    per_step(buckets[i], kind, step, [&](int64_t s, const BucketAgg& a) { g[s].fold(a, kind); });
  }
  for (auto& [key, steps] : groups) {
    if (deadline.passed_every(&ticks, 16)) return deadline_passed();
    SeriesResult sr;
    sr.group = key;
    if (zero_fill) {
      for (int64_t t = out.from; t < out.to; t += step) {
        auto it = steps.find(t);
        if (it == steps.end() && !covered.empty() &&
            !covered[static_cast<size_t>((t - out.from) / step)])
          continue;  // nobody was counting: a gap, not a zero
        sr.points.emplace_back(
            t, it == steps.end() ? 0.0 : it->second.value(q.fn, kind, step).value_or(0.0));
      }
    } else {
      for (const auto& [t, acc] : steps) {
        if (auto v = acc.value(q.fn, kind, step)) sr.points.emplace_back(t, *v);
      }
    }
    // Step buckets whose end is past the watermark still have open buckets in them.
    int64_t first_open = bucket_start(wm, step);
    if (first_open + step <= wm) first_open += step;
    if (first_open < out.to && !sr.points.empty() && sr.points.back().first >= first_open)
      sr.partial_from = std::max(first_open, out.from);
    out.series.push_back(std::move(sr));
  }
  return out;
}

Result<QueryEngine::Matched> QueryEngine::match_distribution(const RangeQuery& q,
                                                             std::string_view what) const {
  auto m = match(q);
  if (m && m->kind != Kind::kDistribution)
    return Status::invalid_argument(std::string(what) + " needs a distribution; '" + q.metric +
                                    "' is a " + kind_name(m->kind));
  return m;
}

Result<HistogramResult> QueryEngine::histogram(const RangeQuery& asked, size_t max_bins) const {
  const int64_t started_ms = clock_.now_ms();
  const RangeQuery q = clamp_times(asked);
  auto m = match_distribution(q, "a histogram");
  if (!m) return m.status();
  // One step over the whole range at the coarsest resolution that holds it.
  auto p = plan(q.from, q.to, 0, 1);
  if (!p) return p.status();
  const size_t res = p->second;
  const int64_t rs = limits_.get()->resolutions[res].step_s;
  HistogramResult out;
  out.from = bucket_start(q.from, rs);
  out.to = bucket_start(q.to - 1, rs) + rs;
  if (auto s = check_budget(m->series.size(), res, out.from, out.to); !s) return s;
  const Deadline deadline(clock_, started_ms + timeout_ms());
  std::vector<std::vector<StoredBucket>> buckets;
  int64_t wm = 0;
  if (auto s = read(m->series, res, out.from, out.to, &buckets, &wm, deadline); !s) return s;
  if (auto s = check_deadline(started_ms); !s) return s;
  Sketch all;
  uint32_t ticks = 0;
  for (const auto& series : buckets) {
    if (deadline.passed_every(&ticks)) return deadline_passed();
    for (const auto& b : series)
      if (b.agg.sketch) all.merge(*b.agg.sketch);
  }
  out.count = all.count();
  out.sum = all.sum();
  out.min = all.min();
  out.max = all.max();
  out.p50 = all.quantile(0.5);
  out.p90 = all.quantile(0.9);
  out.p99 = all.quantile(0.99);
  out.buckets = coarsen_bins(all.bins(), max_bins);
  return out;
}

Result<HeatmapResult> QueryEngine::heatmap(const RangeQuery& asked, size_t max_bins) const {
  const int64_t started_ms = clock_.now_ms();
  const RangeQuery q = clamp_times(asked);
  auto m = match_distribution(q, "a heatmap");
  if (!m) return m.status();
  auto p = plan(q.from, q.to, q.step, q.points);
  if (!p) return p.status();
  const auto [step, res] = *p;
  HeatmapResult out;
  out.step = step;
  out.from = bucket_start(q.from, step);
  out.to = bucket_start(q.to - 1, step) + step;
  const int64_t max_points = limits_.get()->input.query_max_points;
  if ((out.to - out.from) / step > max_points)
    return over(Limit::kQueryPoints,
                "the range has more than " + std::to_string(max_points) + " steps");
  if (auto s = check_budget(m->series.size(), res, out.from, out.to); !s) return s;
  const Deadline deadline(clock_, started_ms + timeout_ms());
  std::vector<std::vector<StoredBucket>> buckets;
  int64_t wm = 0;
  if (auto s = read(m->series, res, out.from, out.to, &buckets, &wm, deadline); !s) return s;
  if (auto s = check_deadline(started_ms); !s) return s;
  std::map<int64_t, Sketch> columns;
  uint32_t ticks = 0;
  for (const auto& series : buckets) {
    if (deadline.passed_every(&ticks)) return deadline_passed();
    per_step(series, Kind::kDistribution, step, [&](int64_t s, const BucketAgg& a) {
      if (a.sketch) columns[s].merge(*a.sketch);
    });
  }
  for (const auto& [t, sk] : columns) {
    out.columns.push_back({t, sk.count(), sk.quantile(0.5), sk.quantile(0.9), sk.quantile(0.99),
                           coarsen_bins(sk.bins(), max_bins)});
  }
  return out;
}

}  // namespace tally::collector
