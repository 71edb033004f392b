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

#include "tally/common/time_bucket.h"

namespace tally::collector {
namespace {

Status kind_conflict(std::string_view metric, Kind have, Kind want) {
  return Status::invalid_argument("metric '" + std::string(metric) + "' is a " + kind_name(have) +
                                  ", not a " + kind_name(want));
}

// Records live in blocks aligned to their size, each headed by its catalog, so a record finds
// its catalog from its own address instead of carrying an 8-byte pointer. Beside the records, a
// block holds each record's last-point time (uint32 seconds) and state (one byte).
constexpr size_t kRecordBlockBytes = size_t{1} << 18;
struct RecordBlockHead {
  const SeriesCatalog* owner;
  uint32_t live;  // records in use
  uint32_t unused;
};
constexpr size_t kRecordsPerBlock = (kRecordBlockBytes - sizeof(RecordBlockHead)) /
                                    (sizeof(SeriesInfo) + sizeof(uint32_t) + sizeof(uint8_t));
constexpr uint64_t kMaxIds = uint64_t{1} << 32;  // ids and string ids are stored as uint32
constexpr size_t kRecordDirSize = (kMaxIds + kRecordsPerBlock - 1) / kRecordsPerBlock;
static_assert(sizeof(SeriesInfo) == 40,
              "SeriesInfo is the catalog's per-series record; keep it small");

SeriesInfo* record_in(void* block, size_t i) {
  auto* base = static_cast<char*>(block) + sizeof(RecordBlockHead);
  return reinterpret_cast<SeriesInfo*>(base) + i;
}
char* block_of(const SeriesInfo* r) {
  return reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(r) &
                                 ~(uintptr_t{kRecordBlockBytes} - 1));
}
size_t index_in_block(const SeriesInfo* r) {
  return static_cast<size_t>(r - record_in(block_of(r), 0));
}
uint32_t* seen_at(const SeriesInfo* r) {
  char* b = block_of(r);
  return reinterpret_cast<uint32_t*>(b + sizeof(RecordBlockHead) +
                                     kRecordsPerBlock * sizeof(SeriesInfo)) +
         index_in_block(r);
}
uint8_t* state_at(const SeriesInfo* r) {
  char* b = block_of(r);
  return reinterpret_cast<uint8_t*>(b + sizeof(RecordBlockHead) +
                                    kRecordsPerBlock * (sizeof(SeriesInfo) + sizeof(uint32_t))) +
         index_in_block(r);
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
  size_t blocks() const { return dir_size_; }
  // i must have been ensure()d.
  T* at(uint64_t i) const { return dir_[i / kPerBlock] + i % kPerBlock; }
  T* ensure(uint64_t i) {
    T*& b = dir_[i / kPerBlock];
    if (!b) {
      b = static_cast<T*>(std::malloc(kPerBlock * sizeof(T)));
      if (!b) throw std::bad_alloc();
      ++allocated_;
    }
    return b + i % kPerBlock;
  }
  void release(size_t block) {
    if (dir_[block]) --allocated_;
    std::free(dir_[block]);
    dir_[block] = nullptr;
  }
  size_t bytes() const { return allocated_ * kPerBlock * sizeof(T); }

 private:
  const size_t dir_size_;
  T** dir_;
  size_t allocated_ = 0;
};

// Runs of T allocated in blocks (a run never straddles two); a block whose every run is freed is
// returned to the allocator, and its place is used again before a new one.
template <typename T, size_t kPerBlock>
class SeriesCatalog::Arena {
 public:
  explicit Arena(uint64_t capacity) : blocks_(capacity), live_(blocks_.blocks(), 0) {}
  T* at(uint64_t i) const { return blocks_.at(i); }
  Result<uint64_t> alloc(size_t n) {
    if (cur_ == kNone || off_ + n > kPerBlock) {
      if (cur_ != kNone && live_[cur_] == 0) {
        blocks_.release(cur_);
        free_.push_back(cur_);
      }
      cur_ = kNone;
      if (!free_.empty()) {
        cur_ = free_.back();
        free_.pop_back();
      } else if (next_ < blocks_.blocks()) {
        cur_ = next_++;
      } else {
        return Status::unavailable("catalog storage full");
      }
      off_ = 0;
    }
    const uint64_t at = cur_ * kPerBlock + off_;
    blocks_.ensure(at);
    off_ += n;
    live_[cur_] += static_cast<uint32_t>(n);
    return at;
  }
  void free(uint64_t at, size_t n) {
    const size_t b = at / kPerBlock;
    live_[b] -= static_cast<uint32_t>(n);
    if (live_[b] == 0 && b != cur_) {
      blocks_.release(b);
      free_.push_back(b);
    }
  }
  size_t bytes() const {
    return blocks_.bytes() + live_.capacity() * sizeof(uint32_t) +
           free_.capacity() * sizeof(size_t);
  }

