// load_gen: a fleet of services against a running tally-collector, as a team rolling Tally out
// would try it. C clients (one libtally Client each, SDK defaults unless a flag says otherwise),
// each with S counter series `load.c{client=<i>,s=<j>}`, add 1 to every series R times a second;
// the clients start one after another over the ramp. Every `--sample` seconds it prints one CSV
// row (collector RSS, own RSS, points the collector took, batches, duplicates, refusals, SDK
// pending bytes and drops); a probe series measures emit-to-queryable latency. At the end it
// stops emitting, waits until every client has nothing pending, and checks that the collector's
// total and its number of distinct series are exactly what was emitted.
//
//   load_gen --ingest tcp://127.0.0.1:7070 --http 127.0.0.1:7071 --collector-pid PID
//            --clients 5 --series 100000 --rate 1 --ramp 20 --duration 300       (one line)
//
// The collector must run with its cardinality limits above C x S (series_max_per_metric is 200,000
// by default; beyond it new series fold into an overflow series, which this counts as a failure):
// `--limit series_max_per_metric=2000000 --limit series_max_total=2000000`.
//
// Exit status 0 only if the totals are exact, nothing overflowed and no client dropped anything.
#include <httplib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tally/client.h"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Resident set size of a process in KiB (VmRSS), 0 if unreadable.
uint64_t rss_kib(int pid) {
  std::ifstream in(pid ? "/proc/" + std::to_string(pid) + "/status" : "/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

// CPU seconds (user + system) of a process, from /proc/<pid>/stat.
double cpu_s(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string f;
  unsigned long long ut = 0, st = 0;
  for (int i = 3; i <= 15 && rest >> f; ++i) {
    if (i == 14) ut = std::stoull(f);
    if (i == 15) st = std::stoull(f);
  }
  return double(ut + st) / double(sysconf(_SC_CLK_TCK));
}

struct Http {
  std::string host;
  int port = 0;
  std::string get(const std::string& path) const {
    httplib::Client c(host, port);
    c.set_read_timeout(30, 0);
    auto r = c.Get(path.c_str());
    return r && r->status == 200 ? r->body : std::string();
  }
  double metric(const std::string& name) const {
    std::istringstream in(get("/metrics"));
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    return -1;
  }
  // Sum of every point of the metric over [from, to) at 1 min steps; -1 on error.
  double total(const std::string& metric, int64_t from, int64_t to,
               const std::string& extra = "") const {
    json j =
        json::parse(get("/api/query?metric=" + metric + "&step=60&from=" + std::to_string(from) +
                        "&to=" + std::to_string(to) + extra),
                    nullptr, false);
    if (j.is_discarded() || !j.contains("series")) return -1;
    double t = 0;
    for (const auto& s : j["series"])
      for (const auto& p : s["points"]) t += p[1].get<double>();
    return t;
  }
  size_t series_of(const std::string& metric) const {
    json j = json::parse(get("/api/metrics?search=" + metric), nullptr, false);
    if (j.is_discarded()) return 0;
    const json& list = j.is_array() ? j : j.value("metrics", json::array());
    for (const auto& m : list)
      if (m.value("name", "") == metric) return m.value("series", size_t(0));
    return 0;
  }
};

struct Emitter {
  std::unique_ptr<tally::Client> client;
  std::vector<tally::Counter> handles;
  std::atomic<uint64_t> adds{0};
  std::thread thread;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"load_gen: many SDK clients with many series against a running tally-collector"};
  std::string ingest = "tcp://127.0.0.1:7070", http_addr = "127.0.0.1:7071", csv_path;
  int pid = 0, clients = 5, rate = 1, ramp_s = 20, duration_s = 300, sample_s = 10;
  int probe_every_s = 2;
  size_t series = 100000, max_pending_bytes = 0;
  app.add_option("--ingest", ingest, "collector ingest endpoint");
  app.add_option("--http", http_addr, "collector HTTP host:port");
  app.add_option("--collector-pid", pid, "collector pid, for its RSS and CPU")->required();
  app.add_option("--clients", clients, "SDK clients (C)");
  app.add_option("--series", series, "counter series per client (S)");
  app.add_option("--rate", rate, "adds per series per second (R)");
  app.add_option("--ramp", ramp_s, "seconds over which the clients start, one after another");
  app.add_option("--duration", duration_s, "seconds of emission after the first client starts");
  app.add_option("--sample", sample_s, "seconds between CSV rows");
  app.add_option("--probe-every", probe_every_s, "seconds between emit-to-queryable probes");
  app.add_option("--max-pending-bytes", max_pending_bytes, "SDK limit (0 = SDK default)");
  app.add_option("--csv", csv_path, "also write the rows to this file");
  CLI11_PARSE(app, argc, argv);

  Http http;
  http.host = http_addr.substr(0, http_addr.rfind(':'));
  http.port = std::stoi(http_addr.substr(http_addr.rfind(':') + 1));
  const int64_t t_start = now_s();
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::seconds(duration_s);
  std::atomic<bool> stop{false};

  // The probe client: one series, one add at a time; a probe is "queryable" when the collector's
  // total shows it. Latency = from the add to the first query that sees it.
  tally::ClientOptions po;
  po.endpoint = ingest;
  tally::Client probe_client(po);
  auto probe = probe_client.counter("load.probe");
  std::vector<double> latencies;
  std::mutex lat_mu;
  std::thread prober([&] {
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> phase(0, 999);
    double sent = 0;
    while (!stop.load()) {
      const auto t0 = Clock::now();
      probe.add();
      sent += 1;
      while (!stop.load()) {
        if (http.total("load.probe", t_start - 120, now_s() + 60) >= sent) {
          std::lock_guard lk(lat_mu);
          latencies.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
          break;
        }
        std::this_thread::sleep_for(20ms);
        if (Clock::now() - t0 > 120s) break;  // counted as missing below
      }
      // A random phase against the SDK's 1 s flush, so the latencies spread over it.
      std::this_thread::sleep_until(t0 + std::chrono::seconds(probe_every_s) +
                                    std::chrono::milliseconds(phase(rng)));
    }
  });

  std::vector<std::unique_ptr<Emitter>> es;
  auto start_client = [&](int i) {
    auto e = std::make_unique<Emitter>();
    tally::ClientOptions o;
    o.endpoint = ingest;
    o.max_series = series;  // the one SDK limit raised: S series per client
    if (max_pending_bytes) o.max_pending_bytes = max_pending_bytes;
    e->client = std::make_unique<tally::Client>(o);
    e->handles.reserve(series);
    for (size_t j = 0; j < series; ++j)
      e->handles.push_back(
          e->client->counter("load.c", {{"client", std::to_string(i)}, {"s", std::to_string(j)}}));
    Emitter* raw = e.get();
    e->thread = std::thread([raw, rate, &stop, stop_at] {
      auto next = Clock::now();
      while (!stop.load() && Clock::now() < stop_at) {
        for (const auto& h : raw->handles) h.add();
        raw->adds.fetch_add(raw->handles.size(), std::memory_order_relaxed);
        next += std::chrono::milliseconds(1000 / std::max(1, rate));
        std::this_thread::sleep_until(next);
      }
    });
    es.push_back(std::move(e));
  };

  FILE* csv = csv_path.empty() ? nullptr : std::fopen(csv_path.c_str(), "w");
  const char* header =
      "t_s,clients,collector_rss_mib,loadgen_rss_mib,collector_cpu_s,points_received,"
      "points_per_s,batches_received,duplicates,overloaded,queued_mib,sdk_pending_mib,"
      "sdk_dropped,sdk_resent,sdk_timeouts,heap_in_use_mib,sqlite_mib";
  std::printf("%s\n", header);
  if (csv) std::fprintf(csv, "%s\n", header);
  double last_points = 0;
  auto last_sample = Clock::now();
  uint64_t max_rss_min1 = 0, max_rss_later = 0, max_own_min1 = 0, max_own_later = 0;
  auto sample = [&] {
    const double el = std::chrono::duration<double>(Clock::now() - start).count();
    const double pts = http.metric("tally_points_received_total");
    const double dt = std::chrono::duration<double>(Clock::now() - last_sample).count();
    last_sample = Clock::now();
    uint64_t pending = 0, dropped = 0, resent = 0, timeouts = 0;
    for (auto& e : es) {
      auto st = e->client->stats();
      pending += st.pending_bytes;
      dropped += st.batches_dropped;
      resent += st.batches_resent;
      timeouts += st.ack_timeouts;
    }
    const uint64_t rss = rss_kib(pid), own = rss_kib(0);
    if (el <= 60) {
      max_rss_min1 = std::max(max_rss_min1, rss);
      max_own_min1 = std::max(max_own_min1, own);
    } else {
      max_rss_later = std::max(max_rss_later, rss);
      max_own_later = std::max(max_own_later, own);
    }
    char row[512];
    std::snprintf(
        row, sizeof row,
        "%.0f,%zu,%.1f,%.1f,%.1f,%.0f,%.0f,%.0f,%.0f,%.0f,%.1f,%.1f,%llu,%llu,%llu,%.1f,%.1f", el,
        es.size(), rss / 1024.0, own / 1024.0, cpu_s(pid), pts,
        (pts - last_points) / std::max(dt, 1e-3), http.metric("tally_batches_received_total"),
        http.metric("tally_batches_duplicate_total"), http.metric("tally_batches_overloaded_total"),
        http.metric("tally_ingest_queued_bytes") / 1048576.0, pending / 1048576.0,
        static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(resent),
        static_cast<unsigned long long>(timeouts),
        http.metric("tally_heap_bytes{state=\"in_use\"}") / 1048576.0,
        http.metric("tally_sqlite_memory_bytes") / 1048576.0);
    last_points = pts;
    std::printf("%s\n", row);
    std::fflush(stdout);
    if (csv) {
      std::fprintf(csv, "%s\n", row);
      std::fflush(csv);
    }
  };

  // Ramp, then steady emission, sampling as we go.
  const double cpu0 = cpu_s(pid);
  const double points0 = std::max(0.0, http.metric("tally_points_received_total"));
  auto next_sample = start + std::chrono::seconds(sample_s);
  for (int i = 0; i < clients; ++i) {
    const auto at =
        start + std::chrono::milliseconds(int64_t(ramp_s) * 1000 * i / std::max(1, clients));
    while (Clock::now() < at) {
      std::this_thread::sleep_until(std::min(at, next_sample));
      if (Clock::now() >= next_sample) {
        sample();
        next_sample += std::chrono::seconds(sample_s);
      }
    }
    start_client(i);
  }
  // How long the definitions of every series took: from the last client's start until the
  // collector's catalog holds them all.
  const auto all_started = Clock::now();
  std::atomic<double> defs_taken_s{-1};
  std::thread defs_watch([&] {
    while (!stop.load() && Clock::now() < stop_at) {
      if (http.series_of("load.c") >= size_t(clients) * series) {
        defs_taken_s = std::chrono::duration<double>(Clock::now() - all_started).count();
        return;
      }
      std::this_thread::sleep_for(100ms);
    }
  });
  while (Clock::now() < stop_at) {
    std::this_thread::sleep_until(std::min(stop_at, next_sample));
    if (Clock::now() >= next_sample) {
      sample();
      next_sample += std::chrono::seconds(sample_s);
    }
  }
  for (auto& e : es) e->thread.join();
  defs_watch.join();
  const auto emit_end = Clock::now();

  // Drain: every client delivers what it holds.
  bool delivered = true;
  for (auto& e : es) delivered &= e->client->flush(600s);
  const double drain_s = std::chrono::duration<double>(Clock::now() - emit_end).count();
  stop.store(true);
  prober.join();
  sample();

  uint64_t expected = 0, dropped = 0, sent = 0, resent = 0, timeouts = 0, unavailable = 0;
  for (auto& e : es) {
    expected += e->adds.load();
    auto st = e->client->stats();
    dropped += st.batches_dropped + st.batches_rejected;
    sent += st.batches_sent;
    resent += st.batches_resent;
    timeouts += st.ack_timeouts;
    unavailable += st.unavailable_acks;
  }
  // Client by client: one query reads S series, within the collector's default query_max_series
  // for S up to 100,000.
  double got = -1;
  for (int i = 0; i < 100 && got != double(expected); ++i) {
    got = 0;
    for (int c = 0; c < clients && got >= 0; ++c) {
      const double t = http.total("load.c", t_start - 120, now_s() + 60,
                                  "&filter=client%3D" + std::to_string(c));
      got = t < 0 ? -1 : got + t;
    }
    if (got != double(expected)) std::this_thread::sleep_for(200ms);
  }
  // A cardinality limit folds series beyond it into an overflow series: the run must raise the
  // limits it needs (series_max_per_metric, series_max_total) and say so.
  const double overflow = http.metric("tally_series_overflow_total{metric=\"load.c\"}");
  const size_t stored_series = http.series_of("load.c");
  const double received = http.metric("tally_batches_received_total");
  const double dups = http.metric("tally_batches_duplicate_total");
  const double points = http.metric("tally_points_received_total") - points0;
  const double cpu = cpu_s(pid) - cpu0;
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double q) {
    if (latencies.empty()) return -1.0;
    return latencies[std::min(latencies.size() - 1, size_t(q * double(latencies.size())))];
  };
  const bool exact =
      got == double(expected) && stored_series == size_t(clients) * series && overflow <= 0;
  std::printf(
      "\nsummary clients=%d series_per_client=%zu rate=%d duration_s=%d ramp_s=%d\n"
      "totals expected=%llu got=%.0f exact=%s distinct_series=%zu (want %zu) overflowed=%.0f\n"
      "sdk batches_sent=%llu resent=%llu ack_timeouts=%llu unavailable=%llu dropped=%llu "
      "delivered=%s drain_s=%.1f\n"
      "collector batches_received=%.0f duplicates=%.0f (%.2f %% of received) points=%.0f "
      "cpu_s=%.1f points_per_cpu_s=%.0f\n"
      "rss collector max_min1_mib=%.1f max_later_mib=%.1f ratio=%.2f; load_gen "
      "max_min1_mib=%.1f max_later_mib=%.1f ratio=%.2f\n"
      "emit_to_queryable probes=%zu p50_s=%.2f p99_s=%.2f max_s=%.2f\n"
      "definitions all_series_stored_after_last_client_s=%.1f\n",
      clients, series, rate, duration_s, ramp_s, static_cast<unsigned long long>(expected), got,
      exact ? "yes" : "NO", stored_series, size_t(clients) * series, std::max(0.0, overflow),
      static_cast<unsigned long long>(sent), static_cast<unsigned long long>(resent),
      static_cast<unsigned long long>(timeouts), static_cast<unsigned long long>(unavailable),
      static_cast<unsigned long long>(dropped), delivered ? "yes" : "NO", drain_s, received, dups,
      received > 0 ? 100.0 * dups / received : 0.0, points, cpu, cpu > 0 ? points / cpu : 0.0,
      max_rss_min1 / 1024.0, max_rss_later / 1024.0,
      max_rss_min1 ? double(max_rss_later) / double(max_rss_min1) : 0.0, max_own_min1 / 1024.0,
      max_own_later / 1024.0, max_own_min1 ? double(max_own_later) / double(max_own_min1) : 0.0,
      latencies.size(), pct(0.5), pct(0.99), latencies.empty() ? -1.0 : latencies.back(),
      defs_taken_s.load());
  if (csv) std::fclose(csv);
  return exact && dropped == 0 && delivered ? 0 : 1;
}
