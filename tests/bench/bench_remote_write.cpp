// bench_remote_write: what remote-write forwarding costs (collector/forward/remote_write.h).
//
//   map/*      PromSampleMapper::map() per final bucket, on the calling (shard) thread, with
//              100 k counter series (3 tags, 60-byte keys) and 20 k distributions; thread CPU
//              time, best of 5 rounds
//   encode     encode_write_request(): protobuf + snappy per sample, and bytes per sample on the
//              wire, for requests of 2000 samples (the default) of 1 s counter buckets; thread
//              CPU time, best of 5
//   memory/*   heap per forwarded series in the mapper (running totals, label sets)
//   send/*     RemoteWriter end to end: samples handed to the shard sink until the receiver has
//              accepted them all, to an in-process HTTP server that answers 204 (the forwarder's
//              own limit) and, when victoria-metrics is installed, to a real VictoriaMetrics
//              single-node started on loopback (both on this machine's cores)
// Usage: bench_remote_write [--quick]
#include <arpa/inet.h>
#include <httplib.h>
#include <malloc.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "forward/remote_write.h"
#include "free_port.h"
#include "tally/common/sketch.h"
#include "tally/common/wire.h"
#include "vm_spawn.h"

using namespace tally;
using namespace tally::collector;

namespace {

using tally::testing::free_port;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

size_t heap_bytes() {
  return mallinfo2().uordblks;
}

// The calling thread's CPU time: time spent descheduled on a shared machine does not count.
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

wire::LiveUpdate counter_update(int series, int64_t t, double v) {
  wire::LiveUpdate u;
  u.set_metric("api.requests");
  u.set_kind(wire::COUNTER);
  u.set_state(wire::LiveUpdate::FINAL);
  u.set_resolution_s(1);
  u.set_time(t);
  u.set_value(v);
  u.set_sum(v);
  const std::pair<const char*, std::string> tags[] = {
      {"endpoint", "/api/v1/items/" + std::to_string(series % 500)},
      {"host", "web-" + std::to_string(series / 500)},
      {"status", series % 7 ? "200" : "500"}};
  for (const auto& [k, val] : tags) {
    auto* tag = u.add_tags();
    tag->set_key(k);
    tag->set_value(val);
  }
  return u;
}

wire::LiveUpdate dist_update(int series, int64_t t) {
  wire::LiveUpdate u = counter_update(series, t, 0);
  u.set_metric("api.latency_ms");
  u.set_kind(wire::DISTRIBUTION);
  Sketch sk;
  for (int i = 1; i <= 50; ++i) sk.add(i * 1.7);
  u.set_count(sk.count());
  u.set_sum(sk.sum());
  u.set_value(static_cast<double>(sk.count()));
  sketch_to_proto(sk, u.mutable_sketch());
  return u;
}

// Hands `seconds` rounds of `series` counter buckets to the sink and waits until the receiver
// accepted every sample; returns samples per second.
double send_all(const std::string& url, int series, int seconds, uint64_t* samples_out) {
  SelfMetrics metrics;
  RemoteWriteOptions o;
  o.url = url;
  o.max_buffered_samples = static_cast<uint64_t>(series) * (seconds + 1) + 1000;
  o.flush_interval_ms = 100;
  auto w = RemoteWriter::create(o, 1, metrics, SystemClock::instance());
  if (!w) {
    std::fprintf(stderr, "%s\n", w.status().to_string().c_str());
    return 0;
  }
  auto sink = (*w)->sink(0);
  (*w)->start();
  const int64_t t0 = SystemClock::instance().now_s();
  std::vector<wire::LiveUpdate> updates;
  const uint64_t expected = static_cast<uint64_t>(series) * (seconds + 1);  // + the 0 sample
  const auto start = std::chrono::steady_clock::now();
  for (int s = 0; s < seconds; ++s) {
    updates.clear();
    for (int i = 0; i < series; ++i) updates.push_back(counter_update(i, t0 + s, 1 + i % 3));
    sink(updates);
  }
  while (metrics.remote_write_samples.load() + metrics.remote_write_dropped.load() < expected &&
         seconds_since(start) < 120)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const double secs = seconds_since(start);
  *samples_out = metrics.remote_write_samples.load();
  (*w)->stop();
  if (metrics.remote_write_dropped.load())
    std::fprintf(stderr, "dropped %llu samples\n",
                 static_cast<unsigned long long>(metrics.remote_write_dropped.load()));
  return static_cast<double>(*samples_out) / secs;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  spdlog::set_level(spdlog::level::warn);
  const int kSeries = quick ? 20000 : 100000;
  const int kDists = kSeries / 5;

  // map/*: one final bucket per series per second, the shard thread's share of forwarding.
  {
    PromSampleMapper m(0, {{"instance", "collector-1"}});
    std::vector<PromSample> out;
    std::vector<wire::LiveUpdate> updates;
    for (int i = 0; i < kSeries; ++i) updates.push_back(counter_update(i, 1000, 1));
    const size_t heap0 = heap_bytes();
    for (auto& u : updates) m.map(u, &out);  // first sight: label sets built
    const size_t heap1 = heap_bytes();
    const size_t samples_heap = out.capacity() * sizeof(PromSample);
    out.clear();
    out.shrink_to_fit();
    out.reserve(static_cast<size_t>(kSeries));
    double best = 1e9;
    for (int r = 1; r <= 5; ++r) {  // best of 5 rounds, thread CPU time
      out.clear();
      const double t0 = thread_cpu_s();
      for (auto& u : updates) {
        u.set_time(1000 + r);
        m.map(u, &out);
      }
      best = std::min(best, thread_cpu_s() - t0);
    }
    const double ns = best * 1e9 / kSeries;
    std::printf("map/counter          %d series: %.0f ns per final bucket (1 sample)\n", kSeries,
                ns);
    std::printf(
        "memory/counter       %.0f bytes of heap per forwarded counter series (state + label "
        "set)\n",
        static_cast<double>(heap1 - heap0 - samples_heap) / kSeries);

    // encode: requests of 2000 samples of steady-state buckets.
    std::vector<PromSample> req(out.begin(), out.begin() + 2000);
    size_t bytes = 0;
    double best_enc = 1e9;
    for (int r = 0; r < 5; ++r) {
      const double t0 = thread_cpu_s();
      for (int i = 0; i < 100; ++i) bytes = encode_write_request(req).size();
      best_enc = std::min(best_enc, thread_cpu_s() - t0);
    }
    const double enc_ns = best_enc * 1e9 / (2000.0 * 100);
    std::printf(
        "encode               %.0f ns per sample (protobuf + snappy), %.1f bytes per sample on the "
        "wire "
        "(2000 samples, 2000 series per request)\n",
        enc_ns, static_cast<double>(bytes) / 2000);
  }
  {
    PromSampleMapper m(0, {{"instance", "collector-1"}});
    std::vector<PromSample> out;
    std::vector<wire::LiveUpdate> updates;
    for (int i = 0; i < kDists; ++i) updates.push_back(dist_update(i, 1000));
    const size_t heap0 = heap_bytes();
    for (auto& u : updates) m.map(u, &out);
    const size_t heap1 = heap_bytes();
    const size_t samples_heap = out.capacity() * sizeof(PromSample);
    double best = 1e9;
    for (int r = 1; r <= 5; ++r) {
      out.clear();
      const double t0 = thread_cpu_s();
      for (auto& u : updates) {
        u.set_time(1000 + r);
        m.map(u, &out);
      }
      best = std::min(best, thread_cpu_s() - t0);
    }
    const double ns = best * 1e9 / kDists;
    std::printf(
        "map/distribution     %d series: %.0f ns per final bucket (5 samples: _count, _sum, 3 "
        "quantiles)\n",
        kDists, ns);
    std::printf("memory/distribution  %.0f bytes of heap per forwarded distribution series\n",
                static_cast<double>(heap1 - heap0 - samples_heap) / kDists);
  }

  // send/*: the sender thread, through HTTP on loopback.
  const int send_series = quick ? 10000 : 50000;
  const int send_seconds = quick ? 3 : 10;
  {
    httplib::Server server;
    server.Post("/api/v1/write",
                [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
    const int port = server.bind_to_any_port("127.0.0.1");
    std::thread th([&] { server.listen_after_bind(); });
    uint64_t n = 0;
    const double rate = send_all("http://127.0.0.1:" + std::to_string(port) + "/api/v1/write",
                                 send_series, send_seconds, &n);
    std::printf(
        "send/null-receiver   %llu samples: %.0f samples/s (requests of 2000, one sender thread)\n",
        static_cast<unsigned long long>(n), rate);
    server.stop();
    th.join();
  }
  if (tally::testing::VmProcess::installed()) {
    tally::testing::VmProcess vm;
    if (vm.start(free_port(),
                 (std::filesystem::temp_directory_path() / ("bench-vm-" + std::to_string(getpid())))
                     .string(),
                 "1d")) {
      uint64_t n = 0;
      const double rate = send_all("http://127.0.0.1:" + std::to_string(vm.port) + "/api/v1/write",
                                   send_series, send_seconds, &n);
      std::printf(
          "send/victoria-metrics %llu samples: %.0f samples/s into a single-node VictoriaMetrics "
          "on the same 2 cores\n",
          static_cast<unsigned long long>(n), rate);
    }
    vm.stop();
  } else {
    std::printf("send/victoria-metrics skipped (victoria-metrics not installed)\n");
  }
  return 0;
}
