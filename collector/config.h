// CollectorConfig: every setting of tally-collector, with its default, loaded from a TOML file
// and overridden by command-line flags (installer/tally-collector.toml documents each one).
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "forward/remote_write_options.h"
#include "tally/common/endpoints.h"
#include "tally/common/status.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

struct CollectorConfig {
  std::string data_dir = "./data";
  uint32_t shards = 0;  // 0 = one per core; fixed when the data directory is created
  std::string ingest = kDefaultIngestEndpoint;
  std::string http = kDefaultHttpAddress;
  std::string live = kDefaultLiveEndpoint;
  std::string statsd = kDefaultStatsdAddress;  // "off" disables
  std::string statsd_unix;                     // unix datagram socket path; empty = none
  std::string retention = std::string(kDefaultRetention);
  int64_t lateness_s = 2;
  int64_t max_future_s = 600;
  uint64_t max_batch_bytes = 64u << 20;
  bool self_metrics = true;
  std::string fsync = "always";  // write-ahead log: always, never, or an interval like "100ms"
  int64_t checkpoint_s = 30;     // how often open buckets are written so the log can shrink
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
