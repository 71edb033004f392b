#include "storage/coverage.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>

#include "storage/coverage_format.h"
#include "thread_guard.h"

namespace tally::collector {

CoverageSet::CoverageSet(std::vector<CoverageInterval> intervals) {
  std::sort(intervals.begin(), intervals.end(),
            [](const auto& a, const auto& b) { return a.start_ms < b.start_ms; });
  for (const auto& i : intervals) {
    if (i.end_ms < i.start_ms) continue;  // not an interval
    if (!intervals_.empty() && i.start_ms <= intervals_.back().end_ms)
      intervals_.back().end_ms = std::max(intervals_.back().end_ms, i.end_ms);
    else
      intervals_.push_back(i);
  }
}

void CoverageSet::begin(int64_t now_ms, int64_t merge_gap_ms) {
  if (!intervals_.empty() && now_ms - intervals_.back().end_ms <= merge_gap_ms) {
    extend(now_ms);
    return;
  }
  intervals_.push_back({now_ms, now_ms});
}

void CoverageSet::extend(int64_t now_ms) {
  if (!intervals_.empty()) intervals_.back().end_ms = std::max(intervals_.back().end_ms, now_ms);
}

size_t CoverageSet::trim(int64_t oldest_ms, size_t max_intervals) {
  size_t n = 0;
  while (n < intervals_.size() && intervals_[n].end_ms < oldest_ms) ++n;
  if (intervals_.size() - n > max_intervals) n = intervals_.size() - max_intervals;
  intervals_.erase(intervals_.begin(), intervals_.begin() + static_cast<ptrdiff_t>(n));
  return n;
}

bool CoverageSet::overlaps(int64_t from_ms, int64_t to_ms) const {
  // The first interval that ends after from_ms; it overlaps when it starts before to_ms.
  auto it = std::lower_bound(intervals_.begin(), intervals_.end(), from_ms,
                             [](const CoverageInterval& i, int64_t t) { return i.end_ms <= t; });
  return it != intervals_.end() && it->start_ms < to_ms && from_ms < to_ms;
}

std::vector<CoverageInterval> CoverageSet::within(int64_t from_ms, int64_t to_ms) const {
  std::vector<CoverageInterval> out;
  auto it = std::lower_bound(intervals_.begin(), intervals_.end(), from_ms,
                             [](const CoverageInterval& i, int64_t t) { return i.end_ms <= t; });
  for (; it != intervals_.end() && it->start_ms < to_ms; ++it)
    out.push_back({std::max(it->start_ms, from_ms), std::min(it->end_ms, to_ms)});
  return out;
}

Result<std::unique_ptr<CoverageStore>> CoverageStore::open(CoverageStoreOptions o,
                                                           const Clock& clock, SelfMetrics& metrics,
                                                           bool* existed) {
  std::error_code ec;
  const bool was = std::filesystem::exists(o.path, ec);
  if (existed) *existed = was;
  auto db = Db::open(o.path, true);
  if (!db) return db.status();
  std::unique_ptr<CoverageStore> store(
      new CoverageStore(std::move(o), clock, metrics, std::move(*db)));
  MutexLock lock(store->db_mu_);
  if (auto s = store->create_schema(); !s) return s;
  if (auto s = store->load(); !s) return s;
  return store;
}

CoverageStore::~CoverageStore() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

Status CoverageStore::create_schema() {
  Db& d = *db_;
  if (options_.sync_commits) {
    if (auto s = d.exec("PRAGMA synchronous=FULL;"); !s) return s;
  }
  if (auto s =
          d.exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                 "CREATE TABLE IF NOT EXISTS intervals(start_ms INTEGER PRIMARY KEY, "
                 "end_ms INTEGER NOT NULL);");
      !s)
    return s;
  auto get = d.prepare("SELECT value FROM meta WHERE key = 'coverage_format'");
  if (!get) return get.status();
  auto row = get->step();
  if (!row) return row.status();
  if (!*row) {
    auto put = d.prepare("INSERT INTO meta(key, value) VALUES('coverage_format', ?)");
    if (!put) return put.status();
    return put->bind(1, coverage_format::kFormat).run();
  }
  if (get->int64(0) > coverage_format::kFormat)
    return Status::corruption(d.path() + " has coverage format " + std::to_string(get->int64(0)) +
                              "; this collector reads up to " +
                              std::to_string(coverage_format::kFormat) +
                              " (it was written by a newer Tally)");
  return Status::ok();
}

