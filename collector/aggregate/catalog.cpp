#include "aggregate/catalog.h"

#include <mutex>

namespace tally::collector {
namespace {

Status kind_conflict(const std::string& metric, Kind have, Kind want) {
  return Status::invalid_argument("metric '" + metric + "' is a " + kind_name(have) + ", not a " +
                                  kind_name(want));
}

}  // namespace

Status SeriesCatalog::check(const std::string& metric, Kind kind) const {
  std::shared_lock lock(mu_);
  auto it = by_metric_.find(metric);
  if (it != by_metric_.end() && it->second.kind != kind) return kind_conflict(metric, it->second.kind, kind);
  return Status::ok();
}

Result<const SeriesInfo*> SeriesCatalog::find(const std::string& metric, const Tags& tags, Kind kind) const {
  uint64_t hash = series_hash(series_key(metric, tags));
  std::shared_lock lock(mu_);
  auto m = by_metric_.find(metric);
  if (m != by_metric_.end() && m->second.kind != kind) return kind_conflict(metric, m->second.kind, kind);
  auto [lo, hi] = by_hash_.equal_range(hash);
  for (auto it = lo; it != hi; ++it) {
    if (it->second->metric == metric && it->second->tags == tags) return it->second;
  }
  return Status::not_found("no such series");
}

Result<const SeriesInfo*> SeriesCatalog::get_or_create(const std::string& metric, const Tags& tags, Kind kind,
                                                       bool* created) {
  *created = false;
  if (auto found = find(metric, tags, kind); found.has_value()) return found;
  else if (found.status().code() != StatusCode::kNotFound) return found.status();

  uint64_t hash = series_hash(series_key(metric, tags));
  std::unique_lock lock(mu_);
  // Re-check under the write lock: another thread may have created it meanwhile.
  auto m = by_metric_.find(metric);
  if (m != by_metric_.end() && m->second.kind != kind) return kind_conflict(metric, m->second.kind, kind);
  auto [lo, hi] = by_hash_.equal_range(hash);
  for (auto it = lo; it != hi; ++it) {
    if (it->second->metric == metric && it->second->tags == tags) return it->second;
  }
  auto info = std::make_unique<SeriesInfo>();
  info->id = next_id_++;
  info->hash = hash;
  info->shard = shard_of(hash);
  info->kind = kind;
  info->metric = metric;
  info->tags = tags;
  const SeriesInfo* p = info.get();
  by_hash_.emplace(hash, p);
  auto& entry = by_metric_[metric];
  entry.kind = kind;
  entry.series.push_back(p);
  by_id_.emplace(p->id, std::move(info));
  *created = true;
  return p;
}

void SeriesCatalog::restore(SeriesInfo info) {
  std::unique_lock lock(mu_);
  if (by_id_.count(info.id)) return;
  if (info.id >= next_id_) next_id_ = info.id + 1;
  auto owned = std::make_unique<SeriesInfo>(std::move(info));
  const SeriesInfo* p = owned.get();
  by_hash_.emplace(p->hash, p);
  auto& entry = by_metric_[p->metric];
  entry.kind = p->kind;
  entry.series.push_back(p);
  by_id_.emplace(p->id, std::move(owned));
}

const SeriesInfo* SeriesCatalog::by_id(uint64_t id) const {
  std::shared_lock lock(mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second.get();
}

std::vector<const SeriesInfo*> SeriesCatalog::series_of(const std::string& metric) const {
  std::shared_lock lock(mu_);
  auto it = by_metric_.find(metric);
  if (it == by_metric_.end()) return {};
  return it->second.series;
}

std::vector<MetricSummary> SeriesCatalog::metrics() const {
  std::shared_lock lock(mu_);
  std::vector<MetricSummary> out;
  out.reserve(by_metric_.size());
  for (const auto& [name, entry] : by_metric_) out.push_back({name, entry.kind, entry.series.size()});
  return out;
}

std::optional<Kind> SeriesCatalog::kind_of(const std::string& metric) const {
  std::shared_lock lock(mu_);
  auto it = by_metric_.find(metric);
  if (it == by_metric_.end()) return std::nullopt;
  return it->second.kind;
}

size_t SeriesCatalog::size() const {
  std::shared_lock lock(mu_);
  return by_id_.size();
}

}  // namespace tally::collector
