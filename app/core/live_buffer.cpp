#include "live_buffer.h"

#include <algorithm>
#include <limits>

#include "tally/common/time_bucket.h"
#include "tally/common/wire.h"

namespace tally::dash {

Result<std::vector<LiveUpdate>> decodeLiveBatch(const void* data, size_t size) {
  wire::LiveBatch batch;
  if (size > std::numeric_limits<int>::max() || !batch.ParseFromArray(data, static_cast<int>(size)))
    return Status::corruption("live frame is not a LiveBatch");
  std::vector<LiveUpdate> out;
  out.reserve(batch.updates_size());
  for (const auto& p : batch.updates()) {
    LiveUpdate u;
    u.metric = p.metric();
    for (const auto& t : p.tags()) u.tags.push_back({t.key(), t.value()});
    canonicalize(u.tags);
    auto kind = kind_from_proto(p.kind());
    if (!kind) return Status::corruption("live update for " + u.metric + " has no kind");
    u.kind = *kind;
    u.resolutionS = p.resolution_s() > 0 ? p.resolution_s() : 1;
    u.time = p.time();
    u.state = static_cast<LiveUpdate::State>(p.state());
    u.value = p.value();
    u.sum = p.sum();
    u.count = p.count();
    u.min = p.min();
    u.max = p.max();
    if (p.has_sketch()) {
      auto s = sketch_from_proto(p.sketch());
      if (!s) return s.status();
      u.sketch = std::make_shared<const Sketch>(std::move(*s));
    }
    out.push_back(std::move(u));
  }
  return out;
}

std::string encodeLiveBatch(const std::vector<LiveUpdate>& updates) {
  wire::LiveBatch batch;
  for (const auto& u : updates) {
    auto* p = batch.add_updates();
    p->set_metric(u.metric);
    for (const auto& t : u.tags) {
      auto* tag = p->add_tags();
      tag->set_key(t.key);
      tag->set_value(t.value);
    }
    p->set_kind(kind_to_proto(u.kind));
    p->set_resolution_s(u.resolutionS);
    p->set_time(u.time);
    p->set_state(static_cast<wire::LiveUpdate::State>(u.state));
    p->set_value(u.value);
    p->set_sum(u.sum);
    p->set_count(u.count);
    p->set_min(u.min);
    p->set_max(u.max);
    if (u.sketch) sketch_to_proto(*u.sketch, p->mutable_sketch());
  }
  return batch.SerializeAsString();
}

LiveBuffer::LiveBuffer(Options options) : m_options(std::move(options)) {
  compileFilters();
}

void LiveBuffer::compileFilters() {
  // Once per panel query, not per update: this runs on the GUI thread for every live frame.
  m_matchers.clear();
  m_badFilter = false;
  for (const auto& f : m_options.filters) {
    auto m = f.compile();
    if (!m) {
      m_badFilter = true;  // the panel's query shows the error; the stream adds nothing
      continue;
    }
    m_matchers.push_back(std::move(*m));
  }
}

void LiveBuffer::reset(Options options, int64_t coverageStart) {
  m_options = std::move(options);
  compileFilters();
  m_coverageStart = coverageStart;
  m_series.clear();
  m_cells = 0;
  m_staleCorrection.reset();
}

bool LiveBuffer::apply(const LiveUpdate& u) {
  if (u.metric != m_options.metric) return false;
  if (m_badFilter) return false;
  for (const auto& m : m_matchers)
    if (!matchesTags(m, u.tags)) return false;
  if (u.time < m_coverageStart) {
    if (u.state == LiveUpdate::State::Correction)
      m_staleCorrection = std::min(m_staleCorrection.value_or(u.time), u.time);
    return true;
  }
  auto& s = m_series[series_key(u.metric, u.tags)];
  if (s.secs.empty()) {
    s.kind = u.kind;
    for (const auto& k : m_options.groupBy)
      for (const auto& t : u.tags)
        if (t.key == k) s.groupTags.push_back(t);
    canonicalize(s.groupTags);
  }
  // Coarser-than-1s updates (not sent today) are kept at their bucket start.
  auto [it, inserted] = s.secs.try_emplace(u.time);
  if (inserted) ++m_cells;
  Cell& c = it->second;
  c.value = u.value;
  c.sum = u.sum;
  c.count = u.count;
  c.min = u.min;
  c.max = u.max;
  c.partial = u.state == LiveUpdate::State::Partial;
  c.sketch = u.sketch;
  if (m_cells > m_options.maxCells) {
    int64_t oldest = std::numeric_limits<int64_t>::max(),
            newest = std::numeric_limits<int64_t>::min();
    for (const auto& [k, sc] : m_series)
      if (!sc.secs.empty()) {
        oldest = std::min(oldest, sc.secs.begin()->first);
        newest = std::max(newest, sc.secs.rbegin()->first);
      }
    pruneBefore(oldest + std::max<int64_t>(1, (newest - oldest) / 4));
  }
  return true;
}

void LiveBuffer::pruneBefore(int64_t t) {
  m_coverageStart = std::max(m_coverageStart, t);
  for (auto it = m_series.begin(); it != m_series.end();) {
    auto& secs = it->second.secs;
    auto end = secs.lower_bound(t);
    m_cells -= size_t(std::distance(secs.begin(), end));
    secs.erase(secs.begin(), end);
    it = secs.empty() ? m_series.erase(it) : std::next(it);
  }
}

std::optional<int64_t> LiveBuffer::takeStaleCorrection() {
  auto v = m_staleCorrection;
  m_staleCorrection.reset();
  return v;
}

std::optional<double> LiveBuffer::bucketValue(const std::vector<const SeriesCells*>& members,
                                              int64_t b, int64_t step, bool* partial) const {
  const Fn fn = m_options.fn;
  double total = 0, sum = 0, mn = std::numeric_limits<double>::infinity(), mx = -mn;
  uint64_t count = 0;
  int seriesWithData = 0;
  double minTotal = mn, maxTotal = -mn;
  Sketch merged;
  bool any = false;
  Kind kind = Kind::kCounter;
  for (const SeriesCells* s : members) {
    auto lo = s->secs.lower_bound(b), hi = s->secs.lower_bound(b + step);
    if (lo == hi) continue;
    any = true;
    kind = s->kind;
    ++seriesWithData;
    double seriesTotal = 0;
    const Cell* last = nullptr;
    for (auto it = lo; it != hi; ++it) {
      const Cell& c = it->second;
      if (c.partial) *partial = true;
      seriesTotal += c.value;
      sum += c.sum;
      count += c.count;
      mn = std::min(mn, c.min);
      mx = std::max(mx, c.max);
      if (c.sketch) merged.merge(*c.sketch);
      last = &c;
    }
    total += kind == Kind::kGauge ? last->value : seriesTotal;
    minTotal = std::min(minTotal, seriesTotal);
    maxTotal = std::max(maxTotal, seriesTotal);
  }
  if (!any) return std::nullopt;
  switch (kind) {
    case Kind::kCounter:
      switch (fn) {
        case Fn::kSum:
        case Fn::kCount:
          return total;
        case Fn::kRate:
          return total / double(step);
        case Fn::kAvg:
          return total / seriesWithData;
        case Fn::kMin:
          return minTotal;
        case Fn::kMax:
          return maxTotal;
        default:
          return std::nullopt;  // percentiles need a distribution
      }
    case Kind::kGauge:
      switch (fn) {
        case Fn::kSum:
          return total;
        case Fn::kCount:
          return double(count);
        case Fn::kAvg:
          return count ? sum / double(count) : 0.0;
        case Fn::kMin:
          return mn;
        case Fn::kMax:
          return mx;
        default:
          return std::nullopt;  // no rate, no percentiles
      }
    case Kind::kDistribution:
      switch (fn) {
        case Fn::kSum:
          return sum;
        case Fn::kCount:
          return double(count);
        case Fn::kRate:
          return double(count) / double(step);
        case Fn::kAvg:
          return count ? sum / double(count) : 0.0;
        case Fn::kMin:
          return mn;
        case Fn::kMax:
          return mx;
        case Fn::kP50:
        case Fn::kP90:
        case Fn::kP99:
          return merged.quantile(fn_quantile(fn));
      }
      return std::nullopt;
  }
  return std::nullopt;
}

void LiveBuffer::mergeInto(QueryResult& r, int64_t to) const {
  const int64_t step = r.step > 0 ? r.step : 1;
  const int64_t start = std::max(bucket_start(m_coverageStart + step - 1, step), r.from);
  const int64_t end = bucket_start(to + step - 1, step);
  const bool zeroFill = (r.kind == Kind::kCounter || !r.kind) && is_additive(m_options.fn);
  std::map<Tags, std::vector<const SeriesCells*>> groups;
  for (const auto& [key, s] : m_series) groups[s.groupTags].push_back(&s);
  for (const auto& [tags, members] : groups) {
    auto it = std::find_if(r.series.begin(), r.series.end(),
                           [&t = tags](const Series& s) { return s.tags == t; });
    if (it == r.series.end()) {
      Series s;
      s.tags = tags;
      if (zeroFill)
        for (int64_t b = r.from; b < std::min(start, r.to); b += step) s.points.push_back({b, 0});
      auto pos = std::lower_bound(r.series.begin(), r.series.end(), tags,
                                  [](const Series& a, const Tags& t) { return a.tags < t; });
      r.series.insert(pos, std::move(s));
    }
  }
  if (end <= start) return;
  for (auto& s : r.series) {
    std::map<int64_t, double> tail;
    auto firstTail = std::lower_bound(s.points.begin(), s.points.end(), start,
                                      [](const Point& p, int64_t t) { return p.t < t; });
    for (auto it = firstTail; it != s.points.end(); ++it) tail[it->t] = it->v;
    s.points.erase(firstTail, s.points.end());
    auto g = groups.find(s.tags);
    std::optional<int64_t> partialFrom;
    for (int64_t b = start; b < end; b += step) {
      bool partial = false;
      std::optional<double> v;
      if (g != groups.end()) v = bucketValue(g->second, b, step, &partial);
      if (v)
        tail[b] = *v;
      else if (zeroFill && b >= r.to)
        tail[b] = 0;
      if (partial && !partialFrom) partialFrom = b;
    }
    for (const auto& [t, v] : tail) s.points.push_back({t, v});
    // Buckets before `start` keep the HTTP answer's partial marker; later ones are the buffer's.
    if (!s.partialFrom || *s.partialFrom >= start) s.partialFrom = partialFrom;
  }
  r.to = std::max(r.to, end);
}

}  // namespace tally::dash
