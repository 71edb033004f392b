// CollectorConfig: every setting of tally-collector, with its default, loaded from a TOML file
// and overridden by command-line flags (installer/tally-collector.toml documents each one).
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/security_config.h"
#include "forward/remote_write_options.h"
#include "tally/common/endpoints.h"
#include "tally/common/status.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

// Budgets for what one client may ask of the collector; each hit is counted as
// tally_limit_hits_total{limit=...} and answered with a clear error (docs/CORRECTNESS.md).
struct InputLimits {
  int64_t query_max_points = 100000;     // steps per series of one /api/query answer
  int64_t query_max_series = 100000;     // series one query reads
  int64_t query_max_samples = 50000000;  // stored buckets one query reads (series x buckets)
  int64_t query_timeout_ms = 30000;      // a query still running after this is cut short
  int64_t batch_max_points = 1000000;    // points in one SDK batch
  int64_t batch_max_defs = 100000;       // series definitions in one SDK batch
  int64_t sketch_max_bins = 4096;        // non-empty bins in one distribution point
  int64_t sketch_max_key_span = 4096;    // highest - lowest sketch key in one point (x8 bytes)
  // Cardinality (docs/SECURITY.md): beyond these a new tag combination folds into its metric's
  // __overflow__="true" series (aggregate/cardinality.h); the producer table forgets producers.
  int64_t series_max_per_metric = 200000;      // series of one metric
  int64_t series_max_total = 1000000;          // series in the collector
  int64_t series_max_new_per_minute = 100000;  // new series one producer creates per minute
  int64_t producers_max = 10000;               // SDK producers remembered (least recent go)
  int64_t producer_idle_ms = 3600 * 1000;      // a producer silent this long is forgotten
  // HTTP connections waiting for their request or for a worker (query/http_server.h); one more
  // sheds the oldest with a 503.
  int64_t http_max_connections = 512;
  // A series with no point for this long leaves memory and the catalog's indexes (its stored data
  // stays queryable; catalog.h). -1 = the finest resolution's retention (validate() sets it);
  // 0 = never ("off").
  int64_t series_idle_expiry_ms = -1;
  // Annotations kept (storage/annotation_store.h); beyond it the oldest by time are deleted and
  // counted in tally_annotations_dropped_total.
  int64_t annotations_max = 100000;
};

struct CollectorConfig {
  std::string data_dir = "./data";
  uint32_t shards = 0;  // 0 = one per core; fixed when the data directory is created
  std::string ingest = kDefaultIngestEndpoint;
  std::string http = kDefaultHttpAddress;
  std::string live = kDefaultLiveEndpoint;
  std::string statsd = kDefaultStatsdAddress;  // "off" disables
  std::string statsd_unix;                     // unix datagram socket path; empty = none
  // How each StatsD socket reads lines: "dogstatsd" (as the Datadog Agent) or "etsy" (as Etsy
  // StatsD); docs/format/statsd.md. statsd_unix_dialect empty = the same as statsd_dialect.
  std::string statsd_dialect = "dogstatsd";
  std::string statsd_unix_dialect;
  std::string retention = std::string(kDefaultRetention);
  int64_t lateness_s = 2;
  int64_t max_future_s = 600;
  // Bytes of accepted batches not yet applied by the shards; beyond it batches are answered
  // UNAVAILABLE with a retry-after hint (backpressure) instead of being queued.
  uint64_t max_queued_bytes = 256u << 20;
  // Tests only, set by hidden flags, never by the file: play a slow collector.
  int64_t debug_apply_delay_us = 0;   // --debug-apply-delay: per shard work item
  int64_t debug_def_delay_us = 0;     // --debug-def-delay: per series definition decoded
  int64_t debug_backup_pause_us = 0;  // --debug-backup-pause: between the snapshots and the log
  uint64_t max_batch_bytes =
      4u << 20;  // 4 MiB (kMaxBatchBytes): about 200 k points; SDK batches are far smaller
  InputLimits limits;
  bool self_metrics = true;
  std::string fsync = "always";  // write-ahead log: always, never, or an interval like "100ms"
  // Start-up only (--salvage-wal, never in a file): read past damage in the middle of the log,
  // moving the damaged bytes aside (WalOptions::salvage).
  bool salvage_wal = false;
  int64_t checkpoint_s = 30;  // how often open buckets are written so the log can shrink
  uint64_t wal_segment_bytes = 64u << 20;  // a new log segment starts past this size
  std::string log_level = "info";
  std::string log_file;  // empty = stderr
  // A log file rotates past log_max_bytes; log_max_files rotated files are kept (file.1 ... .N).
  uint64_t log_max_bytes = 64u << 20;
  uint64_t log_max_files = 5;
  std::string
      ready_file;  // written with the bound endpoints once listening (for tests and scripts)
  uint64_t promql_max_length = 8192;  // bytes of one PromQL query
  uint64_t promql_max_depth = 128;    // nesting levels of one PromQL query
  RemoteWriteOptions remote_write;    // the remote_write_* keys; forwarding is off without a url
  // Authentication: CURVE keys, HTTP tokens / Host / Origin / TLS, StatsD sources, and each
  // listener's allow_insecure (auth/security_config.h, docs/SECURITY.md).
  SecurityConfig security;

  std::vector<Resolution> resolutions;  // parsed from retention by validate()
  Status validate();
};

// Reads the TOML file over `base`; unknown keys are errors (a typo must not pass silently).
// Sets one of the InputLimits by its TOML key ("query_max_series", "query_timeout" takes a
// duration like "10s"); false when the key is not one of them.
bool is_limit_key(std::string_view key);
Result<bool> set_limit(InputLimits& l, std::string_view key, std::string_view value);
// (key, value) of every limit, as the TOML file spells them.
std::vector<std::pair<std::string, std::string>> limits_as_toml(const InputLimits& l);

Result<CollectorConfig> load_config_file(const std::string& path, CollectorConfig base);
std::string config_to_toml(const CollectorConfig& c);

}  // namespace tally::collector
