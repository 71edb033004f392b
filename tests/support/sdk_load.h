// SdkLoad: threads that emit known totals through one tally::Client until stopped, for the tests
// that kill the collector or cut its power under load (tst_crash, tst_power_loss). Thread t adds
// 1..5 to a random counter `<prefix>.hits{series=0..series-1}`, observes one value of
// `<prefix>.latency{thread=t}` and pauses `pace` (the load's rate, not a wait); sent(s) and
// observed() are the totals the collector must show afterwards. stop() joins the threads, and so
// does the destructor when a failed check returns early.
//
//   SdkLoad load(*client, {.prefix = "crash", .threads = 4, .series = 20, .seed = 1});
//   ... kill and restart the collector ...
//   load.stop();
//   QCOMPARE(query_total("crash.hits"), load.sent_total());
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tally/client.h"

namespace tally::testing {

struct SdkLoadOptions {
  std::string prefix;  // metrics <prefix>.hits and <prefix>.latency
  int threads = 4;
  int series = 20;
  unsigned seed = 1;  // thread t seeds its generator with seed + t
  std::chrono::microseconds pace{200};
};

class SdkLoad {
 public:
  SdkLoad(Client& client, SdkLoadOptions options)
      : o_(std::move(options)), sent_(std::make_unique<std::atomic<int64_t>[]>(o_.series)) {
    for (int t = 0; t < o_.threads; ++t)
      threads_.emplace_back([this, &client, t] { run(client, t); });
  }
  ~SdkLoad() { stop(); }
  SdkLoad(const SdkLoad&) = delete;
  SdkLoad& operator=(const SdkLoad&) = delete;

  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  int series() const { return o_.series; }
  int64_t sent(int series) const { return sent_[static_cast<size_t>(series)].load(); }
  int64_t sent_total() const {
    int64_t total = 0;
    for (int s = 0; s < o_.series; ++s) total += sent(s);
    return total;
  }
  uint64_t observed() const { return observed_.load(); }

 private:
  void run(Client& client, int t) {
    std::mt19937 rng(o_.seed + static_cast<unsigned>(t));
    std::vector<Counter> handles;
    for (int s = 0; s < o_.series; ++s)
      handles.push_back(client.counter(o_.prefix + ".hits", {{"series", std::to_string(s)}}));
    auto lat = client.distribution(o_.prefix + ".latency", {{"thread", std::to_string(t)}});
    while (!stop_.load()) {
      const int s = static_cast<int>(rng() % static_cast<unsigned>(o_.series));
      const int v = 1 + static_cast<int>(rng() % 5);
      handles[static_cast<size_t>(s)].add(v);
      sent_[static_cast<size_t>(s)] += v;
      lat.observe(1 + rng() % 100);
      ++observed_;
      std::this_thread::sleep_for(o_.pace);  // the load's rate
    }
  }

  const SdkLoadOptions o_;
  std::unique_ptr<std::atomic<int64_t>[]> sent_;
  std::atomic<uint64_t> observed_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace tally::testing
