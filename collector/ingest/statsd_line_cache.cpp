#include "ingest/statsd_line_cache.h"

#include <xxhash.h>

#include <cstring>

namespace tally::collector {
namespace {

// What an entry costs beyond its strings: the entry, two slots (the table is at most half full),
// a dirty index.
constexpr size_t kEntryOverhead = sizeof(StatsdLineCache::Entry) + 2 * 16 + 4;

}  // namespace

StatsdLineCache::StatsdLineCache(size_t max_bytes) : max_bytes_(max_bytes) {
  slots_.resize(1024);
}

bool StatsdLineCache::split(std::string_view line, std::string_view* name, std::string_view* value,
                            std::string_view* rest) {
  const size_t bar = line.find('|');
  if (bar == std::string_view::npos) return false;
  const void* colon_at = std::memchr(line.data(), ':', bar);
  if (!colon_at) return false;
  const size_t colon = static_cast<size_t>(static_cast<const char*>(colon_at) - line.data());
  // "x:1:2|h" holds several values: the full parser reads those.
  if (std::memchr(line.data() + colon + 1, ':', bar - colon - 1)) return false;
  *name = line.substr(0, colon);
  *value = line.substr(colon + 1, bar - colon - 1);
  *rest = line.substr(bar);
  return true;
}

uint64_t StatsdLineCache::hash(std::string_view name, std::string_view rest) {
  return XXH3_64bits_withSeed(rest.data(), rest.size(), XXH3_64bits(name.data(), name.size()));
}

StatsdLineCache::Entry* StatsdLineCache::find(std::string_view name, std::string_view rest) {
  const uint64_t h = hash(name, rest);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.index == 0) return nullptr;
    if (s.hash != h) continue;
    Entry& e = entries_[s.index - 1];
    if (e.key.size() == name.size() + rest.size() &&
        std::memcmp(e.key.data(), name.data(), name.size()) == 0 &&
        std::memcmp(e.key.data() + name.size(), rest.data(), rest.size()) == 0)
      return &e;
  }
}

bool StatsdLineCache::add(std::string_view name, std::string_view rest, const StatsdSample& sample,
                          double scale, size_t per_sample_bytes, uint32_t tags_dropped,
                          uint32_t names_mapped) {
  size_t cost = kEntryOverhead + 2 * (name.size() + rest.size()) + sample.metric.size();
  for (const Tag& t : sample.tags) cost += sizeof(Tag) + t.key.size() + t.value.size();
  if (full_ || bytes_ + cost > max_bytes_ || entries_.size() + 1 >= UINT32_MAX) {
    full_ = true;  // cleared at the next take()
    return false;
  }
  if (find(name, rest)) return true;
  if (2 * (entries_.size() + 1) > slots_.size()) grow();
  Entry& e = entries_.emplace_back();
  e.key.reserve(name.size() + rest.size());
  e.key.append(name).append(rest);
  e.proto.metric = sample.metric;
  e.proto.tags = sample.tags;
  e.proto.type = StatsdType::kCounter;
  e.scale = scale;
  e.per_sample_bytes = per_sample_bytes;
  e.tags_dropped = tags_dropped;
  e.names_mapped = names_mapped;
  bytes_ += cost;
  const uint64_t h = hash(name, rest);
  const size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].index != 0) i = (i + 1) & mask;
  slots_[i] = {h, static_cast<uint32_t>(entries_.size())};
  return true;
}

void StatsdLineCache::grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.index == 0) continue;
    size_t i = s.hash & mask;
    while (slots_[i].index != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void StatsdLineCache::take(int64_t second, std::vector<StatsdSample>& out) {
  for (uint32_t index : dirty_) {
    Entry& e = entries_[index];
    StatsdSample& s = out.emplace_back();
    s.metric = e.proto.metric;
    s.tags = e.proto.tags;
    s.type = StatsdType::kCounter;
    s.value = e.sum;
    s.count = e.lines;
    s.timestamp_s = second;
    e.sum = 0;
    e.lines = 0;
  }
  dirty_.clear();
  if (full_) {
    entries_.clear();
    slots_.assign(1024, Slot{});
    bytes_ = 0;
    full_ = false;
  }
}

}  // namespace tally::collector
