// bench_disk: what the shard files take on disk, as `du` sees them, over hours of the standard
// dataset (docs/BENCHMARKS.md, "Disk over hours").
//
// The dataset (bench_dataset.h: 10,000 counters, one value a second) is generated an hour at a
// time and driven through the real storage path, SeriesCatalog -> Router -> Shard (aggregation
// into every resolution, flushes, checkpoints, compaction, retention) -> ShardStore, by a manual
// clock one second at a time, as bench_storage does, so hours of ingest take minutes. After every
// minute of data the data directory's allocated size is summed like `du` (st_blocks of every
// file: the shard files, their SQLite -wal and -shm files); every --trace-every seconds of data
// a line shows the size, the bytes per point ingested so far, and where the shard files' pages
// are (hot rows, segments, chunks, free pages; SQLite's dbstat).
//
//   RESULT hours=3 points=108000000 peak_du_bytes=... peak_bytes_per_point=...
//          end_bytes_per_point=...
// peak_bytes_per_point is the largest `du` of the run divided by every point of the run (the
// figure the performance target is scored on); end_ is the size when the run ends.
//
// Usage: bench_disk [--hours H] [--minutes M] [--retention SPEC] [--trace-every S] [--keep DIR]
//                   [--quick]
//   --hours 3 by default; --quick: 10 minutes of data (what `make test` runs through ctest, to
//   keep it working; it checks no size). --retention as the collector's `retention` setting
//   (default its default). TALLY_BENCH_GEN=path/gen_counters.c as for bench_storage.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "aggregate/shard.h"
#include "bench_dataset.h"
#include "self_metrics.h"
#include "storage/shard_store.h"
#include "storage/sqlite.h"

using namespace tally;
using namespace tally::collector;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kStart = 1795806000;  // an hour boundary, as in bench_storage
constexpr uint32_t kShards = 2;

// Bytes allocated to the files under `dir`, as `du` counts them.
uint64_t du_bytes(const fs::path& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
      n += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return n;
}

// Pages of one shard file by tier: "hot", "seg", "chunk", "other" (catalog, meta, indexes) and
// "free" (the free list).
void add_tiers(const std::string& path, std::map<std::string, double>* out) {
  auto db = Db::open(path, false, true);
  if (!db) return;
  auto st = (*db)->prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name");
  if (st) {
    while (true) {
      auto row = st->step();
      if (!row || !*row) break;
      const std::string name(st->text(0));
      const char* tier = name.starts_with("hot_")     ? "hot"
                         : name.starts_with("seg_")   ? "seg"
                         : name.starts_with("chunk_") ? "chunk"
                                                      : "other";
      (*out)[tier] += static_cast<double>(st->int64(1));
    }
  }
  auto fl = (*db)->prepare(
      "SELECT (SELECT freelist_count FROM pragma_freelist_count) * "
      "(SELECT page_size FROM pragma_page_size)");
  if (fl) {
    auto row = fl->step();
    if (row && *row) (*out)["free"] += static_cast<double>(fl->int64(0));
  }
}

