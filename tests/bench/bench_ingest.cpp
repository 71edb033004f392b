// bench_ingest: how fast the collector takes points in.
//
//   decode/*   protobuf decode + validation + routing of one batch (decode_batch), one core:
//              the columnar format (series refs + packed columns) side by side with the same
//              points where every point carries its metric and tags (a definition per point).
//   pipeline/* the real collector (tally_collector_core Server, in process) fed over a real
//              ZeroMQ DEALER on loopback with pre-built batches, 8 in flight, until every point
//              is acknowledged and aggregated; with the write-ahead log synced per group
//              ("always") and not synced ("never").
//   statsd_log/* what logging StatsD costs, one core, in thread CPU time per million lines:
//              1 M counter lines (4 tags, 1,000 series) handed to the StatsD router in bursts of
//              320 samples (one recvmmsg of 16 datagrams of 20 lines), an interval taken every
//              5,000 lines (20 ms at 250 k lines/s), then each interval encoded as a StatsD
//              record and appended to a write-ahead log, synced per interval ("always") or not.
// Usage: bench_ingest [--quick] [statsd_log]   (statsd_log: only the statsd_log cases)
#include <time.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <unistd.h>
#include <zmq.hpp>

#include "aggregate/catalog.h"
#include "free_port.h"  // tests/support
#include "ingest/batch_decoder.h"
#include "ingest/producer_table.h"
#include "ingest/statsd_record.h"
#include "ingest/statsd_router.h"
#include "server.h"
#include "storage/wal.h"
#include "storage/wal_format.h"
#include "vm_spawn.h"  // tests/support

#include <spdlog/spdlog.h>

using namespace tally;
using namespace tally::collector;

