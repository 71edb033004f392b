// bench_memory: resident memory per active series in the collector's aggregation state (the
// catalog, each shard's series state and its open buckets at every resolution), measured as the
// growth of RSS while N counter series each receive a point in the current second.
//   memory/active-series   the headline: counters, catalog + shards
//   memory/catalog         the same series in the catalog alone (created before any point)
//   memory/shards          what the points then add in the shards (open buckets, series state)
//   memory/gauge, memory/distribution   N/10 series of that kind, one point each, measured after
//                          the counters in the same process (freed memory may be reused)
// Usage: bench_memory [--quick]   (default 1,000,000 series; --quick 100,000)
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "aggregate/shard.h"
#include "storage/shard_store.h"

using namespace tally;
using namespace tally::collector;

namespace {

long rss_bytes() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

}  // namespace

// Creates series [base, base + n) of metric in the catalog; when route is set, also sends each a
// point at t (one per kind's shape) through the router.
void feed(SeriesCatalog& catalog, Router* router, const std::string& metric, Kind kind, int n,
          int64_t t) {
  const int chunk = 10000;
  for (int base = 0; base < n; base += chunk) {
    std::vector<ShardWork> work(catalog.shard_count());
    for (int i = base; i < std::min(n, base + chunk); ++i) {
      bool created = false;
      auto s = catalog.get_or_create(
          metric,
          {{"endpoint", "/e" + std::to_string(i % 50)}, {"instance", "i" + std::to_string(i)}},
          kind, &created);
      if (!s) {
        std::fprintf(stderr, "bench_memory: %s\n", s.status().to_string().c_str());
        std::exit(1);
      }
      if (!router) continue;
      auto& w = work[(*s)->shard];
      w.new_series.push_back(*s);  // the definition, also for series the catalog already had
      switch (kind) {
        case Kind::kCounter:
          w.counters.push_back({*s, t, 1.0});
          break;
        case Kind::kGauge:
          w.gauges.push_back({*s, t, 1.0, 1.0, 1.0, 1.0, 1});
          break;
        case Kind::kDistribution: {
          Sketch sk;
          sk.add(12.5);
          w.dists.push_back({*s, t, std::move(sk)});
          break;
        }
      }
    }
    if (router) router->route(std::move(work));
  }
}

void settle(const SelfMetrics& metrics) {
  while (metrics.queue_depth.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int n = quick ? 100000 : 1000000;
  spdlog::set_level(spdlog::level::warn);
  auto dir =
      std::filesystem::temp_directory_path() / ("tally-bench-mem-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto res = *parse_retention(kDefaultRetention);
  SelfMetrics metrics;
  SeriesCatalog catalog(2);
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<Shard*> raw;
  // A clock one hour ahead of nothing: buckets stay open for the whole measurement.
  ManualClock clock(1'800'000'000'000);
  for (uint32_t i = 0; i < 2; ++i) {
    auto store = ShardStore::open((dir / ("shard-" + std::to_string(i) + ".sqlite")).string(), res);
    ShardOptions o;
    o.index = i;
    o.resolutions = res;
    o.checkpoint_every_s = 1 << 30;
    shards.push_back(std::make_unique<Shard>(o, std::move(*store), clock, nullptr, metrics));
    raw.push_back(shards.back().get());
    shards.back()->start();
  }
  Router router(raw);
  const int64_t t = clock.now_s();
  const long before = rss_bytes();
  feed(catalog, nullptr, "api.requests", Kind::kCounter, n, t);
  const long cataloged = rss_bytes();
  feed(catalog, &router, "api.requests", Kind::kCounter, n, t);
  settle(metrics);
  const long after = rss_bytes();
  auto per = [](long a, long b, int count) { return static_cast<double>(b - a) / count; };
  std::printf(
      "memory/active-series  %d series, %.0f bytes per series above the empty process (RSS %.1f -> "
      "%.1f MiB)\n",
      n, per(before, after, n), before / 1048576.0, after / 1048576.0);
  std::printf("memory/catalog        %.0f bytes per series (%zu interned strings)\n",
              per(before, cataloged, n), catalog.interned_strings());
  std::printf(
      "memory/shards         %.0f bytes per series (open buckets at %zu resolutions, series "
      "state)\n",
      per(cataloged, after, n), res.size());
  const int m = n / 10;
  long a = rss_bytes();
  feed(catalog, &router, "queue.depth", Kind::kGauge, m, t);
  settle(metrics);
  long b = rss_bytes();
  std::printf("memory/gauge          %d series, %.0f bytes per series (catalog + shards)\n", m,
              per(a, b, m));
  a = rss_bytes();
  feed(catalog, &router, "api.latency_ms", Kind::kDistribution, m, t);
  settle(metrics);
  b = rss_bytes();
  std::printf("memory/distribution   %d series, %.0f bytes per series (catalog + shards)\n", m,
              per(a, b, m));
  for (auto& s : shards) s->stop();
  std::filesystem::remove_all(dir);
  return 0;
}
