#include "decimate.h"

#include <algorithm>
#include <cmath>

namespace tally::dash {

std::vector<XY> lttb(const std::vector<XY>& in, size_t threshold) {
  const size_t n = in.size();
  if (threshold >= n || threshold < 3) return in;
  size_t iMin = 0, iMax = 0;
  for (size_t i = 1; i < n; ++i) {
    if (in[i].y < in[iMin].y) iMin = i;
    if (in[i].y > in[iMax].y) iMax = i;
  }
  std::vector<XY> out;
  out.reserve(threshold);
  out.push_back(in[0]);
  // Buckets over the inner points 1..n-2.
  const double every = double(n - 2) / double(threshold - 2);
  size_t a = 0;
  for (size_t b = 0; b < threshold - 2; ++b) {
    size_t start = size_t(std::floor(b * every)) + 1;
    size_t end = std::min(size_t(std::floor((b + 1) * every)) + 1, n - 1);
    // Average of the next bucket (or the last point).
    size_t nStart = end;
    size_t nEnd = std::min(size_t(std::floor((b + 2) * every)) + 1, n - 1);
    double avgX = 0, avgY = 0;
    if (nEnd <= nStart) {
      avgX = in[n - 1].x;
      avgY = in[n - 1].y;
    } else {
      for (size_t i = nStart; i < nEnd; ++i) {
        avgX += in[i].x;
        avgY += in[i].y;
      }
      avgX /= double(nEnd - nStart);
      avgY /= double(nEnd - nStart);
    }
    size_t pick = start;
    if (iMin >= start && iMin < end)
      pick = iMin;
    else if (iMax >= start && iMax < end)
      pick = iMax;
    else {
      double best = -1;
      for (size_t i = start; i < end; ++i) {
        double area = std::abs((in[a].x - avgX) * (in[i].y - in[a].y) -
                               (in[a].x - in[i].x) * (avgY - in[a].y));
        if (area > best) {
          best = area;
          pick = i;
        }
      }
    }
    // A bucket holding both extremes keeps both (in x order).
    if (iMin >= start && iMin < end && iMax >= start && iMax < end && iMin != iMax) {
      out.push_back(in[std::min(iMin, iMax)]);
      out.push_back(in[std::max(iMin, iMax)]);
      a = std::max(iMin, iMax);
      continue;
    }
    out.push_back(in[pick]);
    a = pick;
  }
  out.push_back(in[n - 1]);
  return out;
}

std::vector<XY> minMaxPerPixel(const std::vector<XY>& in, double xMin, double xMax, int pixels) {
  if (pixels < 1 || in.size() <= size_t(pixels) * 4 || !(xMax > xMin)) return in;
  std::vector<XY> out;
  out.reserve(size_t(pixels) * 4 + 2);
  const double width = (xMax - xMin) / pixels;
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    long col = long(std::floor((in[i].x - xMin) / width));
    size_t first = i, lo = i, hi = i, last = i;
    while (i < n && long(std::floor((in[i].x - xMin) / width)) == col) {
      if (in[i].y < in[lo].y) lo = i;
      if (in[i].y > in[hi].y) hi = i;
      last = i;
      ++i;
    }
    size_t picks[4] = {first, std::min(lo, hi), std::max(lo, hi), last};
    size_t prev = size_t(-1);
    for (size_t p : picks)
      if (p != prev) {
        out.push_back(in[p]);
        prev = p;
      }
  }
  return out;
}

std::pair<size_t, size_t> visibleRange(const std::vector<XY>& in, double xMin, double xMax) {
  auto lo =
      std::lower_bound(in.begin(), in.end(), xMin, [](const XY& p, double x) { return p.x < x; });
  auto hi =
      std::upper_bound(in.begin(), in.end(), xMax, [](double x, const XY& p) { return x < p.x; });
  size_t first = size_t(lo - in.begin());
  size_t last = size_t(hi - in.begin());
  if (first > 0) --first;
  if (last < in.size()) ++last;
  return {first, last};
}

}  // namespace tally::dash