double mib(double b) {
  return b / 1048576.0;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t seconds = 3 * 3600;
  int64_t trace_every = 900;
  std::string retention(kDefaultRetention);
  std::string keep;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--hours" && i + 1 < argc)
      seconds = std::atoll(argv[++i]) * 3600;
    else if (a == "--minutes" && i + 1 < argc)
      seconds = std::atoll(argv[++i]) * 60;
    else if (a == "--quick")
      seconds = 600, trace_every = 300;
    else if (a == "--retention" && i + 1 < argc)
      retention = argv[++i];
    else if (a == "--trace-every" && i + 1 < argc)
      trace_every = std::max<int64_t>(60, std::atoll(argv[++i]));
    else if (a == "--keep" && i + 1 < argc)
      keep = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: bench_disk [--hours H] [--minutes M] [--retention SPEC] "
                   "[--trace-every S] [--keep DIR] [--quick]\n");
      return 2;
    }
  }
  seconds = std::max<int64_t>(60, seconds / 60 * 60);
  spdlog::set_level(spdlog::level::warn);
  const auto res = parse_retention(retention);
  if (!res) {
    std::fprintf(stderr, "bench_disk: %s\n", res.status().to_string().c_str());
    return 2;
  }

  std::string gen = TALLY_SOURCE_DIR "/../shared/bench-data/gen_counters.c";
  if (const char* e = std::getenv("TALLY_BENCH_GEN")) gen = e;
  if (!fs::exists(gen)) {
    std::printf("bench_disk: skipped: no dataset generator at %s (set TALLY_BENCH_GEN)\n",
                gen.c_str());
    return 0;
  }
  const fs::path tmp =
      keep.empty() ? fs::temp_directory_path() / ("tally-bench-disk-" + std::to_string(getpid()))
                   : fs::path(keep);
  fs::remove_all(tmp);
  const fs::path data = tmp / "data", gen_dir = tmp / "gen";
  fs::create_directories(data);

  std::vector<std::string> paths;
  for (uint32_t i = 0; i < kShards; ++i)
    paths.push_back((data / ("shard-" + std::to_string(i) + ".sqlite")).string());
  ManualClock clock(kStart * 1000);
  SelfMetrics metrics;
  SeriesCatalog catalog(kShards);
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<Shard*> raw;
  for (uint32_t i = 0; i < kShards; ++i) {
    auto store = ShardStore::open(paths[i], *res, {StorageLayout::kChunks});
    if (!store) {
      std::fprintf(stderr, "bench_disk: %s\n", store.status().to_string().c_str());
      return 1;
    }
    ShardOptions o;
    o.index = i;
    o.resolutions = *res;
    shards.push_back(std::make_unique<Shard>(o, std::move(*store), clock, nullptr, metrics));
    raw.push_back(shards.back().get());
  }
  Router router(raw);
  for (auto& s : shards) s->start();

  std::printf("bench_disk: 10,000 counters x %" PRId64 " s, %u shards, retention %s\n", seconds,
              kShards, retention.c_str());
  std::printf("%10s %12s %10s %12s %9s %9s %9s %9s %9s\n", "data_s", "points", "du_MiB",
              "bytes/point", "hot", "seg", "chunk", "other", "free");
  uint64_t points = 0, lsn = 0, peak = 0;
  int64_t peak_t = 0;
  std::vector<const SeriesInfo*> ids;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t hour_start = 0; hour_start < seconds; hour_start += 3600) {
    bench::Dataset d;
    const int64_t n = std::min<int64_t>(3600, seconds - hour_start);
    if (!bench::load_dataset(gen, kStart + hour_start, n, gen_dir, &d)) {
      std::fprintf(stderr, "bench_disk: could not generate or parse the dataset\n");
      return 1;
    }
    ids.assign(d.series.size(), nullptr);
    for (size_t i = 0; i < d.series.size(); ++i) {
      bool created = false;
      ids[i] =
          *catalog.get_or_create(d.series[i].first, d.series[i].second, Kind::kCounter, &created);
    }
    for (int64_t t = 0; t < n; ++t) {
      const int64_t now = kStart + hour_start + t;
      std::vector<ShardWork> work(kShards);
      for (auto& w : work) w.counters.reserve(d.series.size() / kShards + 64);
      if (hour_start == 0 && t == 0)
        for (const auto* info : ids) work[info->shard].new_series.push_back(info);
      const uint32_t* row = &d.values[static_cast<size_t>(t) * d.series.size()];
      for (size_t c = 0; c < ids.size(); ++c)
        work[ids[c]->shard].counters.push_back({ids[c], now, static_cast<double>(row[c])});
      points += ids.size();
      for (auto& s : shards)
        while (s->applied_lsn() < lsn) std::this_thread::sleep_for(std::chrono::microseconds(20));
      clock.set_ms((now + 1) * 1000);
      router.route(std::move(work), ++lsn);
      const int64_t done = hour_start + t + 1;
      if (done % 60 == 0) {
        const uint64_t du = du_bytes(data);
        if (du > peak) peak = du, peak_t = done;
        if (done % trace_every == 0 || done == seconds) {
          std::map<std::string, double> tiers;
          for (const auto& p : paths) add_tiers(p, &tiers);
          std::printf("%10" PRId64 " %12" PRIu64 " %10.1f %12.3f %9.1f %9.1f %9.1f %9.1f %9.1f\n",
                      done, points, mib(static_cast<double>(du)),
                      static_cast<double>(du) / static_cast<double>(points), mib(tiers["hot"]),
                      mib(tiers["seg"]), mib(tiers["chunk"]), mib(tiers["other"]),
                      mib(tiers["free"]));
          std::fflush(stdout);
        }
      }
    }
  }
  for (auto& s : shards)
    while (s->applied_lsn() < lsn || s->queue_depth() > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(20));
  for (auto& s : shards) s->stop();
  shards.clear();
  const uint64_t end = du_bytes(data);
  if (end > peak) peak = end, peak_t = seconds;
  std::printf("RESULT hours=%.2f points=%" PRIu64 " peak_du_bytes=%" PRIu64 " peak_at_s=%" PRId64
              " peak_bytes_per_point=%.3f end_du_bytes=%" PRIu64
              " end_bytes_per_point=%.3f wall_s=%.0f\n",
              static_cast<double>(seconds) / 3600, points, peak, peak_t,
              static_cast<double>(peak) / static_cast<double>(points), end,
              static_cast<double>(end) / static_cast<double>(points),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (keep.empty()) fs::remove_all(tmp);
  return 0;
}
