// RemoteWriteOptions: the settings of the remote-write forwarder
// (collector/forward/remote_write.h), the `remote_write_*` keys of the collector's configuration.
// An empty url turns it off. Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tally/common/status.h"
#include "tally/common/time_bucket.h"  // parse_duration_ms, format_duration_ms

namespace tally::collector {

struct RemoteWriteOptions {
  // http(s)://host:port/path of a Prometheus remote-write receiver; empty = forwarding off.
  std::string url;
  // Added to every forwarded series unless the series has a tag of that name. They must tell
  // this collector's series apart from every other collector's (each keeps its own running
  // totals). An empty value removes a label. The default is instance=<hostname>.
  std::vector<std::pair<std::string, std::string>> labels;
  // Extra HTTP headers on every request, e.g. X-Scope-OrgID (a Mimir tenant) or Authorization.
  std::vector<std::pair<std::string, std::string>> headers;
  // Samples per request: a request is sent when this many are queued or flush_interval_ms passed.
  uint64_t max_samples_per_request = 2000;
  int64_t flush_interval_ms = 1000;
  // Samples waiting to be sent (memory: ~40 bytes each). When full the oldest are dropped, counted.
  uint64_t max_buffered_samples = 500000;
  // Per request (connect, send, receive).
  int64_t timeout_ms = 10000;
  // Retries of 5xx, 429 and network errors wait min_backoff, doubling up to max_backoff.
  int64_t min_backoff_ms = 100;
  int64_t max_backoff_ms = 5000;
  // At stop, how long queued samples may still be sent before they are dropped (counted).
  int64_t drain_timeout_ms = 10000;
  // Tests only (hidden flag --debug-remote-write-since): stamp no sample before this unix time in
  // ms instead of before the forwarder's start, so a test can forward back-dated points at their
  // own bucket ends (tests/collector/tst_promql_compat.cpp), and never forget idle series (their
  // bucket times are older than the idle limit already). -1: the forwarder's start.
  int64_t debug_floor_ms = -1;

  bool enabled() const { return !url.empty(); }
  // When forwarding is on and no instance label is set: instance=<hostname>.
  void add_default_labels();
  Status validate() const;
  // Sets (or, with an empty value, removes) one label; "name=value" from a flag.
  Status set_label(std::string_view name_eq_value);
  // Adds one header; "Name: value" from a flag.
  Status add_header(std::string_view name_colon_value);
};

}  // namespace tally::collector
