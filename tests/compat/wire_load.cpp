// A fixed load sent through the part of the SDK's public API that every release since 0.1.0
// shares (Client, count, observe, flush, stats), so tests/compat/wire_compat.sh can build it
// against each SDK and check the totals a collector of either version stores.
//
// Usage: tally_wire_load ENDPOINT PRODUCER_ID PREFIX ROUNDS SERIES
// Sends, per round and series s, a count of s + 1 to PREFIX.events{series=s} and an observation
// of round % 50 + 1 to PREFIX.latency{series=s}, pacing rounds 5 ms apart so they span many
// batches. Waits until every batch is acknowledged and prints one line of key=value totals.
// Exit status 0 when every batch was acknowledged and none was dropped or refused, else 1.
#include <tally/client.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s ENDPOINT PRODUCER_ID PREFIX ROUNDS SERIES\n", argv[0]);
    return 2;
  }
  tally::ClientOptions options;
  options.endpoint = argv[1];
  options.producer_id = std::strtoull(argv[2], nullptr, 10);
  options.flush_interval = std::chrono::milliseconds(50);
  const std::string prefix = argv[3];
  const int rounds = std::atoi(argv[4]);
  const int series = std::atoi(argv[5]);

  tally::Client client(options);
  std::vector<std::string> names;
  for (int s = 0; s < series; ++s) names.push_back("s" + std::to_string(s));
  uint64_t events = 0, observations = 0;
  double observed_sum = 0;
  for (int r = 0; r < rounds; ++r) {
    for (int s = 0; s < series; ++s) {
      client.count(prefix + ".events", s + 1, {{"series", names[s]}});
      events += static_cast<uint64_t>(s + 1);
      const double v = r % 50 + 1;
      client.observe(prefix + ".latency", v, {{"series", names[s]}});
      ++observations;
      observed_sum += v;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  tally::ClientStats st = client.stats();
  while (std::chrono::steady_clock::now() < deadline) {
    client.flush(std::chrono::seconds(5));
    st = client.stats();
    if (st.batches_pending == 0 &&
        st.batches_acked + st.batches_dropped + st.batches_rejected == st.batches_sent)
      break;
  }
  std::printf(
      "events=%llu observations=%llu observed_sum=%.0f batches=%llu acked=%llu resent=%llu "
      "unavailable=%llu dropped=%llu rejected=%llu pending=%llu\n",
      static_cast<unsigned long long>(events), static_cast<unsigned long long>(observations),
      observed_sum, static_cast<unsigned long long>(st.batches_sent),
      static_cast<unsigned long long>(st.batches_acked),
      static_cast<unsigned long long>(st.batches_resent),
      static_cast<unsigned long long>(st.unavailable_acks),
      static_cast<unsigned long long>(st.batches_dropped),
      static_cast<unsigned long long>(st.batches_rejected),
      static_cast<unsigned long long>(st.batches_pending));
  const bool all_acked = st.batches_pending == 0 && st.batches_dropped == 0 &&
                         st.batches_rejected == 0 && st.batches_acked == st.batches_sent;
  if (!all_acked)
    std::fprintf(stderr, "not every batch was acknowledged: %s\n", client.last_error().c_str());
  return all_acked ? 0 : 1;
}