Status CoverageStore::load() {
  auto q = db_->prepare("SELECT start_ms, end_ms FROM intervals ORDER BY start_ms");
  if (!q) return q.status();
  std::vector<CoverageInterval> all;
  while (true) {
    auto row = q->step();
    if (!row) return row.status();
    if (!*row) break;
    all.push_back({q->int64(0), q->int64(1)});
  }
  MutexLock lock(mu_);
  set_ = CoverageSet(std::move(all));
  return Status::ok();
}

template <typename Change>
Status CoverageStore::update(Change&& change) {
  MutexLock write(db_mu_);
  CoverageSet copy;
  {
    MutexLock lock(mu_);
    if (!change(set_)) return Status::ok();
    // Bounded: what ended before the longest retention, then the oldest beyond the cap.
    const int64_t keep_ms =
        options_.limits ? options_.limits->get()->max_age_s() * 1000 : int64_t{0};
    set_.trim(keep_ms > 0 ? clock_.now_ms() - keep_ms : std::numeric_limits<int64_t>::min(),
              coverage_format::kMaxIntervals);
    copy = set_;
  }
  Status s = save(copy);
  if (!s) metrics_.coverage_write_errors.fetch_add(1, std::memory_order_relaxed);
  return s;
}

Status CoverageStore::save(const CoverageSet& set) {
  Db& d = *db_;
  if (auto s = d.exec("BEGIN IMMEDIATE;DELETE FROM intervals;"); !s) {
    (void)d.exec("ROLLBACK");  // the error that matters is s
    return s;
  }
  auto put = d.prepare("INSERT INTO intervals(start_ms, end_ms) VALUES(?, ?)");
  Status s = put ? Status::ok() : put.status();
  for (size_t i = 0; s && i < set.intervals().size(); ++i) {
    const auto& iv = set.intervals()[i];
    s = put->bind(1, iv.start_ms).bind(2, iv.end_ms).run();
  }
  if (s) s = d.exec("COMMIT");
  if (!s) (void)d.exec("ROLLBACK");  // the error that matters is s
  return s;
}

Status CoverageStore::add_covered(int64_t from_ms, int64_t to_ms) {
  return update([&](CoverageSet& set) REQUIRES(mu_) {
    std::vector<CoverageInterval> all = set.intervals();
    all.push_back({from_ms, to_ms});
    set = CoverageSet(std::move(all));
    return true;
  });
}

Status CoverageStore::start() {
  Status s = update([&](CoverageSet& set) REQUIRES(mu_) {
    set.begin(clock_.now_ms(), coverage_format::kMergeGapMs);
    running_ = true;
    return true;
  });
  // Running either way: the interval is in memory and the next heartbeat writes it.
  thread_ = std::thread([this] { guarded("coverage", metrics_, [this] { run(); }); });
  return s;
}

Status CoverageStore::heartbeat() {
  return update([&](CoverageSet& set) REQUIRES(mu_) {
    if (!running_) return false;
    set.extend(clock_.now_ms());
    return true;
  });
}

Status CoverageStore::finish() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  return update([&](CoverageSet& set) REQUIRES(mu_) {
    if (!running_) return false;
    running_ = false;
    set.extend(clock_.now_ms());
    return true;
  });
}

CoverageSet CoverageStore::snapshot() const {
  MutexLock lock(mu_);
  CoverageSet s = set_;
  if (running_) s.extend(clock_.now_ms());
  return s;
}

void CoverageStore::run() {
  const int64_t every =
      options_.heartbeat_ms > 0 ? options_.heartbeat_ms : coverage_format::kHeartbeatMs;
  int64_t failures = 0;
  while (true) {
    {
      MutexLock lock(mu_);
      if (!stopping_) lock.wait_for(cv_, std::chrono::milliseconds(every));
      if (stopping_) return;
    }
    if (auto s = heartbeat(); !s) {
      // Logged on the first failure and then every 30th (a minute at the default interval).
      if (failures++ % 30 == 0)
        spdlog::error("event=coverage_write_failed failures={} error=\"{}\"", failures,
                      s.to_string());
    } else {
      failures = 0;
    }
  }
}

}  // namespace tally::collector
