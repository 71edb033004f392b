// Decimation of a series to the chart's pixel width before it reaches Qt Charts.
//
// lttb(): Largest-Triangle-Three-Buckets (Steinarsson 2013) down to `threshold` points. It always
// keeps the first and last point, and (unlike plain LTTB) also the global minimum and maximum,
// which replace the pick of their bucket, so a spike is never decimated away.
// minMaxPerPixel(): for each of `pixels` equal x slices keeps first, min, max, last (M4), which is
// visually lossless for a line drawn at that width.
// Input x must be non-decreasing. Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <vector>

namespace tally::dash {

struct XY {
  double x;
  double y;
  bool operator==(const XY&) const = default;
};

std::vector<XY> lttb(const std::vector<XY>& in, size_t threshold);
std::vector<XY> minMaxPerPixel(const std::vector<XY>& in, double xMin, double xMax, int pixels);

// Index range [first, last) of points with x in [xMin, xMax], widened by one point on each side
// so lines run to the plot edge.
std::pair<size_t, size_t> visibleRange(const std::vector<XY>& in, double xMin, double xMax);

}  // namespace tally::dash
