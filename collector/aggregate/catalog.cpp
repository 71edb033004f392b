#include "aggregate/catalog.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <unordered_map>
#include <unordered_set>

namespace tally::collector {
namespace {

Status kind_conflict(std::string_view metric, Kind have, Kind want) {
  return Status::invalid_argument("metric '" + std::string(metric) + "' is a " + kind_name(have) +
                                  ", not a " + kind_name(want));
}

// Records live in blocks aligned to their size, each headed by its catalog, so a record finds
// its catalog from its own address instead of carrying an 8-byte pointer.
constexpr size_t kRecordBlockBytes = size_t{1} << 18;
struct RecordBlockHead {
  const SeriesCatalog* owner;
};
constexpr size_t kRecordsPerBlock =
    (kRecordBlockBytes - sizeof(RecordBlockHead)) / sizeof(SeriesInfo);
constexpr uint64_t kMaxIds = uint64_t{1} << 32;  // ids and string ids are stored as uint32
constexpr size_t kRecordDirSize = (kMaxIds + kRecordsPerBlock - 1) / kRecordsPerBlock;
static_assert(sizeof(SeriesInfo) == 40,
              "SeriesInfo is the catalog's per-series record; keep it small");

SeriesInfo* record_in(void* block, size_t i) {
  auto* base = static_cast<char*>(block) + sizeof(RecordBlockHead);
  return reinterpret_cast<SeriesInfo*>(base) + i;
}

size_t kind_index(Kind k) {
  return static_cast<size_t>(static_cast<int>(k) - 1);
}

}  // namespace

template <typename T, size_t kPerBlock>
class SeriesCatalog::Blocks {
 public:
  explicit Blocks(uint64_t capacity) : dir_size_((capacity + kPerBlock - 1) / kPerBlock) {
    dir_ = static_cast<T**>(std::calloc(dir_size_, sizeof(T*)));
    if (!dir_) throw std::bad_alloc();
  }
  ~Blocks() {
    for (size_t i = 0; i < dir_size_; ++i) std::free(dir_[i]);
    std::free(dir_);
  }
  uint64_t capacity() const { return dir_size_ * kPerBlock; }
  // i must have been ensure()d.
  T* at(uint64_t i) const { return dir_[i / kPerBlock] + i % kPerBlock; }
  T* ensure(uint64_t i) {
    T*& b = dir_[i / kPerBlock];
    if (!b) {
      b = static_cast<T*>(std::malloc(kPerBlock * sizeof(T)));
      if (!b) throw std::bad_alloc();
    }
    return b + i % kPerBlock;
  }

 private:
  const size_t dir_size_;
  T** dir_;
};

class SeriesCatalog::FlatIndex {
 public:
  // The value v with hash h for which eq(v) holds, or 0.
  template <typename Eq>
  uint32_t find(uint64_t h, Eq&& eq) const {
    if (slots_.empty()) return 0;
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const uint32_t v = slots_[i];
      if (v == 0 || eq(v)) return v;
    }
  }
  template <typename HashOf>
  void insert(uint64_t h, uint32_t v, HashOf&& hash_of) {
    if ((used_ + 1) * 4 > slots_.size() * 3) {  // load at most 3/4
      std::vector<uint32_t> old(std::max<size_t>(16, slots_.size() * 2), 0);
      old.swap(slots_);
      for (uint32_t o : old)
        if (o) place(hash_of(o), o);
    }
    place(h, v);
    ++used_;
  }

 private:
  void place(uint64_t h, uint32_t v) {
    const size_t mask = slots_.size() - 1;
    size_t i = h & mask;
    while (slots_[i]) i = (i + 1) & mask;
    slots_[i] = v;
  }
  std::vector<uint32_t> slots_;
  size_t used_ = 0;
};

// Interned strings: ids from 1, each string stored once as [length][bytes] in 1 MiB blocks.
class SeriesCatalog::StringPool {
 public:
  static constexpr size_t kBlock = size_t{1} << 20;
  static constexpr size_t kMaxLen = 65535;

  StringPool() : bytes_(kMaxIds), offsets_(kMaxIds) {}

