// AnnotationStore: annotations (deploys, incidents, DogStatsD events) kept as they came in their
// own SQLite file, annotations.sqlite in the data directory (docs/format/annotations.md). They are
// few and small; the store is bounded by annotations_max rows (the oldest by time go first,
// counted in tally_annotations_dropped_total) and by the longest retention of the data.
//
// Two ways in:
//   - add(): validates, inserts and commits before it returns (synchronous=FULL when the
//     collector syncs its log), so an id handed back is stored; for the HTTP API.
//   - submit(): never blocks and never touches SQLite: the annotation goes into a queue bounded
//     in bytes, which the store's own thread drains; a full queue drops it and counts it. For the
//     StatsD listener thread.
//
// Thread-safety: add(), list(), remove(), submit() and count() from any thread; one connection
// serialised by db_mu_ (annotations are few, a write is one small transaction). start() and
// stop() from the owning thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "live_limits.h"
#include "self_metrics.h"
#include "storage/sqlite.h"
#include "tally/common/mutex.h"
#include "tally/common/series_key.h"
#include "tally/common/status.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

struct Annotation {
  int64_t id = 0;  // assigned by the store
  int64_t time_ms = 0;
  std::optional<int64_t> end_ms;  // >= time_ms when set
  std::string title;
  std::string text;
  Tags tags;                   // canonical (sorted by key) once stored
  std::string source = "api";  // "api" or "dogstatsd"
  bool operator==(const Annotation&) const = default;
};

// Checks every field (docs/API.md); the message names the field: "title: ...", "tags: ...".
Status validate_annotation(const Annotation& a);

struct AnnotationQuery {
  int64_t from_ms = 0;  // annotations whose [time, end] overlaps [from, to)
  int64_t to_ms = 0;
  Tags tags;  // each must match exactly
  size_t limit = 1000;
};

struct AnnotationPage {
  std::vector<Annotation> annotations;  // by time, then id
  bool truncated = false;               // more matched than the limit
};

struct AnnotationStoreOptions {
  std::string path;          // the SQLite file (created when missing)
  bool sync_commits = true;  // synchronous=FULL: a commit is on disk when it returns
  // annotations_max and the longest retention (a reload changes them); null = no bound
  // (tests of the store alone).
  const LiveLimits* limits = nullptr;
  size_t queue_bytes = 4u << 20;           // submit()'s queue, in bytes of annotations
  int64_t retention_sweep_ms = 60 * 1000;  // how often the store's thread deletes expired rows
};

class AnnotationStore {
 public:
  static Result<std::unique_ptr<AnnotationStore>> open(AnnotationStoreOptions o, const Clock& clock,
                                                       SelfMetrics& metrics);
  ~AnnotationStore();  // stop()

  // Validates and stores `a` (its id is ignored); returns the new id once committed. An
  // annotation that ends before the longest retention is refused (invalid argument, "time: ...").
  Result<int64_t> add(Annotation a);
  // Queues `a` for the store's thread; false when the queue is full (counted as dropped).
  bool submit(Annotation a);
  Result<AnnotationPage> list(const AnnotationQuery& q);
  // True when it was there.
  Result<bool> remove(int64_t id);
  Result<int64_t> count();
  // Deletes what ended before the longest retention; returns how many.
  Result<int64_t> expire();

  void start();  // the thread that drains submit()'s queue and sweeps retention
  void stop();   // drains what is queued, then joins; idempotent

 private:
  AnnotationStore(AnnotationStoreOptions o, const Clock& clock, SelfMetrics& metrics,
                  std::unique_ptr<Db> db);
  Status create_schema() REQUIRES(db_mu_);
  Result<int64_t> insert(const Annotation& a) REQUIRES(db_mu_);  // validated already
  // In one transaction: the tags of the annotations `rows_sql` deletes, then those annotations
  // (each statement's one ? is `arg`); returns how many annotations went.
  Result<int> delete_where(const char* tags_sql, const char* rows_sql, int64_t arg)
      REQUIRES(db_mu_);
  int64_t max_age_ms() const;  // 0 = no age bound
  void run();

  const AnnotationStoreOptions options_;
  const Clock& clock_;
  SelfMetrics& metrics_;

  Mutex db_mu_;
  std::unique_ptr<Db> db_ GUARDED_BY(db_mu_);
  int64_t rows_ GUARDED_BY(db_mu_) = 0;

  Mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Annotation> queue_ GUARDED_BY(queue_mu_);
  size_t queued_bytes_ GUARDED_BY(queue_mu_) = 0;
  bool stopping_ GUARDED_BY(queue_mu_) = false;
  std::thread thread_;
};

}  // namespace tally::collector
