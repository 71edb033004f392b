// StatsdListener: receives StatsD / DogStatsD datagrams on UDP (default 127.0.0.1:8125) and/or a
// unix datagram socket, parses them (statsd_parser.h) and hands the samples to a sink.
//
// One thread owns the sockets: poll -> recvmmsg -> parse_statsd_packet -> sink. What the sink
// receives (docs/format/statsd.md):
//   - counter lines seen before summed per key and second by the line cache
//     (statsd_line_cache.h): one counter sample whose `count` is the number of lines, handed
//     over once the socket has no more to read (at most 1,024 datagrams) or the second changes;
//   - counters, gauges and distributions as parsed, with `timestamp_s` set: the line's "|T" or
//     else the receive time from the injected clock (unix seconds);
//   - gauges as absolute values: in the etsy dialect the listener keeps each StatsD gauge's
//     current value and turns "+N" / "-N" into that value plus N (from 0 for a gauge it has not
//     seen since it started, as StatsD does), so `delta` is always false on what the sink gets
//     (resolve_gauge_deltas); in the dogstatsd dialect every gauge value is absolute already;
//   - never kSet: the listener keeps the unique members of each (series, 1 s bucket) and, when
//     the bucket closes on the clock (or 2 s after it opened, for "|T" in the future), emits one
//     kGauge sample whose value is the number of unique members and whose timestamp_s is the
//     bucket start. Open sets are flushed on stop().
// The sink is called on the listener thread only, about once per receive burst, with at least
// one sample. An exception from the sink is caught, counted and logged.
//
// A rejected line bumps its reason's counter and is logged at most once per log_interval_ms as
//   event=statsd_reject reason=metric_name line_number=2 detail="..." line="..." suppressed=3
// (`suppressed` = rejects not logged since the previous line).
//
// Thread-safety: start() and stop() from the owning thread; counters() and udp_port() from any
// thread. Not restartable: one start() per object.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "auth/cidr.h"
#include "ingest/statsd_parser.h"
#include "live_limits.h"
#include "tally/common/endpoints.h"
#include "tally/common/status.h"
#include "tally/common/time_bucket.h"

namespace spdlog {
class logger;
}

namespace tally::collector {

using StatsdSink = std::function<void(std::vector<StatsdSample>&&)>;
// Receives the well-formed DogStatsD events of one datagram (time_ms set: the d: field or the
// receive time), on the listener thread: it must not block (the collector queues them for the
// annotation store's thread).
using StatsdEventSink = std::function<void(std::vector<StatsdEvent>&&)>;

struct StatsdListenerOptions {
  // "host:port" (port 0 picks a free port, read it back with udp_port()), "[::1]:8125", or "off".
  std::string udp = kDefaultStatsdAddress;
  // A unix datagram socket to bind as well; empty = none. A stale socket file is replaced; a
  // path another live listener is bound to is an error.
  std::string unix_path;
  unsigned unix_mode = 0622;  // permission bits of the socket file: anyone may send
  StatsdDialect udp_dialect = StatsdDialect::kDogStatsd;   // how lines on the UDP socket read
  StatsdDialect unix_dialect = StatsdDialect::kDogStatsd;  // ... and on the unix socket
  // "|T" older than now - max_age_s or newer than now + max_future_s: the line is rejected
  // (timestamp_too_old / timestamp_too_new). The collector passes its ingest limits.
  int64_t max_age_s = 2 * 365 * 86400;
  int64_t max_future_s = 600;
  // When set (it must outlive the listener), both bounds are read from it for every datagram
  // instead (a reload changes them).
  const LiveLimits* live_limits = nullptr;
  size_t max_values_per_line = 1024;    // DogStatsD multi-value items in one line
  size_t max_decoded_bytes = 8u << 20;  // per datagram (statsd_parser.h)
  int recv_buffer_bytes = 4 << 20;      // SO_RCVBUF request; the kernel caps it at rmem_max
  size_t max_open_sets = 100'000;       // (series, bucket) sets held at once
  size_t max_set_members = 100'000;     // unique members counted per set and bucket
  // Apply gauge deltas here, against the last value this listener saw for the series. Off: the
  // sink gets delta samples and applies them itself.
  bool resolve_gauge_deltas = true;
  size_t max_gauge_series = 100'000;  // gauges whose current value is kept
  // Bytes each line cache may hold (statsd_line_cache.h: counter lines seen before are summed
  // per second without being parsed again); 0 = no cache, every line parsed.
  size_t line_cache_bytes = 16u << 20;
  int64_t log_interval_ms = 1000;          // at most one reject log line per interval
  std::shared_ptr<spdlog::logger> logger;  // null: spdlog's default logger
  // DogStatsD events go here; null = they are only counted.
  StatsdEventSink event_sink;
  // Told the error when the listener thread ends on an exception (the collector turns /healthz
  // to 503 with it); may be empty.
  std::function<void(const std::string&)> on_thread_failure;
  // UDP datagrams from a source outside these networks are dropped and counted
  // (sources_refused); empty = any source. The unix socket is guarded by its file mode instead.
  std::vector<Cidr> allowed_sources;
};

// A snapshot; every field counts since start().
struct StatsdCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t lines_ok = 0;
  uint64_t events = 0;          // well-formed DogStatsD events ("_e{"), handed to event_sink
  uint64_t service_checks = 0;  // well-formed DogStatsD service checks ("_sc|"), counted
  uint64_t tags_dropped = 0;    // tags left out of accepted lines (docs/format/statsd.md)
  uint64_t names_mapped = 0;    // metric names and tag keys stored under a mapped spelling
  uint64_t samples = 0;         // samples parsed (sets included, before they become gauges)
  std::array<uint64_t, kStatsdRejectReasons> lines_rejected{};  // indexed by StatsdReject
  uint64_t sets_emitted = 0;            // set buckets closed into a gauge sample
  uint64_t set_members_dropped = 0;     // members not counted: max_open_sets / max_set_members
  uint64_t gauge_deltas_untracked = 0;  // deltas applied to 0 because max_gauge_series was reached
  uint64_t sink_errors = 0;             // exceptions thrown by the sink
  uint64_t receive_errors = 0;          // recvmmsg failures other than EAGAIN / EINTR
  uint64_t sources_refused = 0;         // UDP datagrams from outside allowed_sources

  uint64_t rejected(StatsdReject r) const { return lines_rejected[static_cast<size_t>(r)]; }
  uint64_t lines_rejected_total() const;
};

class StatsdListener {
 public:
  StatsdListener(StatsdListenerOptions options, StatsdSink sink,
                 const Clock& clock = SystemClock::instance());
  ~StatsdListener();  // stop()
  StatsdListener(const StatsdListener&) = delete;
  StatsdListener& operator=(const StatsdListener&) = delete;

  // Binds the sockets and starts the thread. Fails with a message naming the address for a bad
  // address, a port in use, a unix path that is too long, not a socket, or in use. With udp
  // "off" and no unix path it succeeds and does nothing.
  Status start();
  // Wakes the thread, flushes open sets to the sink, joins, closes the sockets and removes the
  // unix socket file. Idempotent.
  void stop();

  uint16_t udp_port() const;  // the bound UDP port; 0 when UDP is off or not started
  StatsdCounters counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tally::collector
