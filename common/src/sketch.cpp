#include "tally/common/sketch.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tally {
namespace {

const double kGamma = (1 + kSketchRelativeAccuracy) / (1 - kSketchRelativeAccuracy);
const double kInvLogGamma = 1.0 / std::log(kGamma);

// a + b, held at +-DBL_MAX instead of becoming infinite; *clamped is set when it was held.
double saturating_add(double a, double b, bool* clamped) {
  const double r = a + b;
  if (std::isfinite(r)) return r;
  *clamped = true;
  return std::copysign(std::numeric_limits<double>::max(), r);
}

}  // namespace

int32_t Sketch::key_of(double v) {
  auto k = static_cast<int32_t>(std::ceil(std::log(v) * kInvLogGamma));
  return std::clamp(k, -kMaxSketchKey, kMaxSketchKey);
}

double Sketch::value_of(int32_t key) {
  return 2.0 * std::pow(kGamma, key) / (kGamma + 1.0);
}
double Sketch::lower_of(int32_t key) {
  return std::pow(kGamma, key - 1);
}

void Sketch::Store::add(int32_t key, uint64_t n) {
  // Dense bins over at most kMaxSketchSpan keys: a key that would widen the span further folds
  // the lowest bins into one (DDSketch's collapsing-lowest store), so no input, merge or decode
  // allocates more than kMaxSketchSpan x 8 bytes per store. Only the lowest quantiles of a sketch
  // spanning ~35 decades lose accuracy.
  if (bins.empty()) {
    offset = key;
    bins.assign(1, 0);
  } else if (key < offset) {
    const int32_t top = offset + static_cast<int32_t>(bins.size()) - 1;
    if (top - key >= kMaxSketchSpan) key = top - kMaxSketchSpan + 1;  // the lowest kept bin
    if (key < offset) {
      bins.insert(bins.begin(), static_cast<size_t>(offset - key), 0);
      offset = key;
    }
  } else if (key >= offset + static_cast<int32_t>(bins.size())) {
    if (key - offset >= kMaxSketchSpan) {
      const int32_t low = key - kMaxSketchSpan + 1;  // the new lowest key
      const size_t fold = std::min(bins.size(), static_cast<size_t>(low - offset));
      uint64_t folded = 0;
      for (size_t i = 0; i < fold; ++i) folded += bins[i];
      bins.erase(bins.begin(), bins.begin() + static_cast<std::ptrdiff_t>(fold));
      if (bins.empty()) bins.assign(1, 0);
      bins.front() += folded;
      offset = low;
    }
    bins.resize(static_cast<size_t>(key - offset + 1), 0);
  }
  bins[static_cast<size_t>(key - offset)] += n;
}

Sketch::Added Sketch::add(double v, uint64_t n) {
  if (n == 0 || !std::isfinite(v) || count_ + n < count_) return Added::kRefused;
  if (count_ == 0) {
    min_ = max_ = v;
  } else {
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }
  count_ += n;
  bool clamped = false;
  sum_ = saturating_add(sum_, v * static_cast<double>(n), &clamped);
  if (v >= kMinIndexable)
    pos_.add(key_of(v), n);
  else if (v <= -kMinIndexable)
    neg_.add(key_of(-v), n);
  else
    zero_count_ += n;
  return clamped ? Added::kClamped : Added::kExact;
}

Sketch::Added Sketch::add_with_sum(double v, uint64_t n, double sum_added) {
  if (std::isnan(sum_added) || std::isinf(sum_added)) return Added::kRefused;
  const double sum_before = sum_;
  const Added added = add(v, n);
  if (added == Added::kRefused) return added;
  bool clamped = false;
  sum_ = saturating_add(sum_before, sum_added, &clamped);
  return clamped ? Added::kClamped : Added::kExact;
}

Sketch::Added Sketch::merge(const Sketch& o) {
  if (o.count_ == 0) return Added::kExact;
  if (count_ + o.count_ < count_) return Added::kRefused;  // every bin stays below count_
  if (count_ == 0) {
    *this = o;
    return Added::kExact;
  }
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
  count_ += o.count_;
  bool clamped = false;
  sum_ = saturating_add(sum_, o.sum_, &clamped);
  zero_count_ += o.zero_count_;
  for (size_t i = 0; i < o.pos_.bins.size(); ++i)
    if (o.pos_.bins[i]) pos_.add(o.pos_.offset + static_cast<int32_t>(i), o.pos_.bins[i]);
  for (size_t i = 0; i < o.neg_.bins.size(); ++i)
    if (o.neg_.bins[i]) neg_.add(o.neg_.offset + static_cast<int32_t>(i), o.neg_.bins[i]);
  return clamped ? Added::kClamped : Added::kExact;
}

