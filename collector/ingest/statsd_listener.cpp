#include "ingest/statsd_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "ingest/statsd_line_cache.h"

namespace tally::collector {
namespace {

// 64 KiB holds any UDP datagram (65,507 bytes of payload at most); a bigger unix datagram is
// truncated and its cut-off last line counted as kTruncated.
constexpr size_t kDatagramBytes = 64 * 1024;
constexpr unsigned kBatch = 16;         // datagrams per recvmmsg call
constexpr int kMaxBatchesPerWake = 64;  // then look at the clock and the other socket
constexpr int kSetPollMs = 50;          // how often open sets are checked against the clock
// The line caches' sums go to the sink at most this often (and when the second changes): a take
// per wake would hand the router one sample per key for every few datagrams.
constexpr int kCacheTakeMs = 10;
constexpr int64_t kSetMaxOpenMs = 2000;  // a set bucket in the future closes after this
constexpr size_t kMaxLoggedLineBytes = 200;

std::string errno_text(int err) {
  return std::strerror(err);
}

// key=value log quoting: backslash, quote and non-printable bytes escaped, long lines cut.
std::string log_quote(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kMaxLoggedLineBytes; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out.append(buf);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (s.size() > kMaxLoggedLineBytes) out.append("...");
  out.push_back('"');
  return out;
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    reset();
    fd = std::exchange(o.fd, -1);
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  explicit operator bool() const { return fd >= 0; }
};

Result<Fd> bind_udp(const std::string& address, int rcvbuf) {
  std::string host;
  std::string port;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find("]:");
    if (close == std::string::npos)
      return Status::invalid_argument("statsd address '" + address +
                                      "' must be host:port or [v6-host]:port");
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0)
      return Status::invalid_argument("statsd address '" + address +
                                      "' must be host:port (or \"off\")");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535)
    return Status::invalid_argument("statsd address '" + address + "' has an invalid port");

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return Status::invalid_argument("statsd address '" + address + "': " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);

