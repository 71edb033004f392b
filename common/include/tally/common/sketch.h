// A mergeable log-bucket quantile sketch (DDSketch-style) with 1% relative accuracy.
//
// Positive values v >= kMinIndexable go to bin ceil(log_gamma(v)), where
// gamma = (1 + a) / (1 - a) and a = 0.01; a bin's representative value is 2 gamma^i / (gamma + 1),
// within 1% of every value in the bin. Negative values use a mirrored store; |v| below
// kMinIndexable counts as zero. Merging adds bins, so percentiles survive merging across series
// and rollups exactly as if every value had gone into one sketch. Bins are dense arrays with an
// offset: 5 decades of values take about 280 bins. Thread-safety: a value type; not shared.
#pragma once

#include <cstdint>
#include <vector>

#include "tally/common/status.h"

namespace tally {

inline constexpr double kSketchRelativeAccuracy = 0.01;
inline constexpr double kMinIndexable = 1e-9;
inline constexpr int32_t kMaxSketchKey = 8000;  // gamma^8000 ~ 1e139: beyond any real measurement
// Widest key span one store keeps dense (32 KiB): gamma^4096 ~ 1e35, far wider than real data;
// beyond it the lowest bins fold together.
inline constexpr int32_t kMaxSketchSpan = 4096;

class Sketch {
 public:
  struct Bin {
    double lower;  // exclusive
    double upper;  // inclusive
    uint64_t count;
  };

  // What add() and merge() did. The sum never becomes infinite: past +-DBL_MAX it is held there
  // (kClamped; count, min, max and bins stay exact). kRefused: nothing changed, because the value
  // is NaN or infinite, n is 0, or the count would overflow uint64.
  enum class Added { kExact, kClamped, kRefused };
  Added add(double v, uint64_t n = 1);
  // As add(), but the sum grows by `sum_added` instead of v * n (a DogStatsD histogram sampled
  // at @0.21 counts trunc(1/0.21) = 4 observations and adds v / 0.21 to the sum).
  Added add_with_sum(double v, uint64_t n, double sum_added);
  Added merge(const Sketch& other);
  void clear() { *this = Sketch(); }

  // q in [0, 1]; 0 for an empty sketch. Exact at q = 0 and q = 1 (min and max).
  double quantile(double q) const;

  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double min() const { return min_; }
  double max() const { return max_; }
  bool empty() const { return count_ == 0; }
  uint64_t zero_count() const { return zero_count_; }

  // Non-empty bins in value order (negative, zero, positive).
  std::vector<Bin> bins() const;

  // Raw store access for encoding: (key, count) for non-empty bins.
  struct KeyCount {
    int32_t key;
    uint64_t count;
  };
  std::vector<KeyCount> positive_bins() const { return store_bins(pos_); }
  std::vector<KeyCount> negative_bins() const { return store_bins(neg_); }

  // Builds a sketch from decoded parts; checks that the bins add up to count and keys are in range.
  static Result<Sketch> from_parts(uint64_t count, double sum, double min, double max,
                                   uint64_t zero_count, const std::vector<KeyCount>& pos,
                                   const std::vector<KeyCount>& neg);

  static int32_t key_of(double positive_value);
  static double value_of(int32_t key);
  static double lower_of(int32_t key);

  bool operator==(const Sketch& o) const;

 private:
  struct Store {
    int32_t offset = 0;
    std::vector<uint64_t> bins;
    void add(int32_t key, uint64_t n);
  };
  static std::vector<KeyCount> store_bins(const Store& s);

  Store pos_;
  Store neg_;
  uint64_t zero_count_ = 0;
  uint64_t count_ = 0;
  double sum_ = 0;
  double min_ = 0;
  double max_ = 0;
};

}  // namespace tally
