// statsd_loadgen: a paced StatsD/DogStatsD UDP load generator for tests/bench/statsd_bench.sh.
//
// N sender threads share a target rate of lines per second. Each packet holds L tagged counter
// lines (default 20) of value 1, spread over S distinct series:
//
//   bench.statsd.m7:1|c|#env:prod,region:eu-west-1,host:host-0042,series:s1234
//
// Packets go out in groups with sendmmsg(2); each thread paces itself against the monotonic
// clock (a token bucket, so a slow moment is caught up without exceeding the rate for long).
// Every line has value 1, so a receiver that counts every line stores exactly `lines_sent`.
// A packet the kernel refuses on send (ENOBUFS, EAGAIN) is not counted as sent.
//
// Output: one line of key=value pairs on stdout:
//   lines_sent=... packets_sent=... send_errors=... seconds=... rate_achieved=...
//
// Usage: statsd_loadgen --port P [--host 127.0.0.1] [--threads 1] [--rate 100000]
//                       [--seconds 5] [--series 1000] [--lines-per-packet 20]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 1;
  double rate = 100'000;  // lines per second, all threads together
  double seconds = 5;
  int series = 1000;
  int lines_per_packet = 20;
};

struct Totals {
  std::atomic<uint64_t> lines{0}, packets{0}, errors{0};
};

constexpr int kGroup = 32;  // packets per sendmmsg call

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "statsd_loadgen: %s\nusage: statsd_loadgen --port P [--host H] [--threads N] "
               "[--rate LINES_PER_S] [--seconds S] [--series K] [--lines-per-packet L]\n",
               why);
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage(("missing value after " + a).c_str());
    const char* v = argv[++i];
    if (a == "--host")
      o.host = v;
    else if (a == "--port")
      o.port = std::atoi(v);
    else if (a == "--threads")
      o.threads = std::atoi(v);
    else if (a == "--rate")
      o.rate = std::atof(v);
    else if (a == "--seconds")
      o.seconds = std::atof(v);
    else if (a == "--series")
      o.series = std::atoi(v);
    else if (a == "--lines-per-packet")
      o.lines_per_packet = std::atoi(v);
    else
      usage(("unknown option " + a).c_str());
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is required (1..65535)");
  if (o.threads < 1 || o.threads > 64) usage("--threads must be 1..64");
  if (!(o.rate > 0) || !(o.seconds > 0) || o.series < 1 || o.lines_per_packet < 1)
    usage("rate, seconds, series and lines-per-packet must be positive");
  return o;
}

// One line of series `k` (0 <= k < series): 10 metric names, 4 tags, the last one naming the
// series, so the number of distinct (name, tags) pairs is exactly `series`.
std::string line_for(int k) {
  char buf[160];
  int n = std::snprintf(buf, sizeof buf,
                        "bench.statsd.m%d:1|c|#env:prod,region:eu-west-1,host:host-%04d,series:s%d",
                        k % 10, k % 100, k);
  return std::string(buf, static_cast<size_t>(n));
}

void sender(const Options& o, int index, const sockaddr_in& to, Totals& totals) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("socket");
    std::exit(1);
  }
  int sndbuf = 4 << 20;
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    std::perror("connect");
    std::exit(1);
  }

  // A ring of prebuilt packets: thread `index` walks the series from its own offset, so all
  // threads together cover every series.
  const int packets_in_ring =
      std::max(1, (o.series + o.lines_per_packet - 1) / o.lines_per_packet) * 2;
  std::vector<std::string> ring;
  ring.reserve(static_cast<size_t>(packets_in_ring));
  int k = (index * o.series) / o.threads;
  for (int p = 0; p < packets_in_ring; ++p) {
    std::string pkt;
    for (int l = 0; l < o.lines_per_packet; ++l) {
      if (l) pkt.push_back('\n');
      pkt += line_for(k);
      k = (k + 1) % o.series;
    }
    ring.push_back(std::move(pkt));
  }

  const double my_rate = o.rate / o.threads / o.lines_per_packet;  // packets per second
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(o.seconds);
  const uint64_t total_packets = static_cast<uint64_t>(my_rate * o.seconds + 0.5);
  uint64_t sent = 0;
  size_t next = 0;
  mmsghdr msgs[kGroup];
  iovec iov[kGroup];
  uint64_t lines = 0, packets = 0, errors = 0;
  while (sent < total_packets) {
    const auto now = std::chrono::steady_clock::now();
    if (now > end + std::chrono::seconds(2)) break;  // could not keep up; report what went out
    const double elapsed = std::chrono::duration<double>(now - start).count();
    uint64_t due = std::min<uint64_t>(total_packets, static_cast<uint64_t>(elapsed * my_rate));
    if (due <= sent) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    uint64_t want = std::min<uint64_t>(due - sent, kGroup);
    for (uint64_t i = 0; i < want; ++i) {
      const std::string& pkt = ring[next];
      next = (next + 1) % ring.size();
      iov[i] = {const_cast<char*>(pkt.data()), pkt.size()};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = ::sendmmsg(fd, msgs, static_cast<unsigned>(want), 0);
    if (n < 0) {
      ++errors;
      sent += 1;  // the first packet of the group is lost; keep pacing
      continue;
    }
    packets += static_cast<uint64_t>(n);
    lines += static_cast<uint64_t>(n) * static_cast<uint64_t>(o.lines_per_packet);
    sent += static_cast<uint64_t>(n);
  }
  totals.lines += lines;
  totals.packets += packets;
  totals.errors += errors;
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(o.port));
  if (::inet_pton(AF_INET, o.host.c_str(), &to.sin_addr) != 1) usage("--host must be IPv4");

  Totals totals;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < o.threads; ++i) threads.emplace_back([&, i] { sender(o, i, to, totals); });
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "lines_sent=%llu packets_sent=%llu send_errors=%llu seconds=%.3f rate_achieved=%.0f\n",
      static_cast<unsigned long long>(totals.lines.load()),
      static_cast<unsigned long long>(totals.packets.load()),
      static_cast<unsigned long long>(totals.errors.load()), secs, totals.lines.load() / secs);
  return 0;
}
