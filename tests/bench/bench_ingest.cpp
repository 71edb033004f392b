// bench_ingest: how fast the collector takes points in.
//
//   decode/*   protobuf decode + validation + routing of one batch (decode_batch), one core:
//              the columnar format (series refs + packed columns) side by side with the same
//              points where every point carries its metric and tags (a definition per point).
//   pipeline/* the real collector (tally_collector_core Server, in process) fed over a real
//              ZeroMQ DEALER on loopback with pre-built batches, 8 in flight, until every point
//              is acknowledged and aggregated; with the write-ahead log synced per group
//              ("always") and not synced ("never").
// Usage: bench_ingest [--quick]
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "aggregate/catalog.h"
#include "ingest/batch_decoder.h"
#include "ingest/producer_table.h"
#include "server.h"

#include <spdlog/spdlog.h>

using namespace tally;
using namespace tally::collector;

namespace {

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
  frames.push_back(columnar(9, 1, series, series, now - 30, true).SerializeAsString());
  for (int i = 0; i < batches; ++i)
    frames.push_back(
        columnar(9, static_cast<uint64_t>(i + 2), series, per_batch, now - 20 + i % 10, false)
            .SerializeAsString());
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.connect(bound->ingest);
  auto t0 = std::chrono::steady_clock::now();
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
  const double pts = static_cast<double>(series) + static_cast<double>(batches) * per_batch;
  std::printf(
      "pipeline/fsync=%-7s  %8.2f M points/s acknowledged, %.2f M points/s aggregated (%zu/%zu "
      "acks OK)\n",
      fsync, pts / ack_s / 1e6, pts / all_s / 1e6, ok, frames.size());
  (*server)->stop();
  std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  spdlog::set_level(spdlog::level::warn);
  bench_decode(quick);
  bench_pipeline(quick, "always");
  bench_pipeline(quick, "never");
  return 0;
}
