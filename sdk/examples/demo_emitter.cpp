// tally-demo-emitter: a pretend web service that emits realistic metrics through the SDK, for
// `make run` and for trying a collector by hand.
//
//   user.signup      counter       region              a few per second
//   api.requests     counter       endpoint, status    hundreds per second
//   api.errors       counter       endpoint, status    a few per second
//   api.latency_ms   distribution  endpoint            lognormal, slow endpoints slower
//   ad.click         counter       campaign, country   tens per second
//   queue.depth      gauge         (none)              a random walk
//
// Rates follow a slow wave (period 5 min) so charts move. Stops on SIGINT/SIGTERM and
// flushes what is pending before exiting.
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "tally/client.h"
#include "tally/common/endpoints.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop.store(true);
}

struct Endpoint {
  const char* path;
  double share;       // fraction of requests
  double median_ms;   // latency median
  double error_rate;  // fraction answered 5xx
};

constexpr Endpoint kEndpoints[] = {
    {"/login", 0.20, 35, 0.010},  {"/cart", 0.25, 22, 0.004},    {"/checkout", 0.10, 120, 0.020},
    {"/search", 0.35, 60, 0.006}, {"/profile", 0.10, 15, 0.002},
};
constexpr const char* kRegions[] = {"eu", "us", "apac"};
constexpr double kRegionShare[] = {0.45, 0.40, 0.15};
constexpr const char* kCampaigns[] = {"spring_sale", "brand", "retarget"};
constexpr const char* kCountries[] = {"de", "fr", "us", "jp", "br"};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Emits demo metrics to a Tally collector"};
  std::string endpoint = tally::kDefaultIngestEndpoint;
  double duration_s = 0;
  double rate_scale = 1.0;
  app.add_option("--endpoint", endpoint, "collector ingest endpoint")->capture_default_str();
  app.add_option("--duration", duration_s, "seconds to run; 0 = until SIGINT/SIGTERM")
      ->capture_default_str();
  app.add_option("--rate-scale", rate_scale, "multiplies every rate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  tally::ClientOptions opts;
  opts.endpoint = endpoint;
  tally::Client client(opts);
  if (auto err = client.last_error(); !err.empty())
    std::fprintf(stderr, "tally-demo-emitter: %s\n", err.c_str());

  // Pre-bound handles for the fixed series; the request counters use direct calls, as a
  // service that learns the status code at run time would.
  std::vector<tally::Counter> signups;
  for (const char* r : kRegions) signups.push_back(client.counter("user.signup", {{"region", r}}));
  std::vector<tally::Distribution> latency;
  for (const auto& e : kEndpoints)
    latency.push_back(client.distribution("api.latency_ms", {{"endpoint", e.path}}));
  tally::Gauge queue = client.gauge("queue.depth");

  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> uni(0, 1);
  std::normal_distribution<double> normal(0, 1);
  auto poisson = [&](double mean) {
    return std::poisson_distribution<int>(std::max(mean, 1e-9))(rng);
  };
  auto pick = [&](const double* shares, size_t n) {
    double x = uni(rng), acc = 0;
    for (size_t i = 0; i < n; ++i) {
      acc += shares[i];
      if (x < acc) return i;
    }
    return n - 1;
  };

  constexpr auto kTick = std::chrono::milliseconds(100);
  const double tick_s = 0.1;
  auto start = std::chrono::steady_clock::now();
  auto next = start;
  double depth = 20;
  uint64_t ticks = 0;
  while (!g_stop.load()) {
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (duration_s > 0 && t >= duration_s) break;
    double wave = 1.0 + 0.5 * std::sin(2 * M_PI * t / 300.0);  // slow 5-minute wave

    for (int i = poisson(3.0 * wave * rate_scale * tick_s); i > 0; --i)
      signups[pick(kRegionShare, 3)].add();

    double endpoint_shares[std::size(kEndpoints)];
    for (size_t i = 0; i < std::size(kEndpoints); ++i) endpoint_shares[i] = kEndpoints[i].share;
    for (int i = poisson(200.0 * wave * rate_scale * tick_s); i > 0; --i) {
      size_t e = pick(endpoint_shares, std::size(kEndpoints));
      const Endpoint& ep = kEndpoints[e];
      bool error = uni(rng) < ep.error_rate * (2.0 - wave);  // errors rise as the wave dips
      const char* status =
          error ? (uni(rng) < 0.7 ? "500" : "503") : (uni(rng) < 0.97 ? "200" : "404");
      client.count("api.requests", 1, {{"endpoint", ep.path}, {"status", status}});
      if (error) client.count("api.errors", 1, {{"endpoint", ep.path}, {"status", status}});
      double ms = ep.median_ms * std::exp(0.6 * normal(rng)) * (error ? 3.0 : 1.0);
      latency[e].observe(ms);
    }

    for (int i = poisson(25.0 * wave * rate_scale * tick_s); i > 0; --i) {
      const char* campaign = kCampaigns[static_cast<size_t>(uni(rng) * 3) % 3];
      const char* country = kCountries[static_cast<size_t>(uni(rng) * 5) % 5];
      client.count("ad.click", 1, {{"campaign", campaign}, {"country", country}});
    }

    if (++ticks % 5 == 0) {
      depth = std::max(0.0, depth + normal(rng) * 4 + (30 * wave - depth) * 0.1);
      queue.set(std::round(depth));
    }

    next += kTick;
    std::this_thread::sleep_until(next);
  }

  bool delivered = client.flush(std::chrono::seconds(5));
  auto s = client.stats();
  std::fprintf(stderr,
               "tally-demo-emitter: %llu batches sent, %llu acked, %llu resent, %llu dropped, %llu "
               "rejected%s\n",
               static_cast<unsigned long long>(s.batches_sent),
               static_cast<unsigned long long>(s.batches_acked),
               static_cast<unsigned long long>(s.batches_resent),
               static_cast<unsigned long long>(s.batches_dropped),
               static_cast<unsigned long long>(s.batches_rejected),
               delivered ? "" : "; some batches undelivered");
  return 0;
}