  std::string_view at(uint32_t id) const {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes_.at(*offsets_.at(id)));
    if (p[0] < 255) return {reinterpret_cast<const char*>(p + 1), p[0]};
    return {reinterpret_cast<const char*>(p + 3), static_cast<size_t>(p[1] | (p[2] << 8))};
  }
  uint32_t find(std::string_view s) const {
    return index_.find(hash(s), [&](uint32_t id) { return at(id) == s; });
  }
  Result<uint32_t> intern(std::string_view s) {
    if (uint32_t id = find(s)) return id;
    if (s.size() > kMaxLen)
      return Status::invalid_argument("a name or tag longer than 65535 bytes");
    const size_t head = s.size() < 255 ? 1 : 3;
    const size_t need = head + s.size();
    if (used_ % kBlock + need > kBlock) used_ += kBlock - used_ % kBlock;  // never straddle blocks
    if (used_ + need > bytes_.capacity() || next_ >= kMaxIds)
      return Status::unavailable("string pool full");
    auto* p = reinterpret_cast<unsigned char*>(bytes_.ensure(used_));
    if (head == 1) {
      p[0] = static_cast<unsigned char>(s.size());
    } else {
      p[0] = 255;
      p[1] = static_cast<unsigned char>(s.size() & 0xff);
      p[2] = static_cast<unsigned char>(s.size() >> 8);
    }
    std::memcpy(p + head, s.data(), s.size());
    const auto id = static_cast<uint32_t>(next_++);
    *offsets_.ensure(id) = static_cast<uint32_t>(used_);
    used_ += need;
    index_.insert(hash(s), id, [&](uint32_t o) { return hash(at(o)); });
    return id;
  }
  size_t size() const { return next_ - 1; }

 private:
  static uint64_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  Blocks<char, kBlock> bytes_;
  Blocks<uint32_t, 65536> offsets_;
  FlatIndex index_;
  uint64_t used_ = 0;
  uint64_t next_ = 1;
};

TagRef TagsView::iterator::operator*() const {
  return {c_->string_at(p_[0]), c_->string_at(p_[1])};
}

bool TagsView::operator==(const Tags& t) const {
  if (t.size() != n_) return false;
  for (size_t i = 0; i < n_; ++i) {
    if (c_->string_at(pairs_[2 * i]) != t[i].key || c_->string_at(pairs_[2 * i + 1]) != t[i].value)
      return false;
  }
  return true;
}

const SeriesCatalog* SeriesInfo::owner() const {
  auto base = reinterpret_cast<uintptr_t>(this) & ~(uintptr_t{kRecordBlockBytes} - 1);
  return reinterpret_cast<const RecordBlockHead*>(base)->owner;
}

std::string_view SeriesInfo::metric() const {
  return owner()->string_at(metric_);
}

TagsView SeriesInfo::tags() const {
  const SeriesCatalog* c = owner();
  return {c, ntags_ ? c->tag_pairs_->at(tags_at_) : nullptr, ntags_};
}

SeriesDef SeriesInfo::def() const {
  return {id, hash, shard, kind, std::string(metric()), tags().materialize()};
}

SeriesCatalog::SeriesCatalog(uint32_t shard_count)
    : shard_count_(shard_count),
      strings_(std::make_unique<StringPool>()),
      tag_pairs_(std::make_unique<Blocks<uint32_t, 65536>>(kMaxIds)),
      by_hash_(std::make_unique<FlatIndex>()),
      next_slot_(shard_count, std::array<uint32_t, 3>{0, 0, 0}) {
  record_blocks_ = static_cast<void**>(std::calloc(kRecordDirSize, sizeof(void*)));
  if (!record_blocks_) throw std::bad_alloc();
}

SeriesCatalog::~SeriesCatalog() {
  for (size_t i = 0; i < kRecordDirSize; ++i) std::free(record_blocks_[i]);
  std::free(record_blocks_);
}

std::string_view SeriesCatalog::string_at(uint32_t id) const {
  return strings_->at(id);
}

const SeriesInfo* SeriesCatalog::record(uint64_t id) const {
  if (id == 0 || id >= kMaxIds) return nullptr;
  void* block = record_blocks_[id / kRecordsPerBlock];
  if (!block) return nullptr;
  const SeriesInfo* r = record_in(block, id % kRecordsPerBlock);
  return r->id == id ? r : nullptr;
}

const SeriesInfo* SeriesCatalog::lookup(uint64_t hash, std::string_view metric,
                                        const Tags& tags) const {
  const uint32_t id = by_hash_->find(hash, [&](uint32_t v) {
    const SeriesInfo* r = record(v);
    return r->hash == hash && string_at(r->metric_) == metric && r->tags() == tags;
  });
  return id ? record(id) : nullptr;
}

