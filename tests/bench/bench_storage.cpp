// bench_storage: storage size, ingest rate and query latency on the standard counter dataset,
// chunks side by side with plain rows (the first storage format) and VictoriaMetrics' recorded
// figures (docs/BENCHMARKS.md, "Storage").
//
// The dataset: 10,000 counters x one value a second, made by gen_counters.c (the shared benchmark
// data, built here with gcc into a temporary directory). Each layout gets a fresh data directory
// and the real storage path: SeriesCatalog -> Router -> Shard (aggregation into every resolution,
// flushes, checkpoints, compaction) -> ShardStore, driven by a manual clock one second at a time,
// as a live collector would see the points. Then:
//   disk      bytes per point of the 1 s resolution's tables (dbstat), of every table, and of the
//   file ingest    points per second (wall) and CPU-seconds per million points (process CPU, parse
//   excluded) queries   QueryEngine::range p50/p99 over --runs runs, each on new SQLite connections
//   (no page
//             cache); one series at step 1 s, and sum by (status) over all series at step 10 s,
//             read from the 10 s rollups (the planner's choice) and from the 1 s buckets.
//
// Usage: bench_storage [--full | --seconds N] [--runs N] [--no-baseline] [--keep DIR] [--quick]
//   default 600 s of data (6 M points, about a minute); --full (or TALLY_BENCH_FULL=1): the hour
//   (36 M points, several minutes); --quick: 120 s and 10 runs. TALLY_BENCH_GEN=path/gen_counters.c
//   overrides where the generator is looked for (default: ../shared/bench-data/ beside the source).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "aggregate/shard.h"
#include "bench_dataset.h"
#include "query/promql.h"
#include "query/promql_eval.h"
#include "query/query_engine.h"
#include "self_metrics.h"
#include "storage/shard_store.h"
#include "storage/sqlite.h"

using namespace tally;
using namespace tally::collector;
using tally::bench::Dataset;
using tally::bench::load_dataset;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kStart =
    1795806000;                  // gen_counters' start in the recorded runs (an hour boundary)
constexpr uint32_t kShards = 2;  // one per core on the reference machine

// VictoriaMetrics 1.79 single-node on the same data and machine kind (docs/BENCHMARKS.md).
struct Reference {
  double points_per_s = 1.2e6, cpu_s_per_m = 1.42, bytes_per_point = 0.33;
  double one_p50_ms = 2.3, one_p99_ms = 10.6, sum_p50_ms = 338, sum_p99_ms = 408;
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// The machine's load: the query latencies mean little when other work shares the cores.
std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string line;
  std::getline(in, line);
  return line + "\n";
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// --- one layout ---

struct Quantiles {
  double p50 = 0, p99 = 0, cpu = 0;  // cpu: process CPU-ms per run, all threads
};
Quantiles quantiles(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(q * static_cast<double>(ms.size())))];
  };
  return {at(0.5), at(0.99), 0};
}

struct LayoutResult {
  double ingest_wall_s = 0, ingest_cpu_s = 0, compact_wall_s = 0, flush_s = 0;
  double bytes_1s = 0, bytes_all = 0, bytes_file = 0, bytes_all_compacted = 0;
  std::map<std::string, double> table_bytes;
  size_t runs_done = SIZE_MAX;  // the fewest runs any query got
  Quantiles one, sum10, sum1;
  // PromQL over all 10 k series at step 10 s: two aggregations alone, and a binary operator
  // between them (issue: within twice the cost of the two aggregations).
  Quantiles prom_a, prom_b, prom_ab;
  bool ok = true;
};

// Allocated bytes of each table (pages, free space inside them included); empty when the SQLite
// build has no dbstat.
std::map<std::string, double> table_bytes(const std::string& path) {
  std::map<std::string, double> out;
  auto db = Db::open(path, false, true);
  if (!db) return out;
  auto st = (*db)->prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name");
  if (!st) return out;
  while (true) {
    auto row = st->step();
    if (!row || !*row) break;
    out[std::string(st->text(0))] += static_cast<double>(st->int64(1));
  }
  return out;
}

double used_bytes(const std::string& path, double* file) {
  auto db = Db::open(path, false, true);
  if (!db) return 0;
  auto st = (*db)->prepare(
      "SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM "
      "pragma_freelist_count),"
      " (SELECT page_size FROM pragma_page_size)");
  if (!st) return 0;
  auto row = st->step();
  if (!row || !*row) return 0;
  *file += static_cast<double>(st->int64(0) * st->int64(2));
  return static_cast<double>((st->int64(0) - st->int64(1)) * st->int64(2));
}