  Fd fd(::socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Status::io_error("statsd: cannot create a UDP socket: " + errno_text(errno));
  // Best effort: a bigger buffer rides out bursts while the thread is in the sink.
  (void)::setsockopt(fd.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (::bind(fd.fd, res->ai_addr, res->ai_addrlen) != 0)
    return Status::io_error("statsd: cannot bind UDP " + address + ": " + errno_text(errno));
  return fd;
}

Result<Fd> bind_unix(const std::string& path, int rcvbuf, unsigned mode) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return Status::invalid_argument("statsd unix socket path is " + std::to_string(path.size()) +
                                    " bytes, the limit is " +
                                    std::to_string(sizeof addr.sun_path - 1) + ": " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Status::invalid_argument("statsd unix socket path exists and is not a socket: " +
                                      path);
    // A socket file left by a crashed process is replaced; one with a live reader is not.
    Fd probe(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      return Status::io_error("statsd: unix socket " + path + " is in use by another process");
    if (::unlink(path.c_str()) != 0)
      return Status::io_error("statsd: cannot remove stale socket " + path + ": " +
                              errno_text(errno));
  }

  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Status::io_error("statsd: cannot create a unix socket: " + errno_text(errno));
  (void)::setsockopt(fd.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (::bind(fd.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Status::io_error("statsd: cannot bind unix socket " + path + ": " + errno_text(errno));
  if (::chmod(path.c_str(), mode) != 0)
    return Status::io_error("statsd: cannot chmod " + path + ": " + errno_text(errno));
  return fd;
}

}  // namespace

uint64_t StatsdCounters::lines_rejected_total() const {
  uint64_t n = 0;
  for (uint64_t v : lines_rejected) n += v;
  return n;
}

struct StatsdListener::Impl {
  Impl(StatsdListenerOptions o, StatsdSink s, const Clock& c)
      : options(std::move(o)),
        sink(std::move(s)),
        clock(c),
        logger(options.logger ? options.logger : spdlog::default_logger()) {}

  // Set state: one entry per (bucket start, series key); owned by the listener thread.
  struct OpenSet {
    std::string metric;
    Tags tags;
    int64_t opened_ms = 0;
    std::unordered_set<std::string> members;
  };

  void run();
  void receive(int fd, StatsdDialect dialect);
  void handle_datagram(std::string_view data, bool truncated, int64_t now_ms,
                       StatsdDialect dialect);
  void add_to_set(StatsdSample&& s, int64_t now_ms);
  void close_sets(int64_t now_ms, bool all);
  void resolve_gauge(StatsdSample& s);
  void deliver();
  // Moves what the line caches summed into `pending` (as samples of the second they were
  // counted in).
  void take_cached();
  void log_reject(size_t line_number, std::string_view line, StatsdReject reason,
                  std::string_view detail, int64_t now_ms);
  void log_refused_source(const sockaddr_storage& from, int64_t now_ms);

  const StatsdListenerOptions options;
  const StatsdSink sink;
  const Clock& clock;
  const std::shared_ptr<spdlog::logger> logger;

  Fd udp_fd;
  Fd unix_fd;
  Fd wake_fd;
  std::string bound_unix_path;  // removed on stop
  std::atomic<uint16_t> udp_port{0};
  std::atomic<bool> stopping{false};
  std::thread thread;
  bool started = false;

  // Listener-thread state.
  std::vector<char> buffers;
  std::vector<StatsdSample> pending;
  std::vector<StatsdLineError> errors;
  std::vector<StatsdEvent> events_out;  // one datagram's events, for options.event_sink
  // Counter lines seen before, summed per key for the open second (statsd_line_cache.h); one per
  // dialect, since a dialect reads a line differently.
  StatsdLineCache dog_cache{options.line_cache_bytes};
  StatsdLineCache etsy_cache{options.line_cache_bytes};
  int64_t cache_second = 0;
  std::chrono::steady_clock::time_point last_take;
  std::map<std::pair<int64_t, std::string>, OpenSet> sets;
  std::unordered_map<std::string, double> gauges;  // series key -> current value
  int64_t next_set_close_ms = std::numeric_limits<int64_t>::max();
  int64_t last_log_ms = std::numeric_limits<int64_t>::min();
  uint64_t suppressed_logs = 0;

  // Counters: written by the listener thread, read by anyone.
  std::atomic<uint64_t> packets{0}, bytes{0}, lines_ok{0}, events{0}, service_checks{0},
      tags_dropped{0}, names_mapped{0}, samples{0}, sets_emitted{0}, set_members_dropped{0},
      gauge_deltas_untracked{0}, sink_errors{0}, receive_errors{0}, sources_refused{0};
  std::array<std::atomic<uint64_t>, kStatsdRejectReasons> rejected{};

  static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
};

StatsdListener::StatsdListener(StatsdListenerOptions options, StatsdSink sink, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(sink), clock)) {}

StatsdListener::~StatsdListener() {
  stop();
}

Status StatsdListener::start() {
  Impl& m = *impl_;
  if (m.started) return Status::internal("statsd listener already started");
  if (!m.sink) return Status::invalid_argument("statsd listener needs a sink");

  Fd udp;
  if (m.options.udp != "off" && !m.options.udp.empty()) {
    auto r = bind_udp(m.options.udp, m.options.recv_buffer_bytes);
    if (!r) return r.status();
    udp = std::move(*r);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(udp.fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      uint16_t port = ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&ss)->sin_port;
      m.udp_port.store(ntohs(port));
    }
  }
  Fd unix_sock;
  if (!m.options.unix_path.empty()) {
    auto r = bind_unix(m.options.unix_path, m.options.recv_buffer_bytes, m.options.unix_mode);
    if (!r) return r.status();
    unix_sock = std::move(*r);
    m.bound_unix_path = m.options.unix_path;
  }
  if (!udp && !unix_sock) {
    m.started = true;
    return Status::ok();
  }
  Fd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake) return Status::io_error("statsd: eventfd: " + errno_text(errno));

  m.udp_fd = std::move(udp);
  m.unix_fd = std::move(unix_sock);
  m.wake_fd = std::move(wake);
  m.buffers.resize(kDatagramBytes * kBatch);
  m.started = true;
  m.thread = std::thread([&m] { m.run(); });
  m.logger->info("event=statsd_listen udp={} unix={} port={}", m.udp_fd ? m.options.udp : "off",
                 m.bound_unix_path.empty() ? "off" : m.bound_unix_path, m.udp_port.load());
  return Status::ok();
}

void StatsdListener::stop() {
  Impl& m = *impl_;
  if (m.thread.joinable()) {
    m.stopping.store(true);
    uint64_t one = 1;
    (void)!::write(m.wake_fd.fd, &one, sizeof one);
    m.thread.join();
  }
  m.udp_fd.reset();
  m.unix_fd.reset();
  m.wake_fd.reset();
  if (!m.bound_unix_path.empty()) {
    ::unlink(m.bound_unix_path.c_str());
    m.bound_unix_path.clear();
  }
}

uint16_t StatsdListener::udp_port() const {
  return impl_->udp_port.load();
}

StatsdCounters StatsdListener::counters() const {
  const Impl& m = *impl_;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  StatsdCounters c;
  c.packets = get(m.packets);
  c.bytes = get(m.bytes);
  c.lines_ok = get(m.lines_ok);
  c.events = get(m.events);
  c.service_checks = get(m.service_checks);
  c.tags_dropped = get(m.tags_dropped);
  c.names_mapped = get(m.names_mapped);
  c.samples = get(m.samples);
  for (size_t i = 0; i < kStatsdRejectReasons; ++i) c.lines_rejected[i] = get(m.rejected[i]);
  c.sets_emitted = get(m.sets_emitted);
  c.set_members_dropped = get(m.set_members_dropped);
  c.gauge_deltas_untracked = get(m.gauge_deltas_untracked);
  c.sink_errors = get(m.sink_errors);
  c.receive_errors = get(m.receive_errors);
  c.sources_refused = get(m.sources_refused);
  return c;
}

void StatsdListener::Impl::run() {
  try {
    while (!stopping.load()) {
      pollfd fds[3];
      nfds_t n = 0;
      fds[n++] = {wake_fd.fd, POLLIN, 0};
      if (udp_fd) fds[n++] = {udp_fd.fd, POLLIN, 0};
      if (unix_fd) fds[n++] = {unix_fd.fd, POLLIN, 0};
      const bool cached = dog_cache.has_counts() || etsy_cache.has_counts();
      int rc = ::poll(fds, n, cached ? kCacheTakeMs : sets.empty() ? -1 : kSetPollMs);
      if (rc < 0 && errno != EINTR) {
        bump(receive_errors);
        logger->error("event=statsd_poll_error error=\"{}\"", errno_text(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (stopping.load()) break;
      for (nfds_t i = 1; rc > 0 && i < n; ++i) {
        if (fds[i].revents & (POLLIN | POLLERR))
          receive(fds[i].fd, fds[i].fd == udp_fd.fd ? options.udp_dialect : options.unix_dialect);
      }
      close_sets(clock.now_ms(), false);
      const auto now = std::chrono::steady_clock::now();
      if (now - last_take >= std::chrono::milliseconds(kCacheTakeMs)) {
        take_cached();
        last_take = now;
      }
      deliver();
    }
    close_sets(clock.now_ms(), true);
    take_cached();
    deliver();
  } catch (const std::exception& e) {
    // Nothing above throws on bad input; this is memory exhaustion or a bug. Counted, logged and
    // reported (the collector's /healthz turns 503).
    bump(receive_errors);
    logger->critical("event=thread_failed thread=statsd error=\"{}\"", e.what());
    if (options.on_thread_failure) options.on_thread_failure(e.what());
  } catch (...) {
    bump(receive_errors);
    logger->critical("event=thread_failed thread=statsd error=\"not a std::exception\"");
    if (options.on_thread_failure) options.on_thread_failure("not a std::exception");
  }
}

void StatsdListener::Impl::receive(int fd, StatsdDialect dialect) {
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_storage from[kBatch];
  const bool filter = fd == udp_fd.fd && !options.allowed_sources.empty();
  for (int round = 0; round < kMaxBatchesPerWake; ++round) {
    for (unsigned i = 0; i < kBatch; ++i) {
      iov[i] = {buffers.data() + i * kDatagramBytes, kDatagramBytes};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      if (filter) {
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      }
    }
    int got = ::recvmmsg(fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (got < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        bump(receive_errors);
        logger->error("event=statsd_receive_error error=\"{}\"", errno_text(errno));
      }
      return;
    }
    const int64_t now_ms = clock.now_ms();
    for (int i = 0; i < got; ++i) {
      if (filter &&
          !source_allowed(options.allowed_sources, reinterpret_cast<const sockaddr*>(&from[i]))) {
        bump(sources_refused);
        log_refused_source(from[i], now_ms);
        continue;
      }
      handle_datagram(std::string_view(buffers.data() + i * kDatagramBytes, msgs[i].msg_len),
                      (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0, now_ms, dialect);
    }
    deliver();
    if (static_cast<unsigned>(got) < kBatch) return;
  }
}

void StatsdListener::Impl::handle_datagram(std::string_view data, bool truncated, int64_t now_ms,
                                           StatsdDialect dialect) {
  bump(bytes, data.size());
  if (truncated) {
    // The tail of the last line is gone: parse the complete lines, count the cut one.
    size_t last_nl = data.rfind('\n');
    std::string_view cut = last_nl == std::string_view::npos ? data : data.substr(last_nl + 1);
    data = last_nl == std::string_view::npos ? std::string_view() : data.substr(0, last_nl + 1);
    bump(rejected[static_cast<size_t>(StatsdReject::kTruncated)]);
    log_reject(0, cut, StatsdReject::kTruncated,
               "datagram larger than " + std::to_string(kDatagramBytes) + " bytes was truncated",
               now_ms);
  }
  errors.clear();
  StatsdParseOptions po;
  po.dialect = dialect;
  po.now_s = now_ms / 1000;
  po.max_age_s = options.max_age_s;
  po.max_future_s = options.max_future_s;
  if (options.live_limits) {
    const auto l = options.live_limits->get();
    po.max_age_s = l->max_age_s();
    po.max_future_s = l->max_future_s;
  }
  po.max_values_per_line = options.max_values_per_line;
  po.max_decoded_bytes = options.max_decoded_bytes;
  StatsdLineCache* cache = nullptr;
  if (options.line_cache_bytes > 0) {
    cache = dialect == StatsdDialect::kDogStatsd ? &dog_cache : &etsy_cache;
    // The caches sum per second: a new second first hands out the last one's sums.
    if (po.now_s != cache_second) {
      take_cached();
      cache_second = po.now_s;
    }
  }
  const size_t first = pending.size();
  StatsdPacketCounts counts = parse_statsd_packet(data, po, pending, errors, cache,
                                                  options.event_sink ? &events_out : nullptr);
  if (!events_out.empty()) {
    for (StatsdEvent& ev : events_out)
      if (ev.time_ms == 0) ev.time_ms = now_ms;
    std::vector<StatsdEvent> out;
    out.swap(events_out);
    try {
      options.event_sink(std::move(out));
    } catch (const std::exception& e) {
      bump(sink_errors);
      logger->error("event=statsd_sink_error error={}", log_quote(e.what()));
    }
    events_out.clear();
  }
  bump(lines_ok, counts.lines_ok);
  if (counts.events) bump(events, counts.events);
  if (counts.service_checks) bump(service_checks, counts.service_checks);
  if (counts.tags_dropped) bump(tags_dropped, counts.tags_dropped);
  if (counts.names_mapped) bump(names_mapped, counts.names_mapped);
  bump(samples, pending.size() - first + counts.cached);
  for (const StatsdLineError& e : errors) {
    bump(rejected[static_cast<size_t>(e.reason)]);
    log_reject(e.line_number, e.line, e.reason, e.message, now_ms);
  }
  errors.clear();  // its views point into the receive buffer

  // Stamp receive time; move set members out of the batch into their buckets.
  const int64_t now_s = now_ms / 1000;
  size_t keep = first;
  for (size_t i = first; i < pending.size(); ++i) {
    StatsdSample& s = pending[i];
    if (s.timestamp_s == 0) s.timestamp_s = now_s;
    if (s.type == StatsdType::kSet) {
      add_to_set(std::move(s), now_ms);
    } else {
      // Only the etsy dialect has deltas; its absolute gauges are the base of later deltas.
      if (s.type == StatsdType::kGauge && dialect == StatsdDialect::kEtsy &&
          options.resolve_gauge_deltas)
        resolve_gauge(s);
      if (keep != i) pending[keep] = std::move(s);
      ++keep;
    }
  }
  pending.resize(keep);
  bump(packets);  // last, so that a reader who sees the packet sees its lines counted
}

void StatsdListener::Impl::resolve_gauge(StatsdSample& s) {
  std::string key = series_key(s.metric, s.tags);
  auto it = gauges.find(key);
  if (it == gauges.end()) {
    if (gauges.size() >= options.max_gauge_series) {
      if (s.delta) bump(gauge_deltas_untracked);
      s.delta = false;  // applied to 0
      return;
    }
    it = gauges.emplace(std::move(key), 0.0).first;
  }
  it->second = s.delta ? it->second + s.value : s.value;
  s.value = it->second;
  s.delta = false;
}

void StatsdListener::Impl::add_to_set(StatsdSample&& s, int64_t now_ms) {
  auto key = std::make_pair(s.timestamp_s, series_key(s.metric, s.tags));
  auto it = sets.find(key);
  if (it == sets.end()) {
    if (sets.size() >= options.max_open_sets) {
      bump(set_members_dropped);
      return;
    }
    it = sets.emplace(std::move(key), OpenSet{std::move(s.metric), std::move(s.tags), now_ms, {}})
             .first;
    int64_t close_ms = std::min((s.timestamp_s + 1) * 1000, now_ms + kSetMaxOpenMs);
    next_set_close_ms = std::min(next_set_close_ms, close_ms);
  }
  OpenSet& set = it->second;
  if (set.members.size() >= options.max_set_members && !set.members.contains(s.set_member)) {
    bump(set_members_dropped);
    return;
  }
  set.members.insert(std::move(s.set_member));
}

void StatsdListener::Impl::close_sets(int64_t now_ms, bool all) {
  if (!all && now_ms < next_set_close_ms) return;
  next_set_close_ms = std::numeric_limits<int64_t>::max();
  for (auto it = sets.begin(); it != sets.end();) {
    const int64_t bucket = it->first.first;
    const int64_t close_ms = std::min((bucket + 1) * 1000, it->second.opened_ms + kSetMaxOpenMs);
    if (!all && now_ms < close_ms) {
      next_set_close_ms = std::min(next_set_close_ms, close_ms);
      ++it;
      continue;
    }
    StatsdSample& g = pending.emplace_back();
    g.metric = std::move(it->second.metric);
    g.tags = std::move(it->second.tags);
    g.type = StatsdType::kGauge;
    g.value = static_cast<double>(it->second.members.size());
    g.timestamp_s = bucket;
    bump(sets_emitted);
    it = sets.erase(it);
  }
}

void StatsdListener::Impl::take_cached() {
  if (dog_cache.has_counts()) dog_cache.take(cache_second, pending);
  if (etsy_cache.has_counts()) etsy_cache.take(cache_second, pending);
}

void StatsdListener::Impl::deliver() {
  if (pending.empty()) return;
  std::vector<StatsdSample> batch;
  batch.swap(pending);
  try {
    sink(std::move(batch));
  } catch (const std::exception& e) {
    bump(sink_errors);
    logger->error("event=statsd_sink_error error={}", log_quote(e.what()));
  } catch (...) {
    bump(sink_errors);
    logger->error("event=statsd_sink_error error=\"unknown exception\"");
  }
  pending.clear();
}

void StatsdListener::Impl::log_reject(size_t line_number, std::string_view line,
                                      StatsdReject reason, std::string_view detail,
                                      int64_t now_ms) {
  if (last_log_ms != std::numeric_limits<int64_t>::min() &&
      now_ms - last_log_ms < options.log_interval_ms) {
    ++suppressed_logs;
    return;
  }
  logger->warn("event=statsd_reject reason={} line_number={} detail={} line={} suppressed={}",
               statsd_reject_name(reason), line_number, log_quote(detail), log_quote(line),
               suppressed_logs);
  last_log_ms = now_ms;
  suppressed_logs = 0;
}

void StatsdListener::Impl::log_refused_source(const sockaddr_storage& from, int64_t now_ms) {
  if (last_log_ms != std::numeric_limits<int64_t>::min() &&
      now_ms - last_log_ms < options.log_interval_ms) {
    ++suppressed_logs;
    return;
  }
  char host[INET6_ADDRSTRLEN] = "?";
  if (from.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(from).sin_addr, host, sizeof host);
  else if (from.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(from).sin6_addr, host, sizeof host);
  logger->warn(
      "event=statsd_source_refused source={} note=\"not in statsd_allowed_sources\" suppressed={}",
      host, suppressed_logs);
  last_log_ms = now_ms;
  suppressed_logs = 0;
}

}  // namespace tally::collector