Result<const SeriesInfo*> SeriesCatalog::insert(uint64_t id, uint64_t hash, std::string_view metric,
                                                const Tags& tags, Kind kind) {
  if (id == 0 || id >= kMaxIds)
    return Status::invalid_argument("series id " + std::to_string(id) + " out of range");
  if (kind != Kind::kCounter && kind != Kind::kGauge && kind != Kind::kDistribution)
    return Status::invalid_argument("unknown kind");
  if (tags.size() > 255) return Status::invalid_argument("too many tags");
  auto m = strings_->intern(metric);
  if (!m) return m.status();
  std::array<uint32_t, 2 * 255> ids;
  for (size_t i = 0; i < tags.size(); ++i) {
    auto k = strings_->intern(tags[i].key);
    if (!k) return k.status();
    auto v = strings_->intern(tags[i].value);
    if (!v) return v.status();
    ids[2 * i] = *k;
    ids[2 * i + 1] = *v;
  }
  uint64_t at = tag_pairs_used_;
  const size_t n = 2 * tags.size();
  if (n) {
    if (at % 65536 + n > 65536) at += 65536 - at % 65536;  // a series' pairs stay in one block
    if (at + n > tag_pairs_->capacity()) return Status::unavailable("tag table full");
    std::memcpy(tag_pairs_->ensure(at), ids.data(), n * sizeof(uint32_t));
    tag_pairs_used_ = at + n;
  }

  void*& block = record_blocks_[id / kRecordsPerBlock];
  if (!block) {
    block = std::aligned_alloc(kRecordBlockBytes, kRecordBlockBytes);
    if (!block) throw std::bad_alloc();
    std::memset(block, 0, kRecordBlockBytes);
    static_cast<RecordBlockHead*>(block)->owner = this;
  }
  SeriesInfo* r = record_in(block, id % kRecordsPerBlock);
  r->id = id;
  r->hash = hash;
  r->shard = shard_of(hash);
  r->kind = kind;
  r->slot = next_slot_[r->shard][kind_index(kind)]++;
  r->metric_ = *m;
  r->tags_at_ = static_cast<uint32_t>(at);
  r->ntags_ = static_cast<uint32_t>(tags.size());
  by_hash_->insert(hash, static_cast<uint32_t>(id), [&](uint32_t v) { return record(v)->hash; });
  auto e = by_metric_.find(metric);
  if (e == by_metric_.end())
    e = by_metric_.emplace(std::string(metric), MetricEntry{kind, {}}).first;
  e->second.kind = kind;
  e->second.ids.push_back(static_cast<uint32_t>(id));
  ++size_;
  return r;
}

Status SeriesCatalog::check(std::string_view metric, Kind kind) const {
  ReaderLock lock(mu_);
  auto it = by_metric_.find(metric);
  if (it != by_metric_.end() && it->second.kind != kind)
    return kind_conflict(metric, it->second.kind, kind);
  return Status::ok();
}

Result<const SeriesInfo*> SeriesCatalog::find(std::string_view metric, const Tags& tags,
                                              Kind kind) const {
  uint64_t hash = series_hash(series_key(metric, tags));
  ReaderLock lock(mu_);
  auto m = by_metric_.find(metric);
  if (m != by_metric_.end() && m->second.kind != kind)
    return kind_conflict(metric, m->second.kind, kind);
  if (const SeriesInfo* r = lookup(hash, metric, tags)) return r;
  return Status::not_found("no such series");
}

Result<const SeriesInfo*> SeriesCatalog::get_or_create(std::string_view metric, const Tags& tags,
                                                       Kind kind, bool* created) {
  CreateRefusal refused;
  return get_or_create(metric, tags, kind, CreateBounds{}, created, &refused);
}

Result<const SeriesInfo*> SeriesCatalog::get_or_create(std::string_view metric, const Tags& tags,
                                                       Kind kind, const CreateBounds& bounds,
                                                       bool* created, CreateRefusal* refused) {
  *created = false;
  *refused = CreateRefusal::kNone;
  if (auto found = find(metric, tags, kind); found.has_value())
    return found;
  else if (found.status().code() != StatusCode::kNotFound)
    return found.status();

  uint64_t hash = series_hash(series_key(metric, tags));
  WriterLock lock(mu_);
  // Re-check under the write lock: another thread may have created it meanwhile.
  auto m = by_metric_.find(metric);
  if (m != by_metric_.end() && m->second.kind != kind)
    return kind_conflict(metric, m->second.kind, kind);
  if (const SeriesInfo* r = lookup(hash, metric, tags)) return r;
  if (bounds.max_per_metric && m != by_metric_.end() &&
      m->second.ids.size() >= bounds.max_per_metric) {
    *refused = CreateRefusal::kPerMetric;
    return static_cast<const SeriesInfo*>(nullptr);
  }
  if (bounds.max_total && size_ >= bounds.max_total) {
    *refused = CreateRefusal::kTotal;
    return static_cast<const SeriesInfo*>(nullptr);
  }
  auto r = insert(next_id_, hash, metric, tags, kind);
  if (!r) return r.status();
  ++next_id_;
  *created = true;
  return r;
}

