// BucketAgg: the aggregate of one series over one time bucket, for every kind.
//
// counter:      sum (total of increments)
// gauge:        last, min, max, sum, count (of samples)
// distribution: count, sum, min, max and a Sketch
// Merging is associative and commutative except `last`, which takes the later arrival; that is
// what makes "stored row (+) open bucket" and late points exact.
// Thread-safety: a value type, owned by one shard thread or one query.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>

#include "tally/common/series_key.h"
#include "tally/common/sketch.h"

namespace tally::collector {

struct BucketAgg {
  double sum = 0;
  uint64_t count = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double last = 0;
  std::unique_ptr<Sketch> sketch;  // distributions only

  BucketAgg() = default;
  BucketAgg(const BucketAgg& o) { *this = o; }
  BucketAgg& operator=(const BucketAgg& o) {
    if (this == &o) return *this;
    sum = o.sum;
    count = o.count;
    min = o.min;
    max = o.max;
    last = o.last;
    sketch = o.sketch ? std::make_unique<Sketch>(*o.sketch) : nullptr;
    return *this;
  }
  BucketAgg(BucketAgg&&) noexcept = default;
  BucketAgg& operator=(BucketAgg&&) noexcept = default;

  void add_counter(double v) { sum += v; }
  void add_gauge(double last_v, double min_v, double max_v, double sum_v, uint64_t count_v) {
    last = last_v;
    if (min_v < min) min = min_v;
    if (max_v > max) max = max_v;
    sum += sum_v;
    count += count_v;
  }
  void add_sketch(const Sketch& s) {
    if (!sketch) sketch = std::make_unique<Sketch>();
    sketch->merge(s);
    count = sketch->count();
    sum = sketch->sum();
    min = sketch->min();
    max = sketch->max();
  }
  // Merges `later` (arrived after this one) into this.
  void merge(const BucketAgg& later, Kind kind) {
    switch (kind) {
      case Kind::kCounter:
        sum += later.sum;
        break;
      case Kind::kGauge:
        if (later.count) add_gauge(later.last, later.min, later.max, later.sum, later.count);
        break;
      case Kind::kDistribution:
        if (later.sketch) add_sketch(*later.sketch);
        break;
    }
  }
  bool has_data(Kind kind) const { return kind == Kind::kCounter ? true : count > 0; }
};

}  // namespace tally::collector
