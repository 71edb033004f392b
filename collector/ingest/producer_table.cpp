#include "ingest/producer_table.h"

#include <algorithm>
#include <cstring>

namespace tally::collector {
namespace {
constexpr size_t kWords = ProducerTable::kWindow / 64;
}

Result<std::unique_ptr<ProducerTable>> ProducerTable::open(const std::string& path,
                                                           const SeriesCatalog& catalog,
                                                           bool sync_commits,
                                                           const Revive& revive) {
  auto db = Db::open(path, true);
  if (!db) return db.status();
  auto t = std::make_unique<ProducerTable>();
  t->db_ = std::move(*db);
  if (sync_commits) {
    if (auto s = t->db_->exec("PRAGMA synchronous=FULL;"); !s) return s;
  }
  if (auto s =
          t->db_->exec("CREATE TABLE IF NOT EXISTS producer_refs(producer INTEGER NOT NULL, ref "
                       "INTEGER NOT NULL,"
                       " series_id INTEGER NOT NULL, PRIMARY KEY(producer, ref)) WITHOUT ROWID;"
                       "CREATE TABLE IF NOT EXISTS producer_seqs(producer INTEGER PRIMARY KEY, "
                       "high INTEGER NOT NULL,"
                       " window BLOB NOT NULL);");
      !s)
    return s;
  auto p = [&](Stmt* out, std::string_view sql) -> Status {
    auto st = t->db_->prepare(sql);
    if (!st) return st.status();
    *out = std::move(*st);
    return Status::ok();
  };
  if (auto s = p(&t->put_ref_,
                 "INSERT OR REPLACE INTO producer_refs(producer, ref, series_id) VALUES(?,?,?)");
      !s)
    return s;
  if (auto s = p(&t->put_seq_,
                 "INSERT OR REPLACE INTO producer_seqs(producer, high, window) VALUES(?,?,?)");
      !s)
    return s;
  if (auto s = p(&t->del_refs_, "DELETE FROM producer_refs WHERE producer = ?"); !s) return s;
  if (auto s = p(&t->del_seq_, "DELETE FROM producer_seqs WHERE producer = ?"); !s) return s;
  if (auto s = p(&t->del_ref_,
                 "DELETE FROM producer_refs WHERE producer = ? AND ref = ? AND series_id = ?");
      !s)
    return s;
  if (auto s = p(&t->begin_, "BEGIN IMMEDIATE"); !s) return s;
  if (auto s = p(&t->commit_, "COMMIT"); !s) return s;

  Stmt refs, seqs;
  if (auto s = p(&refs, "SELECT producer, ref, series_id FROM producer_refs"); !s) return s;
  while (true) {
    auto row = refs.step();
    if (!row) return row.status();
    if (!*row) break;
    const auto id = static_cast<uint64_t>(refs.int64(2));
    const SeriesInfo* info = catalog.by_id(id);
    if (!info && revive) info = revive(id);
    if (info)
      t->producers_[static_cast<uint64_t>(refs.int64(0))]
          .refs[static_cast<uint32_t>(refs.int64(1))] = info;
  }
  if (auto s = p(&seqs, "SELECT producer, high, window FROM producer_seqs"); !s) return s;
  while (true) {
    auto row = seqs.step();
    if (!row) return row.status();
    if (!*row) break;
    auto& prod = t->producers_[static_cast<uint64_t>(seqs.int64(0))];
    prod.high = static_cast<uint64_t>(seqs.int64(1));
    prod.window.assign(kWords, 0);
    auto blob = seqs.blob(2);
    std::memcpy(prod.window.data(), blob.data(), std::min(blob.size(), kWords * 8));
  }
  return t;
}

bool ProducerTable::seen(uint64_t producer, uint64_t seq) const {
  auto it = producers_.find(producer);
  if (it == producers_.end() || it->second.high == 0) return false;
  const auto& p = it->second;
  if (seq > p.high) return false;
  uint64_t back = p.high - seq;
  if (back >= kWindow) return true;  // older than the window: treated as already seen
  return (p.window[back / 64] >> (back % 64)) & 1;
}

void ProducerTable::mark_seen(uint64_t producer, uint64_t seq) {
  auto& p = producers_[producer];
  if (p.window.empty()) p.window.assign(kWords, 0);
  p.dirty = true;
  if (seq > p.high) {
    uint64_t shift = p.high == 0 ? kWindow : seq - p.high;
    if (shift >= kWindow) {
      std::fill(p.window.begin(), p.window.end(), 0);
    } else {
      // Shift the bitmap towards older entries by `shift` bits.
      const size_t words = shift / 64, bits = shift % 64;
      for (size_t i = kWords; i-- > 0;) {
        uint64_t v = 0;
        if (i >= words) {
          v = p.window[i - words] << bits;
          if (bits && i >= words + 1) v |= p.window[i - words - 1] >> (64 - bits);
        }
        p.window[i] = v;
      }
    }
    p.high = seq;
  }
  uint64_t back = p.high - seq;
  if (back < kWindow) p.window[back / 64] |= uint64_t(1) << (back % 64);
}

const SeriesInfo* ProducerTable::ref(uint64_t producer, uint32_t r) const {
  auto it = producers_.find(producer);
  if (it == producers_.end()) return nullptr;
  auto rit = it->second.refs.find(r);
  return rit == it->second.refs.end() ? nullptr : rit->second;
}

Status ProducerTable::add_refs(uint64_t producer,
                               const std::vector<std::pair<uint32_t, const SeriesInfo*>>& refs) {
  if (refs.empty()) return Status::ok();
  if (auto s = begin_.run(); !s) return s;
  for (const auto& [r, info] : refs) {
    put_ref_.bind(1, producer).bind(2, static_cast<int64_t>(r)).bind(3, info->id);
    if (auto s = put_ref_.run(); !s) {
      (void)db_->exec("ROLLBACK");
      return s;
    }
  }
  if (auto s = commit_.run(); !s) {
    (void)db_->exec("ROLLBACK");
    return s;
  }
  auto& p = producers_[producer];
  for (const auto& [r, info] : refs) p.refs[r] = info;
  return Status::ok();
}

Status ProducerTable::save_sequences() {
  bool any = false;
  for (auto& [id, p] : producers_) any |= p.dirty;
  if (!any) return Status::ok();
  if (auto s = begin_.run(); !s) return s;
  for (auto& [id, p] : producers_) {
    if (!p.dirty) continue;
    put_seq_.bind(1, id).bind(2, p.high).bind_blob(3, p.window.data(), p.window.size() * 8);
    if (auto s = put_seq_.run(); !s) {
      (void)db_->exec("ROLLBACK");
      return s;
    }
  }
  if (auto s = commit_.run(); !s) {
    (void)db_->exec("ROLLBACK");
    return s;
  }
  for (auto& [id, p] : producers_) p.dirty = false;
  return Status::ok();
}

std::vector<ProducerTable::SavedRef> ProducerTable::forget_series(
    const std::unordered_set<const SeriesInfo*>& gone) {
  std::vector<SavedRef> out;
  for (auto& [id, p] : producers_) {
    for (auto it = p.refs.begin(); it != p.refs.end();) {
      if (gone.count(it->second)) {
        out.push_back({id, it->first, it->second->id});
        it = p.refs.erase(it);
      } else {
        ++it;
      }
    }
    // A table that lost most of its refs gives its buckets back.
    if (p.refs.empty())
      std::unordered_map<uint32_t, const SeriesInfo*>().swap(p.refs);
    else if (p.refs.bucket_count() > 4 * p.refs.size() + 64)
      p.refs.rehash(0);
  }
  return out;
}

Status ProducerTable::delete_refs(const std::vector<SavedRef>& refs) {
  if (refs.empty()) return Status::ok();
  if (auto s = begin_.run(); !s) return s;
  for (const auto& r : refs) {
    if (auto p = producers_.find(r.producer); p != producers_.end() && p->second.refs.count(r.ref))
      continue;  // defined again: the saved row is its new definition
    del_ref_.bind(1, r.producer).bind(2, static_cast<int64_t>(r.ref)).bind(3, r.series_id);
    if (auto s = del_ref_.run(); !s) {
      (void)db_->exec("ROLLBACK");
      return s;
    }
  }
  if (auto s = commit_.run(); !s) {
    (void)db_->exec("ROLLBACK");
    return s;
  }
  return Status::ok();
}

size_t ProducerTable::refs() const {
  size_t n = 0;
  for (const auto& [id, p] : producers_) n += p.refs.size();
  return n;
}

void ProducerTable::touch(uint64_t producer, int64_t now_s) {
  if (auto it = producers_.find(producer); it != producers_.end()) it->second.last_seen_s = now_s;
}

Result<size_t> ProducerTable::forget(int64_t now_s, int64_t idle_s, size_t max,
                                     int64_t min_idle_s) {
  std::vector<std::pair<int64_t, uint64_t>> order;  // (last seen, producer)
  order.reserve(producers_.size());
  for (auto& [id, p] : producers_) {
    if (p.last_seen_s == 0) p.last_seen_s = now_s;  // loaded at start: its idle time starts now
    order.emplace_back(p.last_seen_s, id);
  }
  std::sort(order.begin(), order.end());
  std::vector<uint64_t> gone;
  for (size_t i = 0; i < order.size(); ++i) {
    const bool idle = now_s - order[i].first >= idle_s;
    const bool beyond = order.size() - i > max && now_s - order[i].first >= min_idle_s;
    if (!idle && !beyond) break;
    gone.push_back(order[i].second);
  }
  if (gone.empty()) return size_t{0};
  if (auto s = begin_.run(); !s) return s;
  for (uint64_t id : gone) {
    del_refs_.bind(1, id);
    del_seq_.bind(1, id);
    if (auto s = del_refs_.run(); !s) {
      (void)db_->exec("ROLLBACK");
      return s;
    }
    if (auto s = del_seq_.run(); !s) {
      (void)db_->exec("ROLLBACK");
      return s;
    }
  }
  if (auto s = commit_.run(); !s) {
    (void)db_->exec("ROLLBACK");
    return s;
  }
  for (uint64_t id : gone) producers_.erase(id);
  return gone.size();
}

}  // namespace tally::collector
