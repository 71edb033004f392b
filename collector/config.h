// CollectorConfig: every setting of tally-collector, with its default, loaded from a TOML file
// and overridden by command-line flags (installer/tally-collector.toml documents each one).
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "forward/remote_write_options.h"
#include "tally/common/status.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

struct CollectorConfig {
  std::string data_dir = "./data";
  uint32_t shards = 0;  // 0 = one per core; fixed when the data directory is created
  std::string ingest = "tcp://127.0.0.1:7070";
  std::string http = "127.0.0.1:7071";
  std::string live = "tcp://127.0.0.1:7072";
  std::string statsd = "127.0.0.1:8125";  // "off" disables
  std::string statsd_unix;                // unix datagram socket path; empty = none
  std::string retention = std::string(kDefaultRetention);
  int64_t lateness_s = 2;
  int64_t max_future_s = 600;
  uint64_t max_batch_bytes = 64u << 20;
  // Bytes of accepted batches not yet applied by the shards; beyond it batches are answered
  // UNAVAILABLE with a retry-after hint (backpressure) instead of being queued.
  uint64_t max_queued_bytes = 256u << 20;
  // Tests only, set by hidden flags, never by the file: play a slow collector.
  int64_t debug_apply_delay_us = 0;  // --debug-apply-delay: per shard work item
  int64_t debug_def_delay_us = 0;    // --debug-def-delay: per series definition decoded
  bool self_metrics = true;
  std::string fsync = "always";  // write-ahead log: always, never, or an interval like "100ms"
  // Start-up only (--salvage-wal, never in a file): read past damage in the middle of the log,
  // moving the damaged bytes aside (WalOptions::salvage).
  bool salvage_wal = false;
  int64_t checkpoint_s = 30;  // how often open buckets are written so the log can shrink
  uint64_t wal_segment_bytes = 64u << 20;  // a new log segment starts past this size
  std::string log_level = "info";
  std::string log_file;  // empty = stderr
  std::string
      ready_file;  // written with the bound endpoints once listening (for tests and scripts)
  RemoteWriteOptions remote_write;  // the remote_write_* keys; forwarding is off without a url

  std::vector<Resolution> resolutions;  // parsed from retention by validate()
  Status validate();
};

// Reads the TOML file over `base`; unknown keys are errors (a typo must not pass silently).
Result<CollectorConfig> load_config_file(const std::string& path, CollectorConfig base);
std::string config_to_toml(const CollectorConfig& c);

}  // namespace tally::collector
