#include "ingest/batch_decoder.h"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <unordered_map>

#include "tally/common/wire.h"

namespace tally::collector {
namespace {

struct PendingDef {
  std::string metric;
  Tags tags;
  Kind kind;
};

DecodedBatch invalid(std::string reason) {
  DecodedBatch d;
  d.code = wire::Ack::INVALID;
  d.reason = std::move(reason);
  return d;
}

DecodedBatch over(Limit l, std::string reason) {
  DecodedBatch d = invalid(std::move(reason));
  d.limit_hit = l;
  return d;
}

// Key span of one store of a wire sketch, read without building anything.
int64_t key_span(const google::protobuf::RepeatedField<int32_t>& keys) {
  if (keys.empty()) return 0;
  auto [lo, hi] = std::minmax_element(keys.begin(), keys.end());
  return static_cast<int64_t>(*hi) - static_cast<int64_t>(*lo);
}

}  // namespace

DecodedBatch decode_batch(const wire::Batch& batch, ProducerTable& producers,
                          SeriesCatalog& catalog, const IngestLimits& limits, int64_t now_s,
                          CardinalityGuard* guard) {
  const uint64_t pid = batch.producer_id();
  // Phase 0: the decoded size, before anything is built for it.
  const int64_t points = int64_t{batch.counters().refs_size()} + batch.gauges().refs_size() +
                         batch.distributions_size();
  if (points > limits.max_points)
    return over(Limit::kBatchPoints, "batch of " + std::to_string(points) +
                                         " points is above the limit of " +
                                         std::to_string(limits.max_points));
  if (batch.defs_size() > limits.max_defs)
    return over(Limit::kBatchDefs, "batch of " + std::to_string(batch.defs_size()) +
                                       " series definitions is above the limit of " +
                                       std::to_string(limits.max_defs));
  for (const auto& d : batch.distributions()) {
    const auto& sk = d.sketch();
    const int64_t bins = int64_t{sk.pos_keys_size()} + sk.neg_keys_size();
    if (bins > limits.max_sketch_bins)
      return over(Limit::kSketchBins, "distribution point for series ref " +
                                          std::to_string(d.ref()) + " has " + std::to_string(bins) +
                                          " bins; the limit is " +
                                          std::to_string(limits.max_sketch_bins));
    const int64_t span = std::max(key_span(sk.pos_keys()), key_span(sk.neg_keys()));
    if (span > limits.max_sketch_key_span)
      return over(Limit::kSketchKeySpan, "distribution point for series ref " +
                                             std::to_string(d.ref()) + " spans " +
                                             std::to_string(span) + " sketch keys; the limit is " +
                                             std::to_string(limits.max_sketch_key_span));
  }
  // Phase 1: check everything, change nothing.
  std::unordered_map<uint32_t, PendingDef> defs;
  for (const auto& d : batch.defs()) {
    PendingDef def;
    def.metric = d.metric();
    if (auto s = validate_metric_name(def.metric); !s)
      return invalid("series ref " + std::to_string(d.ref()) + ": " + s.message());
    for (const auto& t : d.tags()) def.tags.push_back({t.key(), t.value()});
    if (auto s = validate_tags(def.tags); !s)
      return invalid("series ref " + std::to_string(d.ref()) + " (" + def.metric +
                     "): " + s.message());
    canonicalize(def.tags);
    auto kind = kind_from_proto(d.kind());
    if (!kind)
      return invalid("series ref " + std::to_string(d.ref()) + " (" + def.metric + ") has no kind");
    def.kind = *kind;
    if (auto s = catalog.check(def.metric, def.kind); !s) return invalid(s.message());
    auto [it, inserted] = defs.emplace(d.ref(), std::move(def));
    if (!inserted) return invalid("series ref " + std::to_string(d.ref()) + " is defined twice");
  }
  std::unordered_map<std::string_view, Kind> metric_kinds;
  for (const auto& [ref, def] : defs) {
    auto [it, inserted] = metric_kinds.emplace(def.metric, def.kind);
    if (!inserted && it->second != def.kind)
      return invalid("metric '" + def.metric + "' is defined with two kinds");
  }

  std::vector<uint32_t> unknown;
  auto kind_of_ref = [&](uint32_t ref) -> std::optional<Kind> {
    if (auto it = defs.find(ref); it != defs.end()) return it->second.kind;
    if (const SeriesInfo* s = producers.ref(pid, ref)) return s->kind;
    if (!limits.skip_unknown_refs) unknown.push_back(ref);
    return std::nullopt;
  };
  auto check_ref_kind = [&](uint32_t ref, Kind want, const char* column) -> std::string {
    auto k = kind_of_ref(ref);
    if (k && *k != want)
      return std::string(column) + " point for series ref " + std::to_string(ref) +
             ", which is a " + kind_name(*k);
    return {};
  };

  const auto& c = batch.counters();
  if (c.refs_size() != c.times_size() || c.refs_size() != c.values_size())
    return invalid("counter columns differ in length");
  for (int i = 0; i < c.refs_size(); ++i) {
    if (!std::isfinite(c.values(i))) return invalid("counter value is not finite");
    if (auto e = check_ref_kind(c.refs(i), Kind::kCounter, "counter"); !e.empty())
      return invalid(e);
  }
  const auto& g = batch.gauges();
  const int ng = g.refs_size();
  if (g.times_size() != ng || g.last_size() != ng || g.min_size() != ng || g.max_size() != ng ||
      g.sum_size() != ng || g.count_size() != ng)
    return invalid("gauge columns differ in length");
  for (int i = 0; i < ng; ++i) {
    if (!std::isfinite(g.last(i)) || !std::isfinite(g.min(i)) || !std::isfinite(g.max(i)) ||
        !std::isfinite(g.sum(i)))
      return invalid("gauge value is not finite");
    if (g.count(i) == 0 || g.min(i) > g.max(i))
      return invalid("gauge point has no samples or min above max");
    if (auto e = check_ref_kind(g.refs(i), Kind::kGauge, "gauge"); !e.empty()) return invalid(e);
  }
  std::vector<Sketch> sketches;
  sketches.reserve(batch.distributions_size());
  for (const auto& d : batch.distributions()) {
    auto s = sketch_from_proto(d.sketch());
    if (!s) return invalid("distribution point: " + s.status().message());
    if (s->count() == 0) return invalid("distribution point has no observations");
    if (auto e = check_ref_kind(d.ref(), Kind::kDistribution, "distribution"); !e.empty())
      return invalid(e);
    sketches.push_back(std::move(*s));
  }
  if (!unknown.empty()) {
    std::sort(unknown.begin(), unknown.end());
    unknown.erase(std::unique(unknown.begin(), unknown.end()), unknown.end());
    DecodedBatch d;
    d.code = wire::Ack::UNKNOWN_REF;
    d.reason = std::to_string(unknown.size()) + " unknown series refs; resend their definitions";
    d.unknown_refs = std::move(unknown);
    return d;
  }

  // Phase 2: create series, remember refs, route points.
  DecodedBatch out;
  out.per_shard.resize(catalog.shard_count());
  std::unordered_map<uint32_t, const SeriesInfo*> resolved;
  std::vector<std::pair<uint32_t, const SeriesInfo*>> new_refs;
  for (auto& [ref, def] : defs) {
    const SeriesInfo* prev = producers.ref(pid, ref);
    // A ref once folded into its metric's overflow series stays there, so replaying the log
    // decides as the first decoding did.
    if (guard && prev && prev->kind == def.kind && prev->metric() == def.metric &&
        CardinalityGuard::is_overflow(*prev)) {
      resolved[ref] = prev;
      continue;
    }
    bool created = false;
    const SeriesInfo* info = nullptr;
    if (guard) {
      auto a =
          guard->admit(def.metric, def.tags, def.kind, pid, now_s, limits.rate_limit_new_series);
      if (!a) return invalid(a.status().message());  // a concurrent kind conflict
      info = a->series;
      created = a->created;
    } else {
      auto r = catalog.get_or_create(def.metric, def.tags, def.kind, &created);
      if (!r) return invalid(r.status().message());  // a concurrent kind conflict
      info = *r;
    }
    resolved[ref] = info;
    if (created) out.per_shard[info->shard].new_series.push_back(info);
    if (prev != info) new_refs.emplace_back(ref, info);
  }
  if (auto s = producers.add_refs(pid, new_refs); !s) {
    // The series are in the catalog now: per_shard keeps their definitions (no points) so the
    // caller can hand them to their shards.
    out.code = wire::Ack::UNAVAILABLE;
    out.reason = "cannot record series refs: " + s.message();
    return out;
  }
  // Every point notes its series' last point (idle-series expiry): now, or while replaying the log
  // the point's own time (not later than now), so a series the log's tail brings back into memory
  // leaves again as its points say.
  auto lookup = [&](uint32_t ref, int64_t t) -> const SeriesInfo* {
    const SeriesInfo* s = nullptr;
    if (auto it = resolved.find(ref); it != resolved.end())
      s = it->second;
    else
      s = producers.ref(pid, ref);
    if (s)
      SeriesCatalog::touch(s, limits.skip_unknown_refs ? std::min(t, now_s) : now_s);
    else
      ++out.skipped_unknown;  // replay only: kind_of_ref let it through
    return s;
  };
  auto time_ok = [&](int64_t t) {
    if (t < now_s - limits.max_age_s) {
      ++out.rejected_old;
      return false;
    }
    if (t > now_s + limits.max_future_s) {
      ++out.rejected_future;
      return false;
    }
    return true;
  };
  for (int i = 0; i < c.refs_size(); ++i) {
    if (!time_ok(c.times(i))) continue;
    const SeriesInfo* s = lookup(c.refs(i), c.times(i));
    if (!s) continue;
    out.per_shard[s->shard].counters.push_back({s, c.times(i), c.values(i)});
    ++out.points;
  }
  for (int i = 0; i < ng; ++i) {
    if (!time_ok(g.times(i))) continue;
    const SeriesInfo* s = lookup(g.refs(i), g.times(i));
    if (!s) continue;
    out.per_shard[s->shard].gauges.push_back(
        {s, g.times(i), g.last(i), g.min(i), g.max(i), g.sum(i), g.count(i)});
    ++out.points;
  }
  for (int i = 0; i < batch.distributions_size(); ++i) {
    const auto& d = batch.distributions(i);
    if (!time_ok(d.time())) continue;
    const SeriesInfo* s = lookup(d.ref(), d.time());
    if (!s) continue;
    out.per_shard[s->shard].dists.push_back(
        {s, d.time(), std::move(sketches[static_cast<size_t>(i)])});
    ++out.points;
  }
  return out;
}

}  // namespace tally::collector
