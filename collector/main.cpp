// tally-collector: receives metric batches (ZeroMQ, StatsD), aggregates them into time buckets,
// keeps them in sharded SQLite files and serves queries (HTTP) and a live stream (ZeroMQ PUB).
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "config.h"
#include "log.h"
#include "server.h"
#include "tally/common/version.h"
#include "tally/common/wire.h"

using namespace tally;
using namespace tally::collector;

namespace {

// glibc serves a block of 128 KiB or more with its own mmap, and gives it back on free; but the
// first such free raises that threshold to the block's size (up to 32 MiB). From then on the
// collector's large transient buffers (a 20 k-series batch, its per-shard work, a checkpoint's
// live updates) come from the threads' arenas, are freed on another thread, and stay resident
// there as free space that grows with the churn: under idle-series expiry RSS crept by about
// 0.3 MB per 20 k series ever seen (docs/CORRECTNESS.md, "Memory under idle-series churn"). A
// fixed threshold keeps large blocks out of the arenas. An operator's own setting
// (MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES) wins.
void keep_large_blocks_out_of_arenas() {
#ifdef __GLIBC__
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") ||
      (tunables && std::strstr(tunables, "mmap_threshold")))
    return;
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);  // glibc's default, made fixed
#endif
}

}  // namespace