 private:
  static constexpr size_t kNone = ~size_t{0};
  Blocks<T, kPerBlock> blocks_;
  std::vector<uint32_t> live_;  // per block: entries in use
  std::vector<size_t> free_;    // released blocks
  size_t cur_ = kNone, off_ = 0, next_ = 0;
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
  // Removes v (hash h); the entries after it in its probe run move back (no tombstones).
  template <typename HashOf>
  void erase(uint64_t h, uint32_t v, HashOf&& hash_of) {
    if (slots_.empty()) return;
    const size_t mask = slots_.size() - 1;
    size_t i = h & mask;
    while (slots_[i] != v) {
      if (slots_[i] == 0) return;
      i = (i + 1) & mask;
    }
    slots_[i] = 0;
    --used_;
    for (size_t j = (i + 1) & mask; slots_[j]; j = (j + 1) & mask) {
      const size_t home = hash_of(slots_[j]) & mask;
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        slots_[j] = 0;
        i = j;
      }
    }
  }

 private:
  void place(uint64_t h, uint32_t v) {
    const size_t mask = slots_.size() - 1;
    size_t i = h & mask;
    while (slots_[i]) i = (i + 1) & mask;
    slots_[i] = v;
  }

 public:
  size_t bytes() const { return slots_.capacity() * sizeof(uint32_t); }

 private:
  std::vector<uint32_t> slots_;
  size_t used_ = 0;
};

// Interned strings: ids from 1, each stored once as [length][bytes] in 1 MiB blocks and counted
// by the series that use it; a string no series uses is freed and its id used again.
class SeriesCatalog::StringPool {
 public:
  static constexpr size_t kBlock = size_t{1} << 20;
  static constexpr size_t kMaxLen = 65535;

  StringPool() : bytes_(kMaxIds), offsets_(kMaxIds), refs_(kMaxIds) {}

  std::string_view at(uint32_t id) const {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes_.at(*offsets_.at(id)));
    if (p[0] < 255) return {reinterpret_cast<const char*>(p + 1), p[0]};
    return {reinterpret_cast<const char*>(p + 3), static_cast<size_t>(p[1] | (p[2] << 8))};
  }
  uint32_t find(std::string_view s) const {
    return index_.find(hash(s), [&](uint32_t id) { return at(id) == s; });
  }
  // The id of s with one more reference.
  Result<uint32_t> intern(std::string_view s) {
    if (uint32_t id = find(s)) {
      ++*refs_.at(id);
      return id;
    }
    if (s.size() > kMaxLen)
      return Status::invalid_argument("a name or tag longer than 65535 bytes");
    const size_t head = s.size() < 255 ? 1 : 3;
    if (free_ids_.empty() && next_ >= kMaxIds) return Status::unavailable("string pool full");
    auto at = bytes_.alloc(head + s.size());
    if (!at) return at.status();
    auto* p = reinterpret_cast<unsigned char*>(bytes_.at(*at));
    if (head == 1) {
      p[0] = static_cast<unsigned char>(s.size());
    } else {
      p[0] = 255;
      p[1] = static_cast<unsigned char>(s.size() & 0xff);
      p[2] = static_cast<unsigned char>(s.size() >> 8);
    }
    std::memcpy(p + head, s.data(), s.size());
    uint32_t id;
    if (!free_ids_.empty()) {
      id = free_ids_.back();
      free_ids_.pop_back();
    } else {
      id = static_cast<uint32_t>(next_++);
    }
    *offsets_.ensure(id) = static_cast<uint32_t>(*at);
    *refs_.ensure(id) = 1;
    index_.insert(hash(s), id, [&](uint32_t o) { return hash(this->at(o)); });
    ++live_;
    return id;
  }
  // Drops one reference; the last one frees the string.
  void unref(uint32_t id) {
    if (--*refs_.at(id) != 0) return;
    const std::string_view s = at(id);
    index_.erase(hash(s), id, [&](uint32_t o) { return hash(this->at(o)); });
    bytes_.free(*offsets_.at(id), (s.size() < 255 ? 1 : 3) + s.size());
    free_ids_.push_back(id);
    --live_;
  }
  size_t size() const { return live_; }
  size_t bytes() const {
    return bytes_.bytes() + offsets_.bytes() + refs_.bytes() + index_.bytes() +
           free_ids_.capacity() * sizeof(uint32_t);
  }

 private:
  static uint64_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  Arena<char, kBlock> bytes_;
  Blocks<uint32_t, 65536> offsets_;
  Blocks<uint32_t, 65536> refs_;
  FlatIndex index_;
  std::vector<uint32_t> free_ids_;
  uint64_t next_ = 1;
  size_t live_ = 0;
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
  return reinterpret_cast<const RecordBlockHead*>(block_of(this))->owner;
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

