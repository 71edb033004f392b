// bench_memory: resident memory per active series in the collector's aggregation state (the
// catalog, each shard's series state and its open buckets at every resolution), measured as the
// growth of RSS while N counter series each receive a point in the current second.
// Usage: bench_memory [--quick]   (default 1,000,000 series; --quick 100,000)
#include <unistd.h>

#include <cstdio>
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

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int n = quick ? 100000 : 1000000;
  spdlog::set_level(spdlog::level::warn);
  auto dir = std::filesystem::temp_directory_path() / ("tally-bench-mem-" + std::to_string(getpid()));
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
  const long before = rss_bytes();
  const int64_t t = clock.now_s();
  const int chunk = 10000;
  for (int base = 0; base < n; base += chunk) {
    std::vector<ShardWork> work(2);
    for (int i = base; i < std::min(n, base + chunk); ++i) {
      bool created = false;
      auto s = catalog.get_or_create("api.requests",
                                     {{"endpoint", "/e" + std::to_string(i % 50)}, {"instance", "i" + std::to_string(i)}},
                                     Kind::kCounter, &created);
      work[(*s)->shard].new_series.push_back(*s);
      work[(*s)->shard].counters.push_back({(*s)->id, t, 1.0});
    }
    router.route(std::move(work));
  }
  while (metrics.queue_depth.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const long after = rss_bytes();
  std::printf("memory/active-series  %d series, %.0f bytes per series above the empty process (RSS %.1f -> %.1f MiB)\n", n,
              static_cast<double>(after - before) / n, before / 1048576.0, after / 1048576.0);
  for (auto& s : shards) s->stop();
  std::filesystem::remove_all(dir);
  return 0;
}