int main(int argc, char** argv) {
  keep_large_blocks_out_of_arenas();  // before any thread has an arena
  tally::quiet_protobuf_log();        // every message that fails to parse is answered and counted
  CollectorConfig defaults;
  CLI::App app{
      "tally-collector: receives metrics from Tally SDKs and StatsD clients, aggregates them into\n"
      "1 s / 10 s / 1 m / 1 h buckets, stores them in sharded SQLite files and serves queries.\n"
      "Settings come from --config (TOML) and are overridden by the flags below.",
      "tally-collector"};
  app.get_formatter()->column_width(34);
  app.set_version_flag("--version", std::string("tally-collector ") + tally::kVersion);
  // A later flag wins, so scripts can append overrides.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string config_path;
  app.add_option("-c,--config", config_path, "TOML configuration file")->check(CLI::ExistingFile);
  // Flags are read into optionals so only what was given overrides the file.
  std::optional<std::string> statsd_dialect;
  std::optional<std::string> data_dir, ingest, http, live, statsd, statsd_unix, retention, lateness,
      max_future, log_level, log_file, ready_file, fsync, checkpoint, debug_apply_delay,
      debug_def_delay, debug_backup_pause;
  std::optional<uint32_t> shards;
  std::optional<uint64_t> max_batch_bytes, wal_segment_bytes, max_queued_bytes, log_max_bytes,
      log_max_files;
  bool no_self_metrics = false, print_config = false, salvage_wal = false;
  app.add_option("--data-dir", data_dir, "Data directory (default " + defaults.data_dir + ")");
  app.add_option("--shards", shards,
                 "Shard files, fixed when the data directory is created (default: one per core)");
  app.add_option("--ingest", ingest,
                 "ZeroMQ endpoint SDKs send to (default " + defaults.ingest + ")");
  app.add_option("--http", http,
                 "HTTP API host:port, port 0 picks one (default " + defaults.http + ")");
  app.add_option("--live", live,
                 "ZeroMQ PUB endpoint of the live stream, or off (default " + defaults.live + ")");
  app.add_option("--statsd", statsd,
                 "StatsD UDP host:port, or off (default " + defaults.statsd + ")");
  app.add_option("--statsd-unix", statsd_unix, "StatsD unix datagram socket path (default: none)");
  app.add_option("--statsd-dialect", statsd_dialect,
                 "How StatsD lines are read: dogstatsd (default) or etsy");
  app.add_option("--retention", retention,
                 "Resolutions and how long each is kept (default " + defaults.retention + ")");
  app.add_option("--lateness", lateness, "How long a bucket stays open after it ends (default 2s)");
  app.add_option("--max-future", max_future, "Reject points further ahead than this (default 10m)");
  app.add_option("--wal-segment-bytes", wal_segment_bytes,
                 "Write-ahead log segment size; whole segments are deleted (default 64 MiB)");
  app.add_option("--max-queued-bytes", max_queued_bytes,
                 "Accepted, not yet applied bytes before batches are refused with a retry-after "
                 "(default 256 MiB)");
  // Tests only: play a slow collector. Hidden (an empty group) and not in the config file.
  app.add_option("--debug-apply-delay", debug_apply_delay, "per shard work item")->group("");
  app.add_option("--debug-def-delay", debug_def_delay, "per series definition decoded")->group("");
  app.add_option("--debug-backup-pause", debug_backup_pause, "between snapshots and log copy")
      ->group("");
  // Tests only: forward back-dated points at their own times (RemoteWriteOptions::debug_floor_ms).
  std::optional<int64_t> debug_rw_since;
  app.add_option("--debug-remote-write-since", debug_rw_since, "unix seconds")->group("");
  app.add_option("--max-batch-bytes", max_batch_bytes, "Largest accepted batch (default 4 MiB)");
  app.add_option("--fsync", fsync,
                 "Write-ahead log sync: always (default), never, or an interval like 100ms");
  app.add_option("--checkpoint", checkpoint,
                 "How often open buckets are written so the log can shrink (default 30s)");
  app.add_flag("--salvage-wal", salvage_wal,
               "Start past damage in the middle of the write-ahead log: move the damaged bytes to "
               "<segment>.damaged-<offset> and keep every record after them");
  app.add_flag("--no-self-metrics", no_self_metrics,
               "Do not record the collector's own tally.collector.* metrics");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error (default info)");
  app.add_option("--log-file", log_file, "Log to this file instead of stderr");
  app.add_option("--log-max-bytes", log_max_bytes,
                 "Rotate the log file past this size, 0 never (default 64 MiB)");
  app.add_option("--log-max-files", log_max_files, "Rotated log files kept (default 5)");
  std::string check_config;
  app.add_option("--check-config", check_config,
                 "Validate this TOML file (with any flags given) and exit: 0 valid, 2 not");
  app.add_option("--ready-file", ready_file,
                 "Write the bound endpoints here (JSON) once listening");
  app.add_flag("--print-config", print_config,
               "Print the effective configuration as TOML and exit");
  std::vector<std::string> limits;
  app.add_option("--limit", limits,
                 "key=value for one input budget, e.g. query_max_series=1000; repeatable (the "
                 "keys and defaults are in the README)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  // Remote-write forwarding (docs/SCALING.md).
  std::optional<std::string> rw_url, rw_flush, rw_timeout, rw_min_backoff, rw_max_backoff;
  std::optional<uint64_t> rw_max_samples, rw_max_buffered;
  std::vector<std::string> rw_labels, rw_headers;
  app.add_option("--remote-write-url", rw_url,
                 "Forward final buckets by Prometheus remote-write to this URL (default: off)");
  app.add_option(
         "--remote-write-label", rw_labels,
         "name=value added to every forwarded series; repeatable (default instance=<hostname>)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--remote-write-header", rw_headers,
                 "\"Name: value\" sent with every request (e.g. X-Scope-OrgID); repeatable")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--remote-write-max-samples", rw_max_samples,
                 "Samples per remote-write request (default 2000)");
  app.add_option("--remote-write-flush-interval", rw_flush,
                 "Send a smaller request after this long (default 1s)");
  app.add_option("--remote-write-max-buffered", rw_max_buffered,
                 "Samples kept while the receiver is away; then the oldest go (default 500000)");
  app.add_option("--remote-write-timeout", rw_timeout, "Per request (default 10s)");
  app.add_option("--remote-write-min-backoff", rw_min_backoff,
                 "First retry delay, doubling (default 100ms)");
  app.add_option("--remote-write-max-backoff", rw_max_backoff, "Longest retry delay (default 5s)");
  CLI11_PARSE(app, argc, argv);

  CollectorConfig cfg;
  if (!check_config.empty()) {
    if (!config_path.empty() && config_path != check_config) {
      std::cerr << "tally-collector: --check-config and --config name different files\n";
      return 2;
    }
    config_path = check_config;
  }
  if (!config_path.empty()) {
    auto loaded = load_config_file(config_path, cfg);
    if (!loaded) {
      std::cerr << "tally-collector: " << loaded.status().message() << "\n";
      return 2;
    }
    cfg = *loaded;
    cfg.security.config_file = config_path;  // SIGHUP reads keys and tokens from it again
  }
  // The flags over what the file says; a reload applies them again over the file it reads.
  auto apply_flags = [&](CollectorConfig& c) -> Status {
    if (data_dir) c.data_dir = *data_dir;
    if (shards) c.shards = *shards;
    if (ingest) c.ingest = *ingest;
    if (http) c.http = *http;
    if (live) c.live = *live;
    if (statsd) c.statsd = *statsd;
    if (statsd_unix) c.statsd_unix = *statsd_unix;
    if (statsd_dialect) c.statsd_dialect = *statsd_dialect;
    if (retention) c.retention = *retention;
    if (max_batch_bytes) c.max_batch_bytes = *max_batch_bytes;
    if (wal_segment_bytes) c.wal_segment_bytes = *wal_segment_bytes;
    if (max_queued_bytes) c.max_queued_bytes = *max_queued_bytes;
    for (auto [text, field, name] :
         {std::tuple{&debug_apply_delay, &c.debug_apply_delay_us, "--debug-apply-delay"},
          {&debug_def_delay, &c.debug_def_delay_us, "--debug-def-delay"},
          {&debug_backup_pause, &c.debug_backup_pause_us, "--debug-backup-pause"}}) {
      if (!*text) continue;
      auto d = parse_duration_ms(**text);
      if (!d) {
        return Status::invalid_argument(std::string(name) + ": " + d.status().message());
      }
      *field = *d * 1000;
    }
    if (log_level) c.log_level = *log_level;
    if (log_file) c.log_file = *log_file;
    if (log_max_bytes) c.log_max_bytes = *log_max_bytes;
    if (log_max_files) c.log_max_files = *log_max_files;
    if (ready_file) c.ready_file = *ready_file;
    if (fsync) c.fsync = *fsync;
    if (no_self_metrics) c.self_metrics = false;
    c.salvage_wal = salvage_wal;
    for (auto [text, field, name] : {std::tuple{&lateness, &c.lateness_s, "--lateness"},
                                     {&max_future, &c.max_future_s, "--max-future"},
                                     {&checkpoint, &c.checkpoint_s, "--checkpoint"}}) {
      if (!*text) continue;
      auto d = parse_duration(**text);
      if (!d) {
        return Status::invalid_argument(std::string(name) + ": " + d.status().message());
      }
      *field = *d;
    }
    if (rw_url) c.remote_write.url = *rw_url;
    if (rw_max_samples) c.remote_write.max_samples_per_request = *rw_max_samples;
    if (rw_max_buffered) c.remote_write.max_buffered_samples = *rw_max_buffered;
    if (debug_rw_since) c.remote_write.debug_floor_ms = *debug_rw_since * 1000;
    for (const auto& l : rw_labels) {
      if (auto s = c.remote_write.set_label(l); !s) {
        return Status::invalid_argument("--remote-write-label: " + s.message());
      }
    }
    for (const auto& h : rw_headers) {
      if (auto s = c.remote_write.add_header(h); !s) {
        return Status::invalid_argument("--remote-write-header: " + s.message());
      }
    }
    for (auto [text, field, name] :
         {std::tuple{&rw_flush, &c.remote_write.flush_interval_ms, "--remote-write-flush-interval"},
          {&rw_timeout, &c.remote_write.timeout_ms, "--remote-write-timeout"},
          {&rw_min_backoff, &c.remote_write.min_backoff_ms, "--remote-write-min-backoff"},
          {&rw_max_backoff, &c.remote_write.max_backoff_ms, "--remote-write-max-backoff"}}) {
      if (!*text) continue;
      auto d = parse_duration_ms(**text);
      if (!d) {
        return Status::invalid_argument(std::string(name) + ": " + d.status().message());
      }
      *field = *d;
    }
    for (const auto& kv : limits) {
      const size_t eq = kv.find('=');
      auto set = eq == std::string::npos
                     ? Result<bool>(Status::invalid_argument("'" + kv + "' is not key=value"))
                     : set_limit(c.limits, std::string_view(kv).substr(0, eq),
                                 std::string_view(kv).substr(eq + 1));
      if (!set || !*set) {
        return Status::invalid_argument(
            "--limit: " +
            (set ? "unknown limit '" + kv.substr(0, eq) + "'" : set.status().message()));
      }
    }
    return Status::ok();
  };
  if (auto s = apply_flags(cfg); !s) {
    std::cerr << "tally-collector: " << s.message() << "\n";
    return 2;
  }
  if (auto s = cfg.validate(); !s) {
    std::cerr << "tally-collector: " << s.message() << "\n";
    return 2;
  }
  if (!check_config.empty()) {
    std::cout << check_config << ": valid\n";
    return 0;
  }
  if (print_config) {
    std::cout << config_to_toml(cfg);
    return 0;
  }
  if (auto s = setup_logging(cfg.log_level, cfg.log_file, cfg.log_max_bytes, cfg.log_max_files);
      !s) {
    std::cerr << "tally-collector: " << s.message() << "\n";
    return 2;
  }

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);  // not a stop: reload the configuration (Server::reload_auth)
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A file-size limit (RLIMIT_FSIZE) must surface as a write error (EFBIG), handled like a full
  // disk.
  std::signal(SIGXFSZ, SIG_IGN);

  auto server = Server::create(cfg, SystemClock::instance());
  if (!server) {
    spdlog::critical("event=start_failed error=\"{}\"", server.status().to_string());
    return 1;
  }
  if (!config_path.empty())
    (*server)->set_config_loader([&apply_flags, config_path]() -> Result<CollectorConfig> {
      auto loaded = load_config_file(config_path, CollectorConfig{});
      if (!loaded) return loaded.status();
      CollectorConfig c = std::move(*loaded);
      c.security.config_file = config_path;
      if (auto s = apply_flags(c); !s) return s;
      if (auto s = c.validate(); !s) return s;
      return c;
    });
  auto bound = (*server)->start();
  if (!bound) {
    spdlog::critical("event=start_failed error=\"{}\"", bound.status().to_string());
    return 1;
  }
  spdlog::info("event=listening ingest={} http={} live={} statsd={} statsd_port={}", bound->ingest,
               bound->http_port, bound->live, cfg.statsd, bound->statsd_port);
  if (!cfg.ready_file.empty()) {
    const std::string tmp = cfg.ready_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << "{\"ingest\":\"" << bound->ingest << "\",\"http_port\":" << bound->http_port
          << ",\"live\":\"" << bound->live << "\",\"statsd_port\":" << bound->statsd_port
          << ",\"pid\":" << getpid() << "}\n";
    }
    std::error_code ec;
    std::filesystem::rename(tmp, cfg.ready_file, ec);
    if (ec)
      spdlog::warn("event=ready_file_failed path={} error=\"{}\"", cfg.ready_file, ec.message());
  }

  // The main thread waits for signals, and every few seconds gives a grown free heap back.
  int sig = 0;
  while (true) {
    const timespec every{5, 0};
    sig = sigtimedwait(&stop_signals, nullptr, &every);
    if (sig < 0) {
      if (errno != EAGAIN && errno != EINTR) break;
      (void)tally::collector::trim_heap((*server)->metrics());
      continue;
    }
    if (sig != SIGHUP) break;
    if (auto r = (*server)->reload_auth(); !r)
      spdlog::error("event=reload_failed error=\"{}\" note=\"the previous keys and tokens stay\"",
                    r.status().to_string());
  }
  spdlog::info("event=stopping signal={}", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->stop();
  return 0;
}