namespace {

double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A batch of `points` counter points over `series` series, one second per `series` points.
wire::Batch columnar(uint64_t producer, uint64_t seq, int series, int points, int64_t t0,
                     bool with_defs) {
  wire::Batch b;
  b.set_producer_id(producer);
  b.set_seq(seq);
  if (with_defs) {
    for (int s = 0; s < series; ++s) {
      auto* d = b.add_defs();
      d->set_ref(static_cast<uint32_t>(s));
      d->set_metric("api.requests");
      d->set_kind(wire::COUNTER);
      auto* t1 = d->add_tags();
      t1->set_key("endpoint");
      t1->set_value("/e" + std::to_string(s % 50));
      auto* t2 = d->add_tags();
      t2->set_key("region");
      t2->set_value("r" + std::to_string(s / 50));
    }
  }
  auto* c = b.mutable_counters();
  std::mt19937 rng(7);
  for (int i = 0; i < points; ++i) {
    c->add_refs(static_cast<uint32_t>(i % series));
    c->add_times(t0 + i / series);
    c->add_values(static_cast<double>(rng() % 20));
  }
  return b;
}

// The same points, each carrying its own definition (metric and tags) as a per-point format would.
wire::Batch per_point_strings(int series, int points, int64_t t0) {
  wire::Batch b;
  b.set_producer_id(2);
  b.set_seq(1);
  auto* c = b.mutable_counters();
  std::mt19937 rng(7);
  for (int i = 0; i < points; ++i) {
    int s = i % series;
    auto* d = b.add_defs();
    d->set_ref(static_cast<uint32_t>(i));
    d->set_metric("api.requests");
    d->set_kind(wire::COUNTER);
    auto* t1 = d->add_tags();
    t1->set_key("endpoint");
    t1->set_value("/e" + std::to_string(s % 50));
    auto* t2 = d->add_tags();
    t2->set_key("region");
    t2->set_value("r" + std::to_string(s / 50));
    c->add_refs(static_cast<uint32_t>(i));
    c->add_times(t0 + i / series);
    c->add_values(static_cast<double>(rng() % 20));
  }
  return b;
}

void bench_decode(bool quick) {
  const int series = 10000, points = quick ? 200000 : 1000000;
  const int64_t now = SystemClock::instance().now_s();
  auto dir =
      std::filesystem::temp_directory_path() / ("tally-bench-decode-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  SeriesCatalog catalog(2);
  auto producers = ProducerTable::open((dir / "ingest.sqlite").string(), catalog);
  IngestLimits limits;
  // Definitions first (as the SDK's first batch), then measure points-only batches.
  std::string defs = columnar(1, 1, series, series, now - 100, true).SerializeAsString();
  {
    wire::Batch b;
    b.ParseFromString(defs);
    (void)decode_batch(b, **producers, catalog, limits, now);
  }
  std::string bytes = columnar(1, 2, series, points, now - 100, false).SerializeAsString();
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    wire::Batch b;
    b.ParseFromString(bytes);
    DecodedBatch d = decode_batch(b, **producers, catalog, limits, now);
    best = std::min(best, seconds_since(t0));
    if (d.points != static_cast<uint64_t>(points)) std::printf("unexpected point count\n");
  }
  std::printf("decode/columnar           %8.1f M points/s   %5.1f bytes/point\n",
              points / best / 1e6, static_cast<double>(bytes.size()) / points);

  const int sp = points / 10;  // the per-point format is slow; a tenth is enough to measure
  std::string slow = per_point_strings(series, sp, now - 100).SerializeAsString();
  double best_slow = 1e9;
  for (int rep = 0; rep < 3; ++rep) {
    SeriesCatalog cat2(2);
    auto prod2 =
        ProducerTable::open((dir / ("ingest2-" + std::to_string(rep) + ".sqlite")).string(), cat2);
    auto t0 = std::chrono::steady_clock::now();
    wire::Batch b;
    b.ParseFromString(slow);
    DecodedBatch d = decode_batch(b, **prod2, cat2, limits, now);
    best_slow = std::min(best_slow, seconds_since(t0));
  }
  std::printf(
      "decode/strings-per-point  %8.1f M points/s   %5.1f bytes/point   (columnar is %.0fx "
      "faster)\n",
      sp / best_slow / 1e6, static_cast<double>(slow.size()) / sp,
      (sp / best_slow) > 0 ? (points / best) / (sp / best_slow) : 0);
  std::filesystem::remove_all(dir);
}

void bench_pipeline(bool quick, const char* fsync) {
  auto dir = std::filesystem::temp_directory_path() /
             ("tally-bench-pipe-" + std::to_string(getpid()) + fsync);
  CollectorConfig cfg;
  cfg.data_dir = dir.string();
  cfg.ingest = "tcp://127.0.0.1:*";
  cfg.http = "127.0.0.1:0";
  cfg.live = "off";
  cfg.statsd = "off";
  cfg.fsync = fsync;
  cfg.self_metrics = false;
  cfg.shards = 2;
  auto server = Server::create(cfg, SystemClock::instance());
  if (!server) {
    std::printf("pipeline: %s\n", server.status().to_string().c_str());
    return;
  }
  auto bound = (*server)->start();
  if (!bound) {
    std::printf("pipeline: %s\n", bound.status().to_string().c_str());
    return;
  }
  const int series = 10000, per_batch = 50000, batches = quick ? 20 : 100;
  const int64_t now = SystemClock::instance().now_s();
  std::vector<std::string> frames;
  frames.push_back(columnar(9, 1, series, series, now, true).SerializeAsString());
  // Each batch spans 5 seconds (per_batch / series); starting at now .. now + 9 they stay in
  // open buckets for the whole run, as a live SDK's do. (Until 2026-12-03 they started 10-20 s
  // in the past: every bucket was final already, so every point took the late path.)
  for (int i = 0; i < batches; ++i)
    frames.push_back(
        columnar(9, static_cast<uint64_t>(i + 2), series, per_batch, now + i % 10, false)
            .SerializeAsString());
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.connect(bound->ingest);
  auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_s();
  size_t sent = 0, acked = 0, ok = 0;
  while (acked < frames.size()) {
    while (sent < frames.size() && sent - acked < 8)
      s.send(zmq::buffer(frames[sent++]), zmq::send_flags::none);
    zmq::message_t m;
    (void)s.recv(m);
    wire::Ack ack;
    ack.ParseFromArray(m.data(), static_cast<int>(m.size()));
    ok += ack.code() == wire::Ack::OK;
    ++acked;
  }
  const double ack_s = seconds_since(t0);
  // Wait until the shards have applied everything.
  while ((*server)->metrics().queue_depth.load() > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double all_s = seconds_since(t0);
  // The whole process: the collector's threads and this one's sending (1 ms sleeps above).
  const double cpu_s = process_cpu_s() - cpu0;
  const double pts = static_cast<double>(series) + static_cast<double>(batches) * per_batch;
  std::printf(
      "pipeline/fsync=%-7s  %8.2f M points/s acknowledged, %.2f M points/s aggregated (%zu/%zu "
      "acks OK), %.2f M points per CPU-second\n",
      fsync, pts / ack_s / 1e6, pts / all_s / 1e6, ok, frames.size(), pts / cpu_s / 1e6);
  (*server)->stop();
  std::filesystem::remove_all(dir);
}

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void bench_statsd_log(bool quick, const char* fsync) {
  const int series = 1000, lines = quick ? 200000 : 1000000, burst = 320, interval = 5000;
  const int64_t now = SystemClock::instance().now_s();
  std::vector<StatsdSample> all(static_cast<size_t>(lines));
  std::mt19937 rng(1);
  for (auto& s : all) {
    const int k = static_cast<int>(rng() % series);
    s.metric = "bench.statsd.m" + std::to_string(k % 10);
    s.type = StatsdType::kCounter;
    s.value = 1;
    s.timestamp_s = now;
    s.tags = {{"env", "prod"},
              {"host", "host-" + std::to_string(k % 100)},
              {"region", "eu-west-1"},
              {"series", "s" + std::to_string(k)}};
  }
  auto dir = std::filesystem::temp_directory_path() /
             ("tally-bench-statsd-" + std::to_string(getpid()) + fsync);
  double best_agg = 1e9, best_log = 1e9, best_wall = 1e9;
  uint64_t records = 0, bytes = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::filesystem::remove_all(dir);
    SeriesCatalog catalog(2);
    SelfMetrics metrics;
    StatsdRouter router(catalog, 2, metrics, IngestLimits{}, SystemClock::instance());
    WalOptions wo;
    wo.dir = (dir / "wal").string();
    wo.fsync = std::strcmp(fsync, "always") == 0 ? FsyncPolicy::kAlways : FsyncPolicy::kNever;
    auto wal = Wal::open(wo);
    (void)(*wal)->replay([](uint64_t, std::string_view) {});
    std::vector<std::vector<StatsdSample>> bursts;
    for (int i = 0; i < lines; i += burst)
      bursts.emplace_back(all.begin() + i, all.begin() + std::min(lines, i + burst));
    double agg = 0, log = 0;
    records = bytes = 0;
    const auto w0 = std::chrono::steady_clock::now();
    int since_take = 0;
    for (size_t b = 0; b < bursts.size(); ++b) {
      double t0 = thread_cpu_s();
      since_take += static_cast<int>(bursts[b].size());
      router(std::move(bursts[b]));
      if (since_take < interval && b + 1 < bursts.size()) {
        agg += thread_cpu_s() - t0;
        continue;
      }
      since_take = 0;
      StatsdInterval iv = router.take();
      double t1 = thread_cpu_s();
      agg += t1 - t0;
      std::string payload = encode_statsd_record(iv.per_shard);
      (void)(*wal)->append(payload, wal_format::kTypeStatsd);
      (void)(*wal)->sync();
      log += thread_cpu_s() - t1;
      ++records;
      bytes += payload.size();
    }
    best_wall = std::min(best_wall, seconds_since(w0));
    best_agg = std::min(best_agg, agg);
    best_log = std::min(best_log, log);
  }
  const double m = lines / 1e6;
  std::printf(
      "statsd_log/fsync=%-7s aggregate %.3f CPU-s per M lines, log (encode + append + sync) "
      "%.3f CPU-s per M lines, %" PRIu64 " records of %.0f bytes, wall %.2f s per M lines\n",
      fsync, best_agg / m, best_log / m, records, records ? double(bytes) / records : 0.0,
      best_wall / m);
  std::filesystem::remove_all(dir);
}

// The pipeline's points (same series, values and batches) imported into a single-node
// VictoriaMetrics on the same machine as Prometheus text (/api/v1/import/prometheus), two
// requests in flight: wall time until VictoriaMetrics counts every row inserted, and its process
// CPU over that time. Skipped when /usr/bin/victoria-metrics is missing.
void bench_victoria_metrics(bool quick) {
  if (!tally::testing::VmProcess::installed()) {
    std::printf("import/victoria-metrics skipped (victoria-metrics not installed)\n");
    return;
  }
  const int series = 10000, per_batch = 50000, batches = quick ? 20 : 100;
  const int64_t now = SystemClock::instance().now_s();
  std::vector<std::string> bodies;
  for (int i = 0; i < batches; ++i) {
    const wire::Batch b =
        columnar(9, static_cast<uint64_t>(i + 2), series, per_batch, now + i % 10, false);
    std::string text;
    text.reserve(static_cast<size_t>(per_batch) * 64);
    const auto& c = b.counters();
    for (int k = 0; k < c.refs_size(); ++k) {
      const uint32_t s = c.refs(k);
      char line[160];
      std::snprintf(line, sizeof line, "api_requests{endpoint=\"/e%u\",region=\"r%u\"} %g %lld\n",
                    s % 50, s / 50, c.values(k), static_cast<long long>(c.times(k)) * 1000);
      text += line;
    }
    bodies.push_back(std::move(text));
  }
  tally::testing::VmProcess vm;
  if (!vm.start(
          tally::testing::free_port(),
          (std::filesystem::temp_directory_path() / ("bench-ingest-vm-" + std::to_string(getpid())))
              .string(),
          "100y")) {
    std::printf("import/victoria-metrics: %s did not start\n", tally::testing::VmProcess::kBin);
    return;
  }
  const pid_t pid = vm.pid;
  const int port = vm.port;
  auto cpu_ticks = [pid] {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    if (!f) return 0.0;
    char buf[1024];
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* p = std::strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    // Fields after the command: state, then 10 more before utime (14) and stime (15).
    if (p) std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
    return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
  };
  auto inserted = [port] {
    httplib::Client c("127.0.0.1", port);
    auto r = c.Get("/metrics");
    double n = 0;
    if (!r || r->status != 200) return n;
    size_t at = 0;
    while ((at = r->body.find("vm_rows_inserted_total{", at)) != std::string::npos) {
      const size_t sp = r->body.find("} ", at);
      if (sp == std::string::npos) break;
      n += std::strtod(r->body.c_str() + sp + 2, nullptr);
      at = sp;
    }
    return n;
  };
  const double base = inserted();
  const double cpu0 = cpu_ticks();
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0};
  std::atomic<int> failed{0};
  auto sender = [&] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    for (size_t i; (i = next++) < bodies.size();) {
      auto r = c.Post("/api/v1/import/prometheus", bodies[i], "text/plain");
      if (!r || r->status / 100 != 2) ++failed;
    }
  };
  std::thread a(sender), b(sender);
  a.join();
  b.join();
  const double pts = static_cast<double>(batches) * per_batch;
  double got = 0;
  for (int i = 0; i < 6000 && (got = inserted() - base) < pts; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double wall = seconds_since(t0);
  const double cpu = cpu_ticks() - cpu0;
  std::printf(
      "import/victoria-metrics  %8.2f M samples/s inserted (%.0f of %.0f rows, %d requests "
      "failed), "
      "%.2f M samples per CPU-second of victoria-metrics\n",
      got / wall / 1e6, got, pts, failed.load(), cpu > 0 ? got / cpu / 1e6 : 0.0);
  vm.stop();
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  spdlog::set_level(spdlog::level::warn);
  const bool statsd_only = argc > 1 && std::strcmp(argv[argc - 1], "statsd_log") == 0;
  if (!statsd_only) {
    bench_decode(quick);
    bench_pipeline(quick, "always");
    bench_pipeline(quick, "never");
    bench_victoria_metrics(quick);
  }
  bench_statsd_log(quick, "never");
  bench_statsd_log(quick, "always");
  return 0;
}
