#include "bench_dataset.h"

#include <sys/resource.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>
#include <unordered_map>

namespace tally::bench {

namespace fs = std::filesystem;

namespace {

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// `api_requests{endpoint="e1",status="200",region="r1"}` -> metric, canonical tags.
bool parse_key(std::string_view key, std::string* metric, Tags* tags) {
  const size_t brace = key.find('{');
  if (brace == std::string_view::npos || key.back() != '}') return false;
  *metric = std::string(key.substr(0, brace));
  std::string_view rest = key.substr(brace + 1, key.size() - brace - 2);
  tags->clear();
  while (!rest.empty()) {
    const size_t eq = rest.find("=\"");
    const size_t end = rest.find('"', eq + 2);
    if (eq == std::string_view::npos || end == std::string_view::npos) return false;
    tags->push_back(
        {std::string(rest.substr(0, eq)), std::string(rest.substr(eq + 2, end - eq - 2))});
    rest = rest.substr(std::min(rest.size(), end + 2));
  }
  std::sort(tags->begin(), tags->end(), [](const Tag& a, const Tag& b) { return a.key < b.key; });
  return true;
}

}  // namespace

// Generates the data with gen_counters and parses its Prometheus text into a matrix. The parser
// is the bench's own (the collector has no Prometheus-text ingest): lines of one second come in
// the same series order, so it checks the expected key first and hashes only on a miss.
bool load_dataset(const std::string& gen_src, int64_t start_s, int64_t seconds, const fs::path& tmp,
                  Dataset* d) {
  const fs::path gen = tmp / "gen_counters", out = tmp / "data";
  fs::create_directories(out);
  const std::string cc = "gcc -O2 -o '" + gen.string() + "' '" + gen_src + "' -lm";
  if (std::system(cc.c_str()) != 0) return false;
  const std::string run = "'" + gen.string() + "' " + std::to_string(start_s) + " " +
                          std::to_string(seconds) + " 60 '" + out.string() + "' 2>/dev/null";
  if (std::system(run.c_str()) != 0) return false;

  const double cpu0 = cpu_seconds();
  d->start_s = start_s;
  d->seconds = seconds;
  std::unordered_map<std::string, uint32_t> index;
  std::vector<std::string> order;  // keys in first-seen order: every second lists them so
  std::string buf;
  for (int64_t f = 0; f * 60 < seconds; ++f) {
    char name[32];
    std::snprintf(name, sizeof name, "batch_%05" PRId64 ".prom", f);
    std::ifstream in(out / name, std::ios::binary);
    buf.resize(fs::file_size(out / name));
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    fs::remove(out / name);
    const char* p = buf.data();
    const char* end = p + buf.size();
    int64_t cur_ts = -1;
    size_t k = 0;
    while (p < end) {
      const char* brace =
          static_cast<const char*>(std::memchr(p, '}', static_cast<size_t>(end - p)));
      if (!brace) return false;
      std::string_view key(p, static_cast<size_t>(brace + 1 - p));
      p = brace + 2;
      uint64_t v = 0;
      while (*p >= '0' && *p <= '9') v = v * 10 + static_cast<uint64_t>(*p++ - '0');
      ++p;
      int64_t ts = 0;
      while (*p >= '0' && *p <= '9') ts = ts * 10 + (*p++ - '0');
      ++p;  // '\n'
      if (ts != cur_ts) {
        cur_ts = ts;
        k = 0;
      }
      uint32_t col;
      if (k < order.size() && order[k] == key) {
        col = static_cast<uint32_t>(k);
      } else {
        auto [it, added] = index.emplace(std::string(key), static_cast<uint32_t>(order.size()));
        if (added) {
          order.emplace_back(key);
          d->series.emplace_back();
          if (!parse_key(key, &d->series.back().first, &d->series.back().second)) return false;
        }
        col = it->second;
      }
      ++k;
      const int64_t t = ts / 1000 - start_s;
      if (t < 0 || t >= seconds) return false;
      if (d->values.empty()) d->values.assign(static_cast<size_t>(seconds) * 10000, 0);
      if (col >= 10000) return false;
      d->values[static_cast<size_t>(t) * 10000 + col] = static_cast<uint32_t>(v);
      ++d->points;
    }
  }
  d->parse_cpu_s = cpu_seconds() - cpu0;
  return d->series.size() == 10000 && d->points == static_cast<uint64_t>(seconds) * 10000;
}

}  // namespace tally::bench