bool checkpoint(const std::string& path) {
  auto db = Db::open(path, false);
  return db && (*db)->exec("PRAGMA wal_checkpoint(TRUNCATE)").is_ok();
}

bool is_1s_table(const std::string& name, StorageLayout layout) {
  if (layout == StorageLayout::kPlainRows) return name == "points_0";
  return name == "hot_1" || name == "seg_1" || name == "chunk_1";
}

LayoutResult run_layout(StorageLayout layout, const Dataset& d, const fs::path& dir, int runs) {
  LayoutResult r;
  const auto res = *parse_retention(kDefaultRetention);
  std::vector<std::string> paths;
  fs::create_directories(dir);
  for (uint32_t i = 0; i < kShards; ++i)
    paths.push_back((dir / ("shard-" + std::to_string(i) + ".sqlite")).string());
  ManualClock clock(kStart * 1000);
  SelfMetrics metrics;
  SeriesCatalog catalog(kShards);
  std::vector<const SeriesInfo*> ids(d.series.size());
  for (size_t i = 0; i < d.series.size(); ++i) {
    bool created = false;
    ids[i] =
        *catalog.get_or_create(d.series[i].first, d.series[i].second, Kind::kCounter, &created);
  }

  // Ingest: second t arrives when the clock reads t + 1, like a live SDK's flush; the next second
  // is routed once the shards have applied this one, so no point turns late.
  {
    std::vector<std::unique_ptr<Shard>> shards;
    std::vector<Shard*> raw;
    for (uint32_t i = 0; i < kShards; ++i) {
      auto store = ShardStore::open(paths[i], res, {layout});
      if (!store) {
        std::fprintf(stderr, "bench_storage: %s\n", store.status().to_string().c_str());
        r.ok = false;
        return r;
      }
      ShardOptions o;
      o.index = i;
      o.resolutions = res;
      shards.push_back(std::make_unique<Shard>(o, std::move(*store), clock, nullptr, metrics));
      raw.push_back(shards.back().get());
    }
    Router router(raw);
    for (auto& s : shards) s->start();
    const double cpu0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t lsn = 0;
    for (int64_t t = 0; t < d.seconds; ++t) {
      std::vector<ShardWork> work(kShards);
      for (auto& w : work) w.counters.reserve(d.series.size() / kShards + 64);
      if (t == 0)
        for (const auto* info : ids) work[info->shard].new_series.push_back(info);
      const uint32_t* row = &d.values[static_cast<size_t>(t) * 10000];
      for (size_t c = 0; c < ids.size(); ++c)
        work[ids[c]->shard].counters.push_back({ids[c], kStart + t, static_cast<double>(row[c])});
      // Poll gently: a spinning bench thread would take a core from the two shard threads.
      for (auto& s : shards)
        while (s->applied_lsn() < lsn) std::this_thread::sleep_for(std::chrono::microseconds(20));
      clock.set_ms((kStart + t + 1) * 1000);
      router.route(std::move(work), ++lsn);
    }
    for (auto& s : shards)
      while (s->applied_lsn() < lsn || s->queue_depth() > 0)
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    // The last seconds become final; stop() writes whatever is still open.
    clock.set_ms((kStart + d.seconds + 3) * 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    for (auto& s : shards) s->stop();
    r.ingest_wall_s = since(t0);
    r.flush_s = static_cast<double>(metrics.flush_latency.sum_us.load()) / 1e6;
    // No more points will come: close the 1 s chunk window the data ends in, as the shards would
    // an hour later.
    const auto c0 = std::chrono::steady_clock::now();
    const int64_t end_of_chunk = bucket_start(kStart + d.seconds - 1, 3600) + 3600 + 2;
    for (auto& s : shards) {
      if (auto st = s->store().compact(end_of_chunk); !st) {
        std::fprintf(stderr, "bench_storage: compact: %s\n", st.to_string().c_str());
        r.ok = false;
      }
    }
    r.compact_wall_s = since(c0);
    r.ingest_cpu_s = cpu_seconds() - cpu0;
  }

  // Disk.
  for (const auto& p : paths) {
    checkpoint(p);
    for (const auto& [name, bytes] : table_bytes(p)) r.table_bytes[name] += bytes;
    r.bytes_all += used_bytes(p, &r.bytes_file);
  }
  for (const auto& [name, bytes] : r.table_bytes)
    if (is_1s_table(name, layout)) r.bytes_1s += bytes;

  // Queries, on stores opened afresh; every run drops the readers' connections first.
  {
    std::vector<std::unique_ptr<Shard>> shards;
    std::vector<Shard*> raw;
    for (uint32_t i = 0; i < kShards; ++i) {
      ShardOptions o;
      o.index = i;
      o.resolutions = res;
      auto store = ShardStore::open(paths[i], res, {layout});
      if (!store) {
        r.ok = false;
        return r;
      }
      shards.push_back(std::make_unique<Shard>(o, std::move(*store), clock, nullptr, metrics));
      raw.push_back(shards.back().get());
    }
    for (const auto* info : ids) shards[info->shard]->restore_series(info);
    Router router(raw);
    QueryEngine engine(catalog, router, res, clock);
    QueryEngine raw_engine(catalog, router, {res[0]}, clock);  // 1 s buckets only
    auto time_query = [&](const QueryEngine& e, const RangeQuery& q, auto&& check) {
      std::vector<double> ms;
      double cpu_ms = 0;
      const auto started = std::chrono::steady_clock::now();
      for (int i = 0; i <= runs; ++i) {
        // A slow layout gets at most a minute per query (and at least 5 runs).
        if (i > 5 && since(started) > 60) break;
        for (auto& s : shards) s->store().drop_readers();
        const auto t0 = std::chrono::steady_clock::now();
        const double c0 = cpu_seconds();
        auto out = e.range(q);
        const double took = since(t0) * 1e3;
        if (i > 0) cpu_ms += (cpu_seconds() - c0) * 1e3;
        if (!out || !check(*out)) {
          std::fprintf(stderr, "bench_storage: query %s gave a wrong answer\n", q.metric.c_str());
          r.ok = false;
          return Quantiles{};
        }
        if (i > 0) ms.push_back(took);  // run 0 warms the OS page cache
      }
      r.runs_done = std::min(r.runs_done, ms.size());
      Quantiles out = quantiles(ms);
      out.cpu = cpu_ms / static_cast<double>(ms.size());
      return out;
    };
    RangeQuery one;
    one.metric = "api_requests";
    one.filters = {*parse_filter("endpoint=e1"), *parse_filter("status=200"),
                   *parse_filter("region=r1")};
    one.from = kStart;
    one.to = kStart + d.seconds;
    one.step = 1;
    size_t col = 0;
    while (
        col < ids.size() &&
        series_key(ids[col]->metric(), ids[col]->tags().materialize()) !=
            series_key("api_requests", {{"endpoint", "e1"}, {"region", "r1"}, {"status", "200"}}))
      ++col;
    r.one = time_query(engine, one, [&](const RangeResult& out) {
      if (out.series.size() != 1 || out.series[0].points.size() != static_cast<size_t>(d.seconds))
        return false;
      for (int64_t t = 0; t < d.seconds; ++t)
        if (out.series[0].points[static_cast<size_t>(t)].second !=
            d.values[static_cast<size_t>(t) * 10000 + col])
          return false;
      return true;
    });
    RangeQuery sum;
    sum.metric = "api_requests";
    sum.group_by = {"status"};
    sum.from = kStart;
    sum.to = kStart + d.seconds;
    sum.step = 10;
    double total = 0;
    for (uint32_t v : d.values) total += v;
    auto check_sum = [&](const RangeResult& out) {
      double got = 0;
      for (const auto& s : out.series)
        for (const auto& [t, v] : s.points) got += v;
      return out.series.size() == 5 && got == total;
    };
    r.sum10 = time_query(engine, sum, check_sum);
    r.sum1 = time_query(raw_engine, sum, check_sum);

    // PromQL, evaluated as /api/v1/query_range would (parse, check, evaluate), over the data.
    auto time_promql = [&](const std::string& query, size_t want_series) {
      auto expr = promql::parse(query);
      promql::ValueType type;
      if (!expr || promql::check(*expr->root, &type)) {
        std::fprintf(stderr, "bench_storage: PromQL %s refused\n", query.c_str());
        r.ok = false;
        return Quantiles{};
      }
      std::vector<int64_t> times;
      for (int64_t t = kStart + 60; t <= kStart + d.seconds; t += 10) times.push_back(t * 1000);
      std::vector<double> ms;
      double cpu_ms = 0;
      for (int i = 0; i <= std::min(runs, 20); ++i) {
        for (auto& s : shards) s->store().drop_readers();
        const auto t0 = std::chrono::steady_clock::now();
        const double c0 = cpu_seconds();
        prom::Value v;
        auto err = prom::evaluate(prom::EvalContext{engine, catalog, clock, times, 10000},
                                  *expr->root, &v);
        const double took = since(t0) * 1e3;
        if (err || v.vec.size() != want_series) {
          std::fprintf(stderr, "bench_storage: PromQL %s gave %zu series%s\n", query.c_str(),
                       v.vec.size(), err ? (": " + err->message).c_str() : "");
          r.ok = false;
          return Quantiles{};
        }
        if (i > 0) {
          ms.push_back(took);
          cpu_ms += (cpu_seconds() - c0) * 1e3;
        }
      }
      Quantiles out = quantiles(ms);
      out.cpu = cpu_ms / static_cast<double>(ms.size());
      return out;
    };
    const std::string a = "sum by (status) (rate(api_requests[1m]))";
    const std::string b = "sum by (status) (rate(api_requests{region=\"r1\"}[1m]))";
    r.prom_a = time_promql(a, 5);
    r.prom_b = time_promql(b, 5);
    r.prom_ab = time_promql(b + " / on(status) " + a, 5);
  }

  // Every resolution compacted as far as it goes (rollup windows are 10 h to 150 days long), on a
  // copy: the data directory stays as a live collector would have it.
  if (layout == StorageLayout::kChunks) {
    const fs::path copy = dir.string() + "-compacted";
    fs::remove_all(copy);
    fs::create_directories(copy);
    double file = 0;
    for (const auto& p : paths) {
      const fs::path c = copy / fs::path(p).filename();
      fs::copy_file(p, c);
      {
        auto store = ShardStore::open(c.string(), res, {layout});
        if (store) (void)(*store)->compact(kStart + 3LL * 365 * 86400);
      }
      checkpoint(c.string());
      r.bytes_all_compacted += used_bytes(c.string(), &file);
    }
    fs::remove_all(copy);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t seconds = 600;
  int runs = 50;
  bool baseline = true;
  std::string keep;
  if (const char* e = std::getenv("TALLY_BENCH_FULL"); e && *e && std::strcmp(e, "0") != 0)
    seconds = 3600;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--full")
      seconds = 3600;
    else if (a == "--quick")
      seconds = 120, runs = 10;
    else if (a == "--seconds" && i + 1 < argc)
      seconds = std::atoll(argv[++i]);
    else if (a == "--runs" && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else if (a == "--no-baseline")
      baseline = false;
    else if (a == "--keep" && i + 1 < argc)
      keep = argv[++i];
  }
  seconds = std::clamp<int64_t>(seconds, 60, 3600) / 60 * 60;
  spdlog::set_level(spdlog::level::warn);

  std::string gen = TALLY_SOURCE_DIR "/../shared/bench-data/gen_counters.c";
  if (const char* e = std::getenv("TALLY_BENCH_GEN")) gen = e;
  if (!fs::exists(gen)) {
    std::printf("bench_storage: skipped: no dataset generator at %s (set TALLY_BENCH_GEN)\n",
                gen.c_str());
    return 0;
  }
  const fs::path tmp =
      keep.empty() ? fs::temp_directory_path() / ("tally-bench-storage-" + std::to_string(getpid()))
                   : fs::path(keep);
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  Dataset d;
  const auto g0 = std::chrono::steady_clock::now();
  if (!load_dataset(gen, kStart, seconds, tmp, &d)) {
    std::fprintf(stderr, "bench_storage: could not generate or parse the dataset\n");
    return 1;
  }
  std::printf("bench_storage: %zu series x %" PRId64 " s = %" PRIu64
              " points (generated and parsed in %.1f s;"
              " parse %.2f CPU-s, %.0f ns a line), %u shards, retention %s, %d query runs\n",
              d.series.size(), d.seconds, d.points, since(g0), d.parse_cpu_s,
              d.parse_cpu_s * 1e9 / d.points, kShards, std::string(kDefaultRetention).c_str(),
              runs);
  std::printf("load average at the start: %s", loadavg().c_str());

  std::vector<std::pair<const char*, LayoutResult>> results;
  results.emplace_back("chunks", run_layout(StorageLayout::kChunks, d, tmp / "chunks", runs));
  if (baseline)
    results.emplace_back("plain rows",
                         run_layout(StorageLayout::kPlainRows, d, tmp / "rows", runs));
  const Reference vm;
  const double m = static_cast<double>(d.points) / 1e6;

  std::printf("load average at the end: %s", loadavg().c_str());
  std::printf("\n%-52s", "");
  for (const auto& [name, r] : results) std::printf(" %14s", name);
  std::printf(" %14s\n", "VictoriaMetrics");
  auto line = [&](const char* what, auto&& get, double ref, const char* fmt) {
    std::printf("%-52s", what);
    for (const auto& [name, r] : results) std::printf(fmt, get(r));
    if (ref >= 0) std::printf(fmt, ref);
    std::printf("\n");
  };
  const char* f3 = " %14.3f";
  const char* f1 = " %14.1f";
  const char* f0 = " %14.0f";
  line(
      "disk: bytes/point, 1 s resolution",
      [&](const LayoutResult& r) { return r.bytes_1s / d.points; }, vm.bytes_per_point, f3);
  line(
      "disk: bytes/point, all tables (rollups included)",
      [&](const LayoutResult& r) { return r.bytes_all / d.points; }, -1, f3);
  line(
      "disk: bytes/point, all tables, rollups compacted",
      [&](const LayoutResult& r) { return r.bytes_all_compacted / d.points; }, -1, f3);
  line(
      "disk: bytes/point, file (free pages included)",
      [&](const LayoutResult& r) { return r.bytes_file / d.points; }, -1, f3);
  line(
      "ingest: M points/s (wall)", [&](const LayoutResult& r) { return m / r.ingest_wall_s; },
      vm.points_per_s / 1e6, f3);
  line(
      "ingest: CPU-s per M points", [&](const LayoutResult& r) { return r.ingest_cpu_s / m; },
      vm.cpu_s_per_m, f3);
  line(
      "ingest: time in shard flushes (both shards), s",
      [&](const LayoutResult& r) { return r.flush_s; }, -1, f3);
  line(
      "ingest: final compaction, s", [&](const LayoutResult& r) { return r.compact_wall_s; }, -1,
      f3);
  line(
      "query: one series, step 1 s, p50 ms", [&](const LayoutResult& r) { return r.one.p50; },
      vm.one_p50_ms, f3);
  line(
      "query: one series, step 1 s, p99 ms", [&](const LayoutResult& r) { return r.one.p99; },
      vm.one_p99_ms, f3);
  line(
      "query: sum by (status), step 10 s, p50 ms",
      [&](const LayoutResult& r) { return r.sum10.p50; }, vm.sum_p50_ms, f1);
  line(
      "query: sum by (status), step 10 s, p99 ms",
      [&](const LayoutResult& r) { return r.sum10.p99; }, vm.sum_p99_ms, f1);
  line(
      "query: sum by (status), step 10 s from 1 s, p50 ms",
      [&](const LayoutResult& r) { return r.sum1.p50; }, -1, f1);
  line(
      "query: sum by (status), step 10 s from 1 s, p99 ms",
      [&](const LayoutResult& r) { return r.sum1.p99; }, -1, f1);
  line(
      "query: CPU ms per run, one series", [&](const LayoutResult& r) { return r.one.cpu; }, -1,
      f3);
  line(
      "query: CPU ms per run, sum by (status) step 10 s",
      [&](const LayoutResult& r) { return r.sum10.cpu; }, -1, f1);
  line(
      "query: CPU ms per run, same from 1 s", [&](const LayoutResult& r) { return r.sum1.cpu; }, -1,
      f1);
  line(
      "query: runs (fewest of the three queries)",
      [&](const LayoutResult& r) { return static_cast<double>(r.runs_done); }, -1, f0);
  line(
      "PromQL: ms p50, sum by (status) (rate(x[1m])), 10 k",
      [&](const LayoutResult& r) { return r.prom_a.p50; }, -1, f1);
  line(
      "PromQL: ms p50, the same for region r1", [&](const LayoutResult& r) { return r.prom_b.p50; },
      -1, f1);
  line(
      "PromQL: ms p50, the second / on(status) the first",
      [&](const LayoutResult& r) { return r.prom_ab.p50; }, -1, f1);
  line(
      "PromQL: binary / (both aggregations alone), CPU",
      [&](const LayoutResult& r) { return r.prom_ab.cpu / (r.prom_a.cpu + r.prom_b.cpu); }, -1,
      " %14.2f");
  std::printf("\ntables (MiB):");
  for (const auto& [name, r] : results)
    for (const auto& [t, b] : r.table_bytes)
      if (b > 64 * 1024) std::printf(" %s:%s=%.1f", name, t.c_str(), b / 1048576.0);
  std::printf("\n");
  if (keep.empty()) fs::remove_all(tmp);
  for (const auto& [name, r] : results)
    if (!r.ok) return 1;
  return 0;
}
