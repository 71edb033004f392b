#include "ingest/statsd_record.h"

#include <unordered_map>

#include "tally/common/wire.h"

namespace tally::collector {

std::string encode_statsd_record(const std::vector<ShardWork>& per_shard) {
  wire::Batch b;
  std::unordered_map<const SeriesInfo*, uint32_t> refs;
  auto ref_of = [&](const SeriesInfo* si) {
    auto [it, fresh] = refs.try_emplace(si, static_cast<uint32_t>(refs.size() + 1));
    if (fresh) {
      wire::SeriesDef* d = b.add_defs();
      d->set_ref(it->second);
      d->set_metric(std::string(si->metric()));
      d->set_kind(kind_to_proto(si->kind));
      for (TagRef t : si->tags()) {
        wire::Tag* tag = d->add_tags();
        tag->set_key(std::string(t.key));
        tag->set_value(std::string(t.value));
      }
    }
    return it->second;
  };
  auto* c = b.mutable_counters();
  auto* g = b.mutable_gauges();
  for (const ShardWork& w : per_shard) {
    // A series created in this interval without a point (its only line was refused) is defined
    // all the same, so replay creates it as the live path did.
    for (const SeriesInfo* si : w.new_series) ref_of(si);
    for (const CounterIn& p : w.counters) {
      c->add_refs(ref_of(p.series));
      c->add_times(p.time);
      c->add_values(p.value);
    }
    for (const GaugeIn& p : w.gauges) {
      g->add_refs(ref_of(p.series));
      g->add_times(p.time);
      g->add_last(p.last);
      g->add_min(p.min);
      g->add_max(p.max);
      g->add_sum(p.sum);
      g->add_count(p.count);
    }
    for (const DistIn& p : w.dists) {
      wire::DistributionPoint* d = b.add_distributions();
      d->set_ref(ref_of(p.series));
      d->set_time(p.time);
      sketch_to_proto(p.sketch, d->mutable_sketch());
    }
  }
  return b.SerializeAsString();
}

Status decode_statsd_record(std::string_view payload, SeriesCatalog& catalog,
                            std::vector<ShardWork>* per_shard, uint64_t* points) {
  wire::Batch b;
  if (!b.ParseFromArray(payload.data(), static_cast<int>(payload.size())))
    return Status::corruption("statsd record does not decode");
  per_shard->assign(catalog.shard_count(), ShardWork{});
  std::unordered_map<uint32_t, const SeriesInfo*> refs;
  for (const wire::SeriesDef& d : b.defs()) {
    auto kind = kind_from_proto(d.kind());
    if (!kind) return Status::corruption("statsd record: series without a kind");
    Tags tags;
    tags.reserve(static_cast<size_t>(d.tags_size()));
    for (const wire::Tag& t : d.tags()) tags.push_back({t.key(), t.value()});
    bool created = false;
    auto info = catalog.get_or_create(d.metric(), tags, *kind, &created);
    if (!info) return info.status();
    if (created) (*per_shard)[(*info)->shard].new_series.push_back(*info);
    refs[d.ref()] = *info;
  }
  auto lookup = [&](uint32_t ref) -> const SeriesInfo* {
    auto it = refs.find(ref);
    return it == refs.end() ? nullptr : it->second;
  };
  const auto& c = b.counters();
  if (c.times_size() != c.refs_size() || c.values_size() != c.refs_size())
    return Status::corruption("statsd record: ragged counter columns");
  for (int i = 0; i < c.refs_size(); ++i) {
    const SeriesInfo* si = lookup(c.refs(i));
    if (!si || si->kind != Kind::kCounter)
      return Status::corruption("statsd record: bad counter ref");
    (*per_shard)[si->shard].counters.push_back({si, c.times(i), c.values(i)});
  }
  const auto& g = b.gauges();
  if (g.times_size() != g.refs_size() || g.last_size() != g.refs_size() ||
      g.min_size() != g.refs_size() || g.max_size() != g.refs_size() ||
      g.sum_size() != g.refs_size() || g.count_size() != g.refs_size())
    return Status::corruption("statsd record: ragged gauge columns");
  for (int i = 0; i < g.refs_size(); ++i) {
    const SeriesInfo* si = lookup(g.refs(i));
    if (!si || si->kind != Kind::kGauge) return Status::corruption("statsd record: bad gauge ref");
    (*per_shard)[si->shard].gauges.push_back(
        {si, g.times(i), g.last(i), g.min(i), g.max(i), g.sum(i), g.count(i)});
  }
  for (const wire::DistributionPoint& d : b.distributions()) {
    const SeriesInfo* si = lookup(d.ref());
    if (!si || si->kind != Kind::kDistribution)
      return Status::corruption("statsd record: bad distribution ref");
    auto sketch = sketch_from_proto(d.sketch());
    if (!sketch) return sketch.status();
    (*per_shard)[si->shard].dists.push_back({si, d.time(), std::move(*sketch)});
  }
  // Replay: a series' last point is the latest point the record holds for it (idle-series expiry).
  for (const ShardWork& w : *per_shard) {
    for (const CounterIn& p : w.counters) SeriesCatalog::touch(p.series, p.time);
    for (const GaugeIn& p : w.gauges) SeriesCatalog::touch(p.series, p.time);
    for (const DistIn& p : w.dists) SeriesCatalog::touch(p.series, p.time);
  }
  *points = static_cast<uint64_t>(c.refs_size() + g.refs_size() + b.distributions_size());
  return Status::ok();
}

}  // namespace tally::collector
