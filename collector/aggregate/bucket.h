// BucketAgg: the aggregate of one series over one time bucket, for every kind.
//
// counter:      sum (total of increments)
// gauge:        last, min, max, sum, count (of samples)
// distribution: count, sum, min, max and a Sketch
// Merging is associative and commutative except `last`, which takes the later arrival; that is
// what makes "stored row (+) open bucket" and late points exact.
// Thread-safety: a value type, owned by one shard thread or one query.
#pragma once

#include <cmath>
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

  // Every add and merge checks what it makes: a sum that would pass +-DBL_MAX is held there
  // (kClamped) and a count that would overflow refuses the value (kRefused, nothing changed), so
  // a bucket is always finite and encodable whatever it was sent. Callers count what is not kExact.
  using Added = Sketch::Added;
  static double saturating_add(double a, double b, Added* how) {
    const double r = a + b;
    if (std::isfinite(r)) return r;
    *how = Added::kClamped;
    return std::copysign(std::numeric_limits<double>::max(), r);
  }
  Added add_counter(double v) {
    if (!std::isfinite(v)) return Added::kRefused;
    Added how = Added::kExact;
    sum = saturating_add(sum, v, &how);
    return how;
  }
  Added add_gauge(double last_v, double min_v, double max_v, double sum_v, uint64_t count_v) {
    if (!std::isfinite(last_v) || !std::isfinite(min_v) || !std::isfinite(max_v) ||
        !std::isfinite(sum_v) || count + count_v < count)
      return Added::kRefused;
    Added how = Added::kExact;
    last = last_v;
    if (min_v < min) min = min_v;
    if (max_v > max) max = max_v;
    sum = saturating_add(sum, sum_v, &how);
    count += count_v;
    return how;
  }
  Added add_sketch(const Sketch& s) {
    if (!sketch) sketch = std::make_unique<Sketch>();
    Added how = sketch->merge(s);
    count = sketch->count();
    sum = sketch->sum();
    min = sketch->min();
    max = sketch->max();
    return how;
  }
  // Merges `later` (arrived after this one) into this.
  Added merge(const BucketAgg& later, Kind kind) {
    switch (kind) {
      case Kind::kCounter:
        return add_counter(later.sum);
      case Kind::kGauge:
        if (later.count) return add_gauge(later.last, later.min, later.max, later.sum, later.count);
        return Added::kExact;
      case Kind::kDistribution:
        if (later.sketch) return add_sketch(*later.sketch);
        return Added::kExact;
    }
    return Added::kExact;
  }
  bool has_data(Kind kind) const { return kind == Kind::kCounter ? true : count > 0; }
};

}  // namespace tally::collector