Status SeriesCatalog::restore(const SeriesDef& def) {
  WriterLock lock(mu_);
  if (record(def.id)) return Status::ok();
  auto r = insert(def.id, def.hash, def.metric, def.tags, def.kind);
  if (!r) return r.status();
  if (def.id >= next_id_) next_id_ = def.id + 1;
  return Status::ok();
}

const SeriesInfo* SeriesCatalog::by_id(uint64_t id) const {
  ReaderLock lock(mu_);
  return record(id);
}

std::vector<const SeriesInfo*> SeriesCatalog::series_of(std::string_view metric) const {
  ReaderLock lock(mu_);
  auto it = by_metric_.find(metric);
  if (it == by_metric_.end()) return {};
  std::vector<const SeriesInfo*> out;
  out.reserve(it->second.ids.size());
  for (uint32_t id : it->second.ids) out.push_back(record(id));
  return out;
}

std::vector<MetricSummary> SeriesCatalog::metrics() const {
  ReaderLock lock(mu_);
  std::vector<MetricSummary> out;
  out.reserve(by_metric_.size());
  for (const auto& [name, entry] : by_metric_) out.push_back({name, entry.kind, entry.ids.size()});
  return out;
}

std::optional<Kind> SeriesCatalog::kind_of(std::string_view metric) const {
  ReaderLock lock(mu_);
  auto it = by_metric_.find(metric);
  if (it == by_metric_.end()) return std::nullopt;
  return it->second.kind;
}

size_t SeriesCatalog::size() const {
  ReaderLock lock(mu_);
  return size_;
}

CatalogCardinality SeriesCatalog::cardinality(size_t top) const {
  ReaderLock lock(mu_);
  CatalogCardinality out;
  out.series = size_;
  out.metrics = by_metric_.size();
  for (const auto& [name, entry] : by_metric_)
    out.top_metrics.push_back({name, entry.kind, entry.ids.size()});
  auto by_series = [](const MetricSummary& a, const MetricSummary& b) {
    return a.series != b.series ? a.series > b.series : a.name < b.name;
  };
  if (out.top_metrics.size() > top) {
    std::partial_sort(out.top_metrics.begin(), out.top_metrics.begin() + static_cast<long>(top),
                      out.top_metrics.end(), by_series);
    out.top_metrics.resize(top);
  } else {
    std::sort(out.top_metrics.begin(), out.top_metrics.end(), by_series);
  }
  // Distinct values per key, by interned string id (no string is copied while counting).
  struct KeyCount {
    std::unordered_set<uint32_t> values;
    size_t series = 0;
  };
  std::unordered_map<uint32_t, KeyCount> keys;
  for (const auto& [name, entry] : by_metric_) {
    for (uint32_t id : entry.ids) {
      const SeriesInfo* r = record(id);
      if (!r || r->ntags_ == 0) continue;
      const uint32_t* p = tag_pairs_->at(r->tags_at_);
      for (uint32_t i = 0; i < r->ntags_; ++i) {
        auto& k = keys[p[2 * i]];
        k.values.insert(p[2 * i + 1]);
        ++k.series;
      }
    }
  }
  for (const auto& [key, k] : keys)
    out.top_tag_keys.push_back({std::string(string_at(key)), k.values.size(), k.series});
  auto by_values = [](const CatalogCardinality::TagKey& a, const CatalogCardinality::TagKey& b) {
    return a.values != b.values ? a.values > b.values : a.key < b.key;
  };
  std::sort(out.top_tag_keys.begin(), out.top_tag_keys.end(), by_values);
  if (out.top_tag_keys.size() > top) out.top_tag_keys.resize(top);
  return out;
}

size_t SeriesCatalog::interned_strings() const {
  ReaderLock lock(mu_);
  return strings_->size();
}

}  // namespace tally::collector