double Sketch::quantile(double q) const {
  if (count_ == 0) return 0;
  if (q <= 0) return min_;
  if (q >= 1) return max_;
  // Rank of the wanted value, 0-based, as in DDSketch: floor(q * (n - 1)).
  auto rank = static_cast<uint64_t>(q * static_cast<double>(count_ - 1));
  uint64_t seen = 0;
  double result = 0;
  bool found = false;
  for (size_t i = neg_.bins.size(); i-- > 0 && !found;) {
    seen += neg_.bins[i];
    if (seen > rank) {
      result = -value_of(neg_.offset + static_cast<int32_t>(i));
      found = true;
    }
  }
  if (!found) {
    seen += zero_count_;
    if (seen > rank) {
      result = 0;
      found = true;
    }
  }
  for (size_t i = 0; i < pos_.bins.size() && !found; ++i) {
    seen += pos_.bins[i];
    if (seen > rank) {
      result = value_of(pos_.offset + static_cast<int32_t>(i));
      found = true;
    }
  }
  return std::clamp(result, min_, max_);
}

std::vector<Sketch::Bin> Sketch::bins() const {
  std::vector<Bin> out;
  for (size_t i = neg_.bins.size(); i-- > 0;) {
    if (!neg_.bins[i]) continue;
    int32_t k = neg_.offset + static_cast<int32_t>(i);
    out.push_back({-std::pow(kGamma, k), -lower_of(k), neg_.bins[i]});
  }
  if (zero_count_) out.push_back({-kMinIndexable, kMinIndexable, zero_count_});
  for (size_t i = 0; i < pos_.bins.size(); ++i) {
    if (!pos_.bins[i]) continue;
    int32_t k = pos_.offset + static_cast<int32_t>(i);
    out.push_back({lower_of(k), std::pow(kGamma, k), pos_.bins[i]});
  }
  return out;
}

std::vector<Sketch::KeyCount> Sketch::store_bins(const Store& s) {
  std::vector<KeyCount> out;
  for (size_t i = 0; i < s.bins.size(); ++i)
    if (s.bins[i]) out.push_back({s.offset + static_cast<int32_t>(i), s.bins[i]});
  return out;
}

Result<Sketch> Sketch::from_parts(uint64_t count, double sum, double min, double max,
                                  uint64_t zero_count, const std::vector<KeyCount>& pos,
                                  const std::vector<KeyCount>& neg) {
  Sketch s;
  uint64_t total = zero_count;
  for (const auto* store : {&pos, &neg}) {
    for (const auto& kc : *store) {
      if (kc.key < -kMaxSketchKey || kc.key > kMaxSketchKey)
        return Status::invalid_argument("sketch key out of range");
      if (kc.count == 0) return Status::invalid_argument("sketch bin with zero count");
      if (total + kc.count < total) return Status::invalid_argument("sketch count overflows");
      total += kc.count;
    }
  }
  if (total != count) return Status::invalid_argument("sketch bins do not add up to its count");
  if (count > 0 && !(min <= max)) return Status::invalid_argument("sketch min is above its max");
  if (!std::isfinite(sum) || (count > 0 && (!std::isfinite(min) || !std::isfinite(max))))
    return Status::invalid_argument("sketch has a non-finite sum, min or max");
  for (const auto& kc : pos) s.pos_.add(kc.key, kc.count);
  for (const auto& kc : neg) s.neg_.add(kc.key, kc.count);
  s.zero_count_ = zero_count;
  s.count_ = count;
  s.sum_ = sum;
  s.min_ = count ? min : 0;
  s.max_ = count ? max : 0;
  return s;
}

bool Sketch::operator==(const Sketch& o) const {
  return count_ == o.count_ && sum_ == o.sum_ && min_ == o.min_ && max_ == o.max_ &&
         zero_count_ == o.zero_count_ && positive_bins().size() == o.positive_bins().size() && [&] {
           auto a = positive_bins(), b = o.positive_bins();
           for (size_t i = 0; i < a.size(); ++i)
             if (a[i].key != b[i].key || a[i].count != b[i].count) return false;
           auto c = negative_bins(), d = o.negative_bins();
           if (c.size() != d.size()) return false;
           for (size_t i = 0; i < c.size(); ++i)
             if (c[i].key != d[i].key || c[i].count != d[i].count) return false;
           return true;
         }();
}

}  // namespace tally