SeriesCatalog::Pin& SeriesCatalog::Pin::operator=(Pin&& o) noexcept {
  if (this != &o) {
    release();
    c_ = o.c_;
    idx_ = o.idx_;
    o.c_ = nullptr;
  }
  return *this;
}

void SeriesCatalog::Pin::release() {
  if (c_) c_->readers_[idx_].fetch_sub(1);
  c_ = nullptr;
}

SeriesCatalog::Pin SeriesCatalog::pin() const {
  // Registered under the epoch it read; if the epoch moved meanwhile, again under the new one
  // (reclaim() may already have judged the old one free of readers).
  while (true) {
    const uint64_t e = epoch_.load();
    readers_[e & 1].fetch_add(1);
    if (epoch_.load() == e) return Pin(this, static_cast<uint32_t>(e & 1));
    readers_[e & 1].fetch_sub(1);
  }
}

SeriesCatalog::SeriesCatalog(uint32_t shard_count)
    : shard_count_(shard_count),
      strings_(std::make_unique<StringPool>()),
      tag_pairs_(std::make_unique<Arena<uint32_t, 65536>>(kMaxIds)),
      by_hash_(std::make_unique<FlatIndex>()),
      next_slot_(shard_count, std::array<uint32_t, 3>{0, 0, 0}),
      free_slots_(shard_count) {
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

SeriesCatalog::State SeriesCatalog::state_of(const SeriesInfo* r) {
  return static_cast<State>(std::atomic_ref<uint8_t>(*state_at(r)).load());
}

void SeriesCatalog::set_state(const SeriesInfo* r, State s) {
  std::atomic_ref<uint8_t>(*state_at(r)).store(s);
}

void SeriesCatalog::touch(const SeriesInfo* s, int64_t now_s) {
  std::atomic_ref<uint32_t> seen(*seen_at(s));
  const auto v = static_cast<uint32_t>(std::max<int64_t>(0, now_s));
  if (seen.load(std::memory_order_relaxed) != v) seen.store(v, std::memory_order_relaxed);
}

int64_t SeriesCatalog::last_point_s(const SeriesInfo* s) {
  return std::atomic_ref<uint32_t>(*seen_at(s)).load(std::memory_order_relaxed);
}

bool SeriesCatalog::is_live(const SeriesInfo* s) const {
  return state_of(s) == kLive;
}

SeriesInfo* SeriesCatalog::record(uint64_t id) const {
  if (id == 0 || id >= kMaxIds) return nullptr;
  void* block = record_blocks_[id / kRecordsPerBlock];
  if (!block) return nullptr;
  SeriesInfo* r = record_in(block, id % kRecordsPerBlock);
  return r->id == id ? r : nullptr;
}

SeriesInfo* SeriesCatalog::lookup(uint64_t hash, std::string_view metric, const Tags& tags) const {
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
  if (record(id)) return Status::internal("series id " + std::to_string(id) + " is in use");
  if (kind != Kind::kCounter && kind != Kind::kGauge && kind != Kind::kDistribution)
    return Status::invalid_argument("unknown kind");
  if (tags.size() > 255) return Status::invalid_argument("too many tags");
  // Every string taken here is given back if a later step fails.
  std::array<uint32_t, 1 + 2 * 255> ids;
  size_t taken = 0;
  auto undo = [&] {
    for (size_t i = 0; i < taken; ++i) strings_->unref(ids[i]);
  };
  auto m = strings_->intern(metric);
  if (!m) return m.status();
  ids[taken++] = *m;
  for (size_t i = 0; i < tags.size(); ++i) {
    auto k = strings_->intern(tags[i].key);
    if (!k) {
      undo();
      return k.status();
    }
    ids[taken++] = *k;
    auto v = strings_->intern(tags[i].value);
    if (!v) {
      undo();
      return v.status();
    }
    ids[taken++] = *v;
  }
  uint64_t at = 0;
  const size_t n = 2 * tags.size();
  if (n) {
    auto a = tag_pairs_->alloc(n);
    if (!a) {
      undo();
      return a.status();
    }
    at = *a;
    std::memcpy(tag_pairs_->at(at), ids.data() + 1, n * sizeof(uint32_t));
  }

  void*& block = record_blocks_[id / kRecordsPerBlock];
  if (!block) {
    block = std::aligned_alloc(kRecordBlockBytes, kRecordBlockBytes);
    if (!block) throw std::bad_alloc();
    std::memset(block, 0, kRecordBlockBytes);
    static_cast<RecordBlockHead*>(block)->owner = this;
  }
  ++static_cast<RecordBlockHead*>(block)->live;
  SeriesInfo* r = record_in(block, id % kRecordsPerBlock);
  r->id = id;
  r->hash = hash;
  r->shard = shard_of(hash);
  r->kind = kind;
  auto& free_slots = free_slots_[r->shard][kind_index(kind)];
  if (!free_slots.empty()) {
    r->slot = free_slots.back();
    free_slots.pop_back();
  } else {
    r->slot = next_slot_[r->shard][kind_index(kind)]++;
  }
  r->metric_ = *m;
  r->tags_at_ = static_cast<uint32_t>(at);
  r->ntags_ = static_cast<uint32_t>(tags.size());
  set_state(r, kLive);
  touch(r, SystemClock::instance().now_s());
  by_hash_->insert(hash, static_cast<uint32_t>(id), [&](uint32_t v) { return record(v)->hash; });
  auto e = by_metric_.find(metric);
  if (e == by_metric_.end())
    e = by_metric_.emplace(std::string(metric), MetricEntry{kind, {}, 0, false}).first;
  e->second.kind = kind;
  e->second.ids.push_back(static_cast<uint32_t>(id));
  ++e->second.live;
  ++size_;
  return r;
}

void SeriesCatalog::relink(SeriesInfo* r) {
  const State st = state_of(r);
  if (st == kLive) return;
  auto e = by_metric_.find(string_at(r->metric_));
  if (st == kDetached) {
    by_hash_->insert(r->hash, static_cast<uint32_t>(r->id),
                     [&](uint32_t v) { return record(v)->hash; });
    e->second.ids.push_back(static_cast<uint32_t>(r->id));
    detached_.erase(static_cast<uint32_t>(r->id));
  }
  if (st == kReleased) durable_.erase(static_cast<uint32_t>(r->id));
  set_state(r, kLive);
  ++e->second.live;
  ++size_;
  --expiring_;
  ++revived_;
}

void SeriesCatalog::free_record(SeriesInfo* r) {
  strings_->unref(r->metric_);
  if (r->ntags_) {
    const uint32_t* p = tag_pairs_->at(r->tags_at_);
    for (uint32_t i = 0; i < 2 * r->ntags_; ++i) strings_->unref(p[i]);
    tag_pairs_->free(r->tags_at_, 2 * r->ntags_);
  }
  free_slots_[r->shard][kind_index(r->kind)].push_back(r->slot);
  void*& block = record_blocks_[r->id / kRecordsPerBlock];
  *seen_at(r) = 0;
  set_state(r, kFree);
  std::memset(static_cast<void*>(r), 0, sizeof(SeriesInfo));
  if (--static_cast<RecordBlockHead*>(block)->live == 0) {
    std::free(block);
    block = nullptr;
  }
  --expiring_;
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
  if (const SeriesInfo* r = lookup(hash, metric, tags); r && state_of(r) == kLive) {
    touch(r, SystemClock::instance().now_s());
    return r;
  }
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
  const uint64_t hash = series_hash(series_key(metric, tags));
  const int64_t now = SystemClock::instance().now_s();
  while (true) {
    bool in_memory = false, stored = false;
    uint64_t detaches = 0;
    {
      ReaderLock lock(mu_);
      auto m = by_metric_.find(metric);
      if (m != by_metric_.end() && m->second.kind != kind)
        return kind_conflict(metric, m->second.kind, kind);
      if (SeriesInfo* r = lookup(hash, metric, tags)) {
        if (state_of(r) == kLive) {
          touch(r, now);
          return r;
        }
        in_memory = true;
      }
      stored = m != by_metric_.end() && m->second.stored;
      detaches = detaches_;
    }
    // Not in memory: the series may have expired; its stored id brings its history back. (Read
    // without the lock: a record leaves memory only after its expiry is committed, and one that
    // left meanwhile makes this look again.)
    std::optional<uint64_t> stored_id;
    if (!in_memory && stored && stored_lookup_)
      stored_id = stored_lookup_(shard_of(hash), metric, tags, kind);

    WriterLock lock(mu_);
    if (detaches_ != detaches) continue;
    auto m = by_metric_.find(metric);
    if (m != by_metric_.end() && m->second.kind != kind)
      return kind_conflict(metric, m->second.kind, kind);
    SeriesInfo* r = lookup(hash, metric, tags);
    if (r && state_of(r) == kLive) {
      touch(r, now);
      return r;
    }
    if (bounds.max_per_metric && m != by_metric_.end() && m->second.live >= bounds.max_per_metric) {
      *refused = CreateRefusal::kPerMetric;
      return static_cast<const SeriesInfo*>(nullptr);
    }
    if (bounds.max_total && size_ >= bounds.max_total) {
      *refused = CreateRefusal::kTotal;
      return static_cast<const SeriesInfo*>(nullptr);
    }
    if (!r && stored_id) r = record(*stored_id);  // detached, not yet freed: the same record
    if (r) {
      relink(r);
      touch(r, now);
      *created = true;
      return static_cast<const SeriesInfo*>(r);
    }
    const uint64_t id = stored_id ? *stored_id : next_id_;
    auto made = insert(id, hash, metric, tags, kind);
    if (!made) return made.status();
    if (!stored_id)
      ++next_id_;
    else
      ++revived_;
    *created = true;
    return made;
  }
}

Status SeriesCatalog::restore(const SeriesDef& def) {
  WriterLock lock(mu_);
  if (record(def.id)) return Status::ok();
  auto r = insert(def.id, def.hash, def.metric, def.tags, def.kind);
  if (!r) return r.status();
  if (def.id >= next_id_) next_id_ = def.id + 1;
  return Status::ok();
}

void SeriesCatalog::restore_stored_metric(std::string_view metric, Kind kind) {
  WriterLock lock(mu_);
  auto e = by_metric_.find(metric);
  if (e == by_metric_.end())
    e = by_metric_.emplace(std::string(metric), MetricEntry{kind, {}, 0, false}).first;
  e->second.stored = true;
  any_stored_ = true;
}

void SeriesCatalog::reserve_ids(uint64_t max_id) {
  WriterLock lock(mu_);
  if (max_id >= next_id_) next_id_ = max_id + 1;
}

bool SeriesCatalog::has_stored(std::string_view metric) const {
  ReaderLock lock(mu_);
  auto it = by_metric_.find(metric);
  return it != by_metric_.end() && it->second.stored;
}

const SeriesInfo* SeriesCatalog::by_id(uint64_t id) const {
  ReaderLock lock(mu_);
  const SeriesInfo* r = record(id);
  return r && state_of(r) != kDetached ? r : nullptr;
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
  for (const auto& [name, entry] : by_metric_) out.push_back({name, entry.kind, entry.live});
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

size_t SeriesCatalog::expiring() const {
  ReaderLock lock(mu_);
  return expiring_;
}

uint64_t SeriesCatalog::revived() const {
  ReaderLock lock(mu_);
  return revived_;
}

CatalogCardinality SeriesCatalog::cardinality(size_t top) const {
  ReaderLock lock(mu_);
  CatalogCardinality out;
  out.series = size_;
  out.metrics = by_metric_.size();
  for (const auto& [name, entry] : by_metric_)
    out.top_metrics.push_back({name, entry.kind, entry.live});
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
      if (!r || r->ntags_ == 0 || state_of(r) != kLive) continue;
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

SeriesCatalog::Memory SeriesCatalog::memory() const {
  ReaderLock lock(mu_);
  Memory m;
  for (uint64_t b = 0; b <= (next_id_ - 1) / kRecordsPerBlock && b < kRecordDirSize; ++b)
    if (record_blocks_[b]) m.records += kRecordBlockBytes;
  m.strings = strings_->bytes();
  m.tag_pairs = tag_pairs_->bytes();
  m.indexes = by_hash_->bytes();
  for (const auto& [name, entry] : by_metric_)
    m.indexes += name.capacity() + entry.ids.capacity() * sizeof(uint32_t);
  for (const auto& per_kind : free_slots_)
    for (const auto& v : per_kind) m.indexes += v.capacity() * sizeof(uint32_t);
  // A hash node: the value and the next pointer (and the cached hash for unordered_map).
  m.expiry = durable_.bucket_count() * sizeof(void*) + durable_.size() * 16 +
             detached_.bucket_count() * sizeof(void*) + detached_.size() * 32 +
             durable_ids_.capacity() * sizeof(uint64_t);
  m.metrics = by_metric_.size();
  return m;
}

std::vector<const SeriesInfo*> SeriesCatalog::unlink_idle(int64_t before_s) {
  WriterLock lock(mu_);
  std::vector<const SeriesInfo*> out;
  const uint64_t last_block = (next_id_ - 1) / kRecordsPerBlock;
  for (uint64_t b = 0; b <= last_block && b < kRecordDirSize; ++b) {
    void* block = record_blocks_[b];
    if (!block) continue;
    for (size_t i = 0; i < kRecordsPerBlock; ++i) {
      SeriesInfo* r = record_in(block, i);
      if (r->id == 0 || state_of(r) != kLive || last_point_s(r) >= before_s) continue;
      set_state(r, kUnlinked);
      --by_metric_.find(string_at(r->metric_))->second.live;
      --size_;
      ++expiring_;
      out.push_back(r);
    }
  }
  return out;
}

bool SeriesCatalog::try_release(const SeriesInfo* s) {
  WriterLock lock(mu_);
  if (state_of(s) != kUnlinked) return false;
  set_state(s, kReleased);
  return true;
}

void SeriesCatalog::mark_durable(const std::vector<uint64_t>& ids) {
  WriterLock lock(mu_);
  for (uint64_t id : ids) {
    const SeriesInfo* r = record(id);
    if (!r || state_of(r) != kReleased) continue;  // came back meanwhile
    durable_.insert(static_cast<uint32_t>(id));
    durable_ids_.push_back(id);
    by_metric_.find(string_at(r->metric_))->second.stored = true;
    any_stored_ = true;
  }
}

std::vector<uint64_t> SeriesCatalog::take_durable() {
  WriterLock lock(mu_);
  return std::exchange(durable_ids_, {});
}

size_t SeriesCatalog::reclaim() {
  WriterLock lock(mu_);
  // Durable releases leave the indexes now, under the current epoch: only readers registered
  // under it or an earlier one can have seen them.
  const uint64_t e = epoch_.load();
  if (!durable_.empty()) {
    std::unordered_map<std::string_view, std::unordered_set<uint32_t>> gone;
    for (uint32_t id : durable_) {
      SeriesInfo* r = record(id);
      by_hash_->erase(r->hash, id, [&](uint32_t v) { return record(v)->hash; });
      gone[string_at(r->metric_)].insert(id);
      set_state(r, kDetached);
      detached_[id] = e;
    }
    for (const auto& entry : gone) {  // not a structured binding: clang 14 cannot capture one
      const auto& ids = entry.second;
      auto& v = by_metric_.find(entry.first)->second.ids;
      std::erase_if(v, [&](uint32_t id) { return ids.count(id) != 0; });
      if (v.capacity() > 2 * v.size() + 64) v.shrink_to_fit();
    }
    durable_.clear();
    ++detaches_;
  }
  // Readers registered under epoch E - 1 use the counter epoch E + 1 will use: when it is zero
  // the epoch moves on, and every reader left registered under E or later.
  uint64_t safe = e - 2;
  if (readers_[(e + 1) & 1].load() == 0) {
    epoch_.store(e + 1);
    safe = e - 1;
  }
  // Detached under an epoch no reader holds any more: free.
  size_t freed = 0;
  for (auto it = detached_.begin(); it != detached_.end();) {
    if (it->second > safe) {
      ++it;
      continue;
    }
    free_record(record(it->first));
    it = detached_.erase(it);
    ++freed;
  }
  return freed;
}

}  // namespace tally::collector
