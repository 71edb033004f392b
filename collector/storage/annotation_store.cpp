#include "storage/annotation_store.h"

#include <spdlog/spdlog.h>

#include <cstdint>
#include <nlohmann/json.hpp>

#include "storage/annotation_format.h"
#include "thread_guard.h"

namespace tally::collector {
namespace {

using json = nlohmann::json;

std::string tags_text(const Tags& tags) {
  json o = json::object();
  for (const auto& t : tags) o[t.key] = t.value;
  return o.dump();
}

Result<Tags> tags_from_text(std::string_view text) {
  json o = json::parse(text, nullptr, false);
  if (!o.is_object()) return Status::corruption("annotation tags are not a JSON object");
  Tags tags;
  for (const auto& [k, v] : o.items()) {
    if (!v.is_string()) return Status::corruption("annotation tag '" + k + "' is not a string");
    tags.push_back({k, v.get<std::string>()});
  }
  canonicalize(tags);
  return tags;
}

// What one queued annotation holds, for the queue's byte budget.
size_t footprint(const Annotation& a) {
  size_t n = sizeof(Annotation) + a.title.size() + a.text.size() + a.source.size();
  for (const auto& t : a.tags) n += sizeof(Tag) + t.key.size() + t.value.size();
  return n;
}

size_t source_index(std::string_view source) {
  return source == "dogstatsd" ? 1 : 0;
}

}  // namespace

Status validate_annotation(const Annotation& a) {
  namespace f = annotation_format;
  if (a.title.empty()) return Status::invalid_argument("title: must not be empty");
  if (a.title.size() > f::kMaxTitleBytes)
    return Status::invalid_argument("title: " + std::to_string(a.title.size()) +
                                    " bytes, the limit is " + std::to_string(f::kMaxTitleBytes));
  if (!valid_utf8(a.title, false))
    return Status::invalid_argument("title: not UTF-8, or holds control characters");
  if (a.text.size() > f::kMaxTextBytes)
    return Status::invalid_argument("text: " + std::to_string(a.text.size()) +
                                    " bytes, the limit is " + std::to_string(f::kMaxTextBytes));
  if (!valid_utf8(a.text, true)) return Status::invalid_argument("text: not UTF-8");
  if (a.time_ms <= 0) return Status::invalid_argument("time: must be after 1970");
  if (a.end_ms && *a.end_ms < a.time_ms)
    return Status::invalid_argument("end: must not be before time");
  if (auto s = validate_tags(a.tags); !s) return Status::invalid_argument("tags: " + s.message());
  return Status::ok();
}

AnnotationStore::AnnotationStore(AnnotationStoreOptions o, const Clock& clock, SelfMetrics& metrics,
                                 std::unique_ptr<Db> db)
    : options_(std::move(o)), clock_(clock), metrics_(metrics), db_(std::move(db)) {}

AnnotationStore::~AnnotationStore() {
  stop();
}

Result<std::unique_ptr<AnnotationStore>> AnnotationStore::open(AnnotationStoreOptions o,
                                                               const Clock& clock,
                                                               SelfMetrics& metrics) {
  auto db = Db::open(o.path, true);
  if (!db) return db.status();
  std::unique_ptr<AnnotationStore> store(
      new AnnotationStore(std::move(o), clock, metrics, std::move(*db)));
  MutexLock lock(store->db_mu_);
  if (auto s = store->create_schema(); !s) return s;
  return store;
}

Status AnnotationStore::create_schema() {
  Db& d = *db_;
  if (options_.sync_commits) {
    if (auto s = d.exec("PRAGMA synchronous=FULL;"); !s) return s;
  }
  // time_ms orders and bounds the range scan; annotation_tags answers the tag filter.
  if (auto s = d.exec(
          "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
          "CREATE TABLE IF NOT EXISTS annotations(id INTEGER PRIMARY KEY AUTOINCREMENT, "
          "time_ms INTEGER NOT NULL, end_ms INTEGER, title TEXT NOT NULL, text TEXT NOT NULL, "
          "tags TEXT NOT NULL, source TEXT NOT NULL);"
          "CREATE INDEX IF NOT EXISTS annotations_time ON annotations(time_ms, id);"
          "CREATE TABLE IF NOT EXISTS annotation_tags(id INTEGER NOT NULL, key TEXT NOT NULL, "
          "value TEXT NOT NULL, PRIMARY KEY(id, key)) WITHOUT ROWID;"
          "CREATE INDEX IF NOT EXISTS annotation_tags_kv ON annotation_tags(key, value, id);");
      !s)
    return s;
  auto get = d.prepare("SELECT value FROM meta WHERE key = 'annotations_format'");
  if (!get) return get.status();
  auto row = get->step();
  if (!row) return row.status();
  if (!*row) {
    auto put = d.prepare("INSERT INTO meta(key, value) VALUES('annotations_format', ?)");
    if (!put) return put.status();
    if (auto s = put->bind(1, annotation_format::kFormat).run(); !s) return s;
  } else if (get->int64(0) > annotation_format::kFormat) {
    return Status::corruption(d.path() + " has annotations format " +
                              std::to_string(get->int64(0)) + "; this collector reads up to " +
                              std::to_string(annotation_format::kFormat) +
                              " (it was written by a newer Tally)");
  }
  auto n = d.prepare("SELECT COUNT(*) FROM annotations");
  if (!n) return n.status();
  auto counted = n->step();
  if (!counted) return counted.status();
  rows_ = n->int64(0);
  return Status::ok();
}

Result<int64_t> AnnotationStore::add(Annotation a) {
  const size_t src = source_index(a.source);
  auto reject = [&](Status s) -> Result<int64_t> {
    metrics_.annotations_rejected[src].fetch_add(1, std::memory_order_relaxed);
    return s;
  };
  if (auto s = validate_annotation(a); !s) return reject(s);
  canonicalize(a.tags);
  const int64_t max_age = max_age_ms();
  if (max_age > 0 && a.end_ms.value_or(a.time_ms) < clock_.now_ms() - max_age)
    return reject(Status::invalid_argument("time: older than the longest retention, " +
                                           format_duration(max_age / 1000)));
  MutexLock lock(db_mu_);
  auto id = insert(a);
  if (id) metrics_.annotations[src].fetch_add(1, std::memory_order_relaxed);
  return id;
}

Result<int64_t> AnnotationStore::insert(const Annotation& a) {
  Db& d = *db_;
  if (auto s = d.exec("BEGIN IMMEDIATE"); !s) return s;
  auto fail = [&](Status s) -> Result<int64_t> {
    (void)d.exec("ROLLBACK");  // the error that matters is s
    return s;
  };
  auto ins = d.prepare(
      "INSERT INTO annotations(time_ms, end_ms, title, text, tags, source) VALUES(?,?,?,?,?,?)");
  if (!ins) return fail(ins.status());
  ins->bind(1, a.time_ms);
  if (a.end_ms)
    ins->bind(2, *a.end_ms);
  else
    ins->bind_null(2);
  ins->bind(3, a.title).bind(4, a.text).bind(5, tags_text(a.tags)).bind(6, a.source);
  if (auto s = ins->run(); !s) return fail(s);
  const int64_t id = sqlite3_last_insert_rowid(d.raw());
  auto tag = d.prepare("INSERT INTO annotation_tags(id, key, value) VALUES(?,?,?)");
  if (!tag) return fail(tag.status());
  for (const auto& t : a.tags) {
    if (auto s = tag->bind(1, id).bind(2, t.key).bind(3, t.value).run(); !s) return fail(s);
  }
  // Beyond annotations_max the oldest (by time, then id) go, in the same transaction.
  const int64_t max = options_.limits ? options_.limits->get()->input.annotations_max : INT64_MAX;
  const int64_t over = rows_ + 1 - max;
  if (over > 0) {
    if (auto s = d.exec("CREATE TEMP TABLE IF NOT EXISTS doomed(id INTEGER PRIMARY KEY);"
                        "DELETE FROM doomed;");
        !s)
      return fail(s);
    auto pick =
        d.prepare("INSERT INTO doomed(id) SELECT id FROM annotations ORDER BY time_ms, id LIMIT ?");
    if (!pick) return fail(pick.status());
    if (auto s = pick->bind(1, over).run(); !s) return fail(s);
    if (auto s = d.exec("DELETE FROM annotation_tags WHERE id IN (SELECT id FROM doomed);"
                        "DELETE FROM annotations WHERE id IN (SELECT id FROM doomed);");
        !s)
      return fail(s);
  }
  if (auto s = d.exec("COMMIT"); !s) return fail(s);
  rows_ += 1 - std::max<int64_t>(over, 0);
  if (over > 0) metrics_.annotations_dropped.fetch_add(over, std::memory_order_relaxed);
  return id;
}

bool AnnotationStore::submit(Annotation a) {
  const size_t bytes = footprint(a);
  {
    MutexLock lock(queue_mu_);
    if (!stopping_ && queued_bytes_ + bytes <= options_.queue_bytes) {
      queued_bytes_ += bytes;
      queue_.push_back(std::move(a));
      queue_cv_.notify_one();
      return true;
    }
  }
  metrics_.annotations_queue_dropped.fetch_add(1, std::memory_order_relaxed);
  return false;
}

Result<AnnotationPage> AnnotationStore::list(const AnnotationQuery& q) {
  // [time, end] overlaps [from, to): it starts before `to` and ends at or after `from`.
  std::string sql =
      "SELECT id, time_ms, end_ms, title, text, tags, source FROM annotations "
      "WHERE time_ms < ? AND COALESCE(end_ms, time_ms) >= ?";
  for (size_t i = 0; i < q.tags.size(); ++i)
    sql += " AND id IN (SELECT id FROM annotation_tags WHERE key = ? AND value = ?)";
  sql += " ORDER BY time_ms, id LIMIT ?";
  MutexLock lock(db_mu_);
  auto st = db_->prepare(sql);
  if (!st) return st.status();
  st->bind(1, q.to_ms).bind(2, q.from_ms);
  int i = 3;
  for (const auto& t : q.tags) {
    st->bind(i, t.key).bind(i + 1, t.value);
    i += 2;
  }
  st->bind(i, static_cast<int64_t>(q.limit) + 1);
  AnnotationPage page;
  while (true) {
    auto row = st->step();
    if (!row) return row.status();
    if (!*row) break;
    if (page.annotations.size() == q.limit) {
      page.truncated = true;
      break;
    }
    Annotation a;
    a.id = st->int64(0);
    a.time_ms = st->int64(1);
    if (!st->is_null(2)) a.end_ms = st->int64(2);
    a.title = st->text(3);
    a.text = st->text(4);
    auto tags = tags_from_text(st->text(5));
    if (!tags) return tags.status();
    a.tags = std::move(*tags);
    a.source = st->text(6);
    page.annotations.push_back(std::move(a));
  }
  return page;
}

Result<int> AnnotationStore::delete_where(const char* tags_sql, const char* rows_sql, int64_t arg) {
  Db& d = *db_;
  if (auto s = d.exec("BEGIN IMMEDIATE"); !s) return s;
  auto del_tags = d.prepare(tags_sql);
  auto del = d.prepare(rows_sql);
  Status s = !del_tags ? del_tags.status() : !del ? del.status() : Status::ok();
  if (s) s = del_tags->bind(1, arg).run();
  if (s) s = del->bind(1, arg).run();
  const int changed = s ? sqlite3_changes(d.raw()) : 0;
  if (s) s = d.exec("COMMIT");
  if (!s) {
    (void)d.exec("ROLLBACK");  // the error that matters is s
    return s;
  }
  rows_ -= changed;
  return changed;
}

Result<bool> AnnotationStore::remove(int64_t id) {
  MutexLock lock(db_mu_);
  auto changed = delete_where("DELETE FROM annotation_tags WHERE id = ?",
                              "DELETE FROM annotations WHERE id = ?", id);
  if (!changed) return changed.status();
  return *changed > 0;
}

Result<int64_t> AnnotationStore::count() {
  MutexLock lock(db_mu_);
  return rows_;
}

int64_t AnnotationStore::max_age_ms() const {
  return options_.limits ? options_.limits->get()->max_age_s() * 1000 : 0;
}

Result<int64_t> AnnotationStore::expire() {
  const int64_t max_age = max_age_ms();
  if (max_age <= 0) return 0;
  const int64_t cutoff = clock_.now_ms() - max_age;
  MutexLock lock(db_mu_);
  auto deleted = delete_where(
      "DELETE FROM annotation_tags WHERE id IN (SELECT id FROM annotations WHERE "
      "COALESCE(end_ms, time_ms) < ?)",
      "DELETE FROM annotations WHERE COALESCE(end_ms, time_ms) < ?", cutoff);
  if (!deleted) return deleted.status();
  const int changed = *deleted;
  if (changed) metrics_.annotations_expired.fetch_add(changed, std::memory_order_relaxed);
  return changed;
}

void AnnotationStore::start() {
  thread_ = std::thread([this] { guarded("annotations", metrics_, [this] { run(); }); });
}

void AnnotationStore::stop() {
  {
    MutexLock lock(queue_mu_);
    stopping_ = true;
    queue_cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void AnnotationStore::run() {
  int64_t next_sweep_ms = clock_.now_ms();
  while (true) {
    std::deque<Annotation> batch;
    bool stopping = false;
    {
      MutexLock lock(queue_mu_);
      if (queue_.empty() && !stopping_)
        lock.wait_for(queue_cv_, std::chrono::milliseconds(options_.retention_sweep_ms));
      batch.swap(queue_);
      queued_bytes_ = 0;
      stopping = stopping_;
    }
    for (Annotation& a : batch) {
      auto id = add(std::move(a));
      if (!id && id.status().code() != StatusCode::kInvalidArgument)
        spdlog::error("event=annotation_write_failed source=dogstatsd error=\"{}\"",
                      id.status().to_string());
    }
    if (clock_.now_ms() >= next_sweep_ms) {
      if (auto n = expire(); !n)
        spdlog::error("event=annotation_expiry_failed error=\"{}\"", n.status().to_string());
      next_sweep_ms = clock_.now_ms() + options_.retention_sweep_ms;
    }
    if (stopping) return;
  }
}

}  // namespace tally::collector
