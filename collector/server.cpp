#include "server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "ingest/statsd_record.h"
#include "storage/annotation_format.h"
#include "storage/backup_writer.h"
#include "storage/coverage_format.h"
#include "storage/data_dir.h"
#include "storage/wal_format.h"
#include "tally/common/version.h"

namespace tally::collector {

namespace {

// With a synced log, SQLite commits are synced too (synchronous=FULL): a checkpoint lets the log
// drop its segments, so what it wrote must be on disk first.
bool sync_commits_for(const CollectorConfig& cfg) {
  auto policy = parse_fsync_policy(cfg.fsync);
  return policy && policy->first != FsyncPolicy::kNever;
}

}  // namespace

// Opening is a sequence of named steps; the first that fails ends it, and its Status is what
// create() returns (the half-built Server is destroyed: nothing was started yet).
Result<std::unique_ptr<Server>> Server::create(CollectorConfig config, const Clock& clock) {
  if (auto s = config.validate(); !s) return s;
  std::unique_ptr<Server> srv(new Server(std::move(config), clock));
  srv->limits_ = std::make_unique<LiveLimits>(LiveLimitValues::from(srv->config_));
  srv->started_max_batch_bytes_ = srv->config_.max_batch_bytes;
  DataDirLayout layout;
  uint64_t max_lsn = 0;
  if (auto a = srv->load_auth(); !a) return a;
  ZmqIngestOptions io = srv->ingest_options();
  Status s = srv->open_storage(&layout, &max_lsn);
  if (s) s = srv->migrate_retention(layout);
  if (s) s = srv->open_forwarding();
  if (s) s = srv->open_annotations();
  if (s) s = srv->open_coverage(layout);
  if (s) s = srv->replay_log(io.limits, max_lsn);
  if (s) s = srv->finish_migration();
  if (!s) return s;
  srv->wire_ingest(io);
  srv->wire_query();
  const auto& cfg = srv->config_;
  spdlog::info("event=opened data_dir={} shards={} series={} retention={} created={}", cfg.data_dir,
               layout.shards, srv->catalog_->size(), cfg.retention, layout.created);
  return srv;
}

// CURVE: the collector's own key pair and the client keys the ZAP handler lets in. Without a key
// file ZeroMQ stays plain (validate() allowed that only on loopback or with allow_insecure).
Status Server::load_auth() {
  const auto& sec = config_.security;
  if (!sec.curve()) return Status::ok();
  auto pair = read_curve_key_file(sec.curve_secret_key_file);
  if (!pair) return Status::invalid_argument("curve_secret_key_file: " + pair.status().message());
  if (pair->secret_key.empty())
    return Status::invalid_argument("curve_secret_key_file " + sec.curve_secret_key_file +
                                    " holds no secret-key (give the .key_secret file)");
  curve_ = *pair;
  auto keys = load_allowed_keys(sec);
  if (!keys) return keys.status();
  zap_ = std::make_unique<ZapHandler>(zmq_, metrics_, clock_);
  if (keys->empty())
    spdlog::warn(
        "event=curve_no_clients note=\"no client key is allowed yet: every SDK and "
        "subscriber is refused until curve_allowed_keys or curve_allowed_keys_dir names "
        "one (then SIGHUP)\"");
  spdlog::info("event=curve_enabled server_key={} allowed_keys={}", curve_.public_key,
               keys->size());
  zap_->set_allowed(std::move(*keys));
  return Status::ok();
}

Result<std::string> Server::reload_auth() {
  MutexLock lock(reload_mu_);
  SecurityConfig sec = config_.security;
  std::optional<CollectorConfig> file_cfg;
  if (config_loader_ || !sec.config_file.empty()) {
    auto loaded =
        config_loader_ ? config_loader_() : load_config_file(sec.config_file, CollectorConfig{});
    if (!loaded) return loaded.status();
    if (auto v = loaded->validate(); !v) return v;
    const std::string file = sec.config_file;
    sec = loaded->security;
    sec.config_file = file;
    file_cfg = std::move(*loaded);
  }
  if (auto v = validate_security(sec, {config_.ingest, config_.live, config_.http, config_.statsd});
      !v)
    return v;
  std::string what;
  if (zap_) {
    auto keys = load_allowed_keys(sec);
    if (!keys) return keys.status();
    what = std::to_string(keys->size()) + " CURVE client keys";
    zap_->set_allowed(std::move(*keys));
  } else if (!sec.curve_allowed_keys.empty() || !sec.curve_allowed_keys_dir.empty()) {
    what = "CURVE keys not applied (CURVE is set at start: restart to enable it); ";
  }
  if (http_) http_->set_tokens(sec.http_read_tokens, sec.http_admin_tokens);
  what += (what.empty() || what.back() == ' ' ? "" : ", ") +
          std::to_string(sec.http_read_tokens.size()) + " read tokens, " +
          std::to_string(sec.http_admin_tokens.size()) + " admin tokens";
  config_.security.curve_allowed_keys = sec.curve_allowed_keys;
  config_.security.curve_allowed_keys_dir = sec.curve_allowed_keys_dir;
  config_.security.http_read_tokens = sec.http_read_tokens;
  config_.security.http_admin_tokens = sec.http_admin_tokens;
  if (file_cfg) what += reload_settings(*file_cfg);
  spdlog::info("event=reloaded loaded=\"{}\"", what);
  return what;
}

namespace {

// Why a setting the reload cannot apply waits for a restart (event=reload_needs_restart).
std::string restart_reason(const std::string& key) {
  static const std::map<std::string, std::string> kReasons = {
      {"data_dir", "the data directory is opened at start"},
      {"shards", "fixed when the data directory was created"},
      {"ingest", "a listener binds its address at start"},
      {"http", "a listener binds its address at start"},
      {"live", "a listener binds its address at start"},
      {"statsd", "a listener binds its address at start"},
      {"statsd_unix", "a listener binds its address at start"},
      {"statsd_dialect", "a StatsD socket's dialect is set when it opens"},
      {"statsd_unix_dialect", "a StatsD socket's dialect is set when it opens"},
      {"lateness", "the shards keep their open buckets by it from start"},
      {"checkpoint", "the shards' checkpoint timer is set at start"},
      {"fsync", "the write-ahead log is opened at start"},
      {"wal_segment_bytes", "the write-ahead log is opened at start"},
      {"self_metrics", "the collector's own reporter is created at start"},
      {"log_file", "the log file is opened at start"},
      {"log_max_bytes", "the log file is opened at start"},
      {"log_max_files", "the log file is opened at start"},
      {"http_max_connections", "the HTTP server sizes its connection table at start"},
      {"promql_max_length", "the PromQL routes are set up at start"},
      {"promql_max_depth", "the PromQL routes are set up at start"},
      {"curve_secret_key_file", "CURVE is turned on or off, with its key pair, at start"},
      {"http_tls_cert_file", "HTTPS is set up at start"},
      {"http_tls_key_file", "HTTPS is set up at start"},
      {"http_allowed_hosts", "the HTTP guard is set up at start"},
      {"http_allowed_origins", "the HTTP guard is set up at start"},
      {"statsd_allowed_sources", "the StatsD sockets read their allowed sources at start"},
  };
  if (auto it = kReasons.find(key); it != kReasons.end()) return it->second;
  if (key.ends_with("allow_insecure")) return "a listener's security is set when it binds";
  return "read only at start";
}

// Every setting as `key = value` lines (config_to_toml), by key.
std::map<std::string, std::string> settings_of(const CollectorConfig& c) {
  std::map<std::string, std::string> out;
  std::istringstream in(config_to_toml(c));
  for (std::string line; std::getline(in, line);) {
    const size_t eq = line.find(" = ");
    if (eq != std::string::npos && !line.starts_with("#")) out[line.substr(0, eq)] = line;
  }
  return out;
}

}  // namespace

// The rest of a reload: the log level, the budgets, retention and remote-write change live; every
// other setting the file now says differently from the running collector is named in the log
// with why it waits for the next start.
std::string Server::reload_settings(const CollectorConfig& file) {
  std::string what;
  if (file.log_level != config_.log_level) {
    spdlog::set_level(spdlog::level::from_str(file.log_level));
    spdlog::info("event=log_level_changed from={} to={}", config_.log_level, file.log_level);
    config_.log_level = file.log_level;
    what += ", log level " + file.log_level;
  }
  what += reload_limits(file);
  what += reload_retention(file);
  what += reload_remote_write(file);
  static const std::set<std::string> kLive = {"log_level", "curve_allowed_keys",
                                              "curve_allowed_keys_dir", "http_read_tokens",
                                              "http_admin_tokens"};
  const auto running = settings_of(config_), in_file = settings_of(file);
  size_t later = 0;
  for (const auto& [key, line] : in_file) {
    // Retention and remote-write said above what they did or why they wait.
    if (kLive.count(key) || key == "retention" || key.starts_with("remote_write_")) continue;
    auto it = running.find(key);
    if (it != running.end() && it->second == line) continue;
    ++later;
    spdlog::warn(
        "event=reload_needs_restart setting={} reason=\"{}\" note=\"the file changed it; it "
        "takes effect when the collector starts again\"",
        key, restart_reason(key));
  }
  if (later) what += ", settings that need a restart: " + std::to_string(later) + " (logged)";
  return what;
}

// InputLimits and the byte budgets: every component reads them from limits_, so storing them is
// applying them (the next batch, query, new series or StatsD packet sees them).
std::string Server::reload_limits(const CollectorConfig& file) {
  const auto now = limits_->get();
  LiveLimitValues next = *now;
  next.input = file.limits;
  // The HTTP server sizes its connection table at start: a change waits (reload_settings logs it).
  next.input.http_max_connections = now->input.http_max_connections;
  next.max_batch_bytes = file.max_batch_bytes;
  next.max_queued_bytes = file.max_queued_bytes;
  next.max_future_s = file.max_future_s;
  size_t changed = 0;
  auto log_change = [&](const std::string& limit, const std::string& from, const std::string& to) {
    if (from == to) return;
    spdlog::info("event=limit_changed limit={} from={} to={}", limit, from, to);
    ++changed;
  };
  const auto before = limits_as_toml(now->input), after = limits_as_toml(next.input);
  for (size_t i = 0; i < before.size(); ++i) {
    auto unquote = [](std::string v) {
      return v.size() >= 2 && v.front() == '"' ? v.substr(1, v.size() - 2) : v;
    };
    log_change(before[i].first, unquote(before[i].second), unquote(after[i].second));
  }
  log_change("max_batch_bytes", std::to_string(now->max_batch_bytes),
             std::to_string(next.max_batch_bytes));
  log_change("max_queued_bytes", std::to_string(now->max_queued_bytes),
             std::to_string(next.max_queued_bytes));
  log_change("max_future", format_duration(now->max_future_s), format_duration(next.max_future_s));
  if (!changed) return "";
  if (next.max_batch_bytes > started_max_batch_bytes_)
    spdlog::warn(
        "event=reload_needs_restart setting=max_batch_bytes part=socket reason=\"ZeroMQ's largest "
        "message was set to {} bytes when the ingest socket opened: a frame above it is cut by "
        "ZeroMQ until a restart; the batch check uses the new value up to it\"",
        started_max_batch_bytes_ + 1024);
  config_.limits = next.input;
  limits_->set(std::move(next));
  config_.max_batch_bytes = file.max_batch_bytes;
  config_.max_queued_bytes = file.max_queued_bytes;
  config_.max_future_s = file.max_future_s;
  return ", limits changed: " + std::to_string(changed);
}

// How long each resolution is kept changes live (queries at once, stored buckets at the next
// retention sweep, which a change brings forward to the shards' next tick); adding or removing a
// resolution needs the start-up path (migrate_retention), which creates, fills or drops tables.
std::string Server::reload_retention(const CollectorConfig& file) {
  if (file.retention == config_.retention) return "";
  const auto& now = config_.resolutions;
  const auto& next = file.resolutions;
  const bool same_steps =
      now.size() == next.size() &&
      std::equal(now.begin(), now.end(), next.begin(),
                 [](const Resolution& a, const Resolution& b) { return a.step_s == b.step_s; });
  if (!same_steps) {
    spdlog::warn(
        "event=reload_needs_restart setting=retention from={} to={} reason=\"adding or removing "
        "a resolution creates, fills or drops its stored tables, which only a start does\"",
        config_.retention, file.retention);
    return ", settings that need a restart: retention (resolutions added or removed)";
  }
  for (size_t r = 0; r < now.size(); ++r) {
    if (now[r].retention_s == next[r].retention_s) continue;
    spdlog::info("event=retention_changed resolution={} from={} to={} note=\"{}\"",
                 format_duration(now[r].step_s), format_duration(now[r].retention_s),
                 format_duration(next[r].retention_s),
                 next[r].retention_s < now[r].retention_s
                     ? "older buckets are no longer read and are deleted at the next sweep"
                     : "buckets are kept longer from now on");
  }
  LiveLimitValues v = *limits_->get();
  v.resolutions = next;
  limits_->set(std::move(v));
  config_.retention = file.retention;
  config_.resolutions = next;
  // The next start must not take this for a change to migrate.
  if (auto s = record_retention(layout_, file.retention); !s)
    spdlog::warn("event=retention_record_failed error=\"{}\"", s.to_string());
  else
    layout_.retention = file.retention;
  for (auto& shard : shards_) shard->sweep_retention_soon();
  return ", retention " + file.retention;
}

// Remote-write: turned on, off, or given new settings. What the running forwarder has not sent yet
// stays queued for the new settings (RemoteWriter::reconfigure); a forwarder turned off sends what
// it holds within its drain timeout.
std::string Server::reload_remote_write(const CollectorConfig& file) {
  const RemoteWriteOptions& want = file.remote_write;
  auto running = forwarder();
  const std::string from = running ? config_.remote_write.url : "off";
  const std::string to = want.enabled() ? want.url : "off";
  std::string changed;
  if (!running && !want.enabled()) {
    config_.remote_write = want;
    return "";
  }
  if (!running) {
    auto rw = RemoteWriter::create(want, shards_.size(), metrics_, clock_);
    if (!rw) {
      spdlog::error("event=remote_write_reconfigure_failed error=\"{}\"", rw.status().to_string());
      return ", remote-write not started: " + rw.status().message();
    }
    std::shared_ptr<RemoteWriter> w(std::move(*rw));
    w->start();
    set_forwarder(w);
    changed = "on";
  } else if (!want.enabled()) {
    set_forwarder(nullptr);
    running->request_stop();  // sends what it holds, within its drain timeout
    retired_writers_.push_back(std::move(running));
    changed = "off";
  } else {
    auto r = running->reconfigure(want);
    if (!r) {
      spdlog::error("event=remote_write_reconfigure_failed error=\"{}\"", r.status().to_string());
      return ", remote-write unchanged: " + r.status().message();
    }
    changed = *r;
  }
  config_.remote_write = want;
  if (changed.empty()) return "";
  spdlog::info("event=remote_write_reconfigured from_url={} to_url={} changed={}", from, to,
               changed);
  return ", remote-write " + changed;
}

// The data directory (it fixes the shard count when it is created), then one aggregation worker
// per shard, each owning its series and its SQLite file; the catalog is rebuilt from them.
Status Server::open_storage(DataDirLayout* layout, uint64_t* max_lsn) {
  const auto& cfg = config_;
  uint32_t wanted = cfg.shards ? cfg.shards : std::max(1u, std::thread::hardware_concurrency());
  auto dir = open_data_dir(cfg.data_dir, wanted);
  if (!dir) return dir.status();
  *layout = *dir;
  layout_ = *dir;
  if (auto s = begin_migration(); !s) return s;
  if (!layout->created && cfg.shards && cfg.shards != layout->shards)
    spdlog::warn(
        "event=shards_fixed configured={} stored={} note=\"the data directory keeps the count it "
        "was created with\"",
        cfg.shards, layout->shards);
  catalog_ = std::make_unique<SeriesCatalog>(layout->shards);
  cardinality_ = std::make_unique<CardinalityGuard>(*catalog_, *limits_, metrics_);
  live_ = std::make_unique<LivePublisher>(zmq_, metrics_);

  // Aggregation: one worker per shard, each owning its series and its SQLite file.
  std::vector<Shard*> raw;
  const bool sync_commits = sync_commits_for(cfg);
  // A shard file that cannot be read stops start-up with its name (never a silent empty shard).
  auto unreadable = [](const std::string& path, const Status& s) {
    std::string msg = "shard file " + path + " cannot be read: " + s.message() +
                      " (restore it from a backup, or move it aside to start that shard empty; "
                      "docs/CORRECTNESS.md)";
    return s.code() == StatusCode::kCorruption ? Status::corruption(std::move(msg))
                                               : Status::io_error(std::move(msg));
  };
  for (uint32_t i = 0; i < layout->shards; ++i) {
    ShardStoreOptions store_opts;
    store_opts.sync_commits = sync_commits;
    auto store = ShardStore::open(shard_path(*layout, i), cfg.resolutions, store_opts);
    if (!store) return unreadable(shard_path(*layout, i), store.status());
    auto series = (*store)->load_series();
    if (!series) return unreadable(shard_path(*layout, i), series.status());
    auto lsn = (*store)->get_meta("applied_lsn", 0);
    if (!lsn) return unreadable(shard_path(*layout, i), lsn.status());
    *max_lsn = std::max(*max_lsn, static_cast<uint64_t>(*lsn));
    ShardOptions so;
    so.index = i;
    so.resolutions = cfg.resolutions;
    so.lateness_s = cfg.lateness_s;
    so.checkpoint_every_s = cfg.checkpoint_s;
    so.debug_apply_delay_us = cfg.debug_apply_delay_us;
    // Series that expired are in storage only: their ids stay taken, their metrics known.
    auto max_id = (*store)->max_series_id();
    if (!max_id) return unreadable(shard_path(*layout, i), max_id.status());
    catalog_->reserve_ids(*max_id);
    auto expired = (*store)->expired_metrics();
    if (!expired) return unreadable(shard_path(*layout, i), expired.status());
    for (const auto& [metric, kind] : *expired) catalog_->restore_stored_metric(metric, kind);
    so.live_limits = limits_.get();
    auto shard = std::make_unique<Shard>(so, std::move(*store), clock_, live_.get(), metrics_);
    shard->set_catalog(catalog_.get());
    for (auto& info : *series) {
      if (catalog_->shard_of(info.hash) != i)
        return Status::corruption(shard_path(*layout, i) + ": series " + std::to_string(info.id) +
                                  " belongs to another shard");
      info.shard = i;
      if (auto s = catalog_->restore(info); !s) return s;
      shard->restore_series(catalog_->by_id(info.id));
    }
    raw.push_back(shard.get());
    shards_.push_back(std::move(shard));
  }
  router_ = std::make_unique<Router>(raw);
  // A series that comes back after it expired gets its stored id (catalog.h): looked up in its
  // shard's series table by the thread that meets it again (ingest, StatsD), on a pooled reader.
  catalog_->set_stored_lookup([this](uint32_t shard, std::string_view metric, const Tags& tags,
                                     Kind kind) -> std::optional<uint64_t> {
    ShardStore& store = shards_[shard]->store();
    auto reader = store.acquire_reader();
    if (!reader) {
      spdlog::warn("event=stored_series_lookup_failed shard={} error=\"{}\"", shard,
                   reader.status().to_string());
      return std::nullopt;
    }
    auto id = (*reader)->find_expired(metric, kind, tags);
    store.release_reader(std::move(*reader));
    if (!id) {
      spdlog::warn("event=stored_series_lookup_failed shard={} error=\"{}\"", shard,
                   id.status().to_string());
      return std::nullopt;
    }
    return *id;
  });
  return Status::ok();
}

// Start-up: a producer's saved ref to a series that expired brings that series back into memory
// (the write-ahead log may still hold batches that use the ref).
const SeriesInfo* Server::revive_stored(uint64_t id) {
  for (size_t i = 0; i < shards_.size(); ++i) {
    auto def = shards_[i]->store().load_series_by_id(id);
    if (!def || !*def) continue;
    (*def)->shard = static_cast<uint32_t>(i);
    if (catalog_->shard_of((*def)->hash) != i || !catalog_->restore(**def)) return nullptr;
    const SeriesInfo* info = catalog_->by_id(id);
    shards_[i]->restore_series(info);
    return info;
  }
  return nullptr;
}

// A changed retention list applies to the existing data now, and the log says what it does.
Status Server::migrate_retention(const DataDirLayout& dir) {
  const auto& cfg = config_;
  if (!dir.created && !dir.retention.empty() && dir.retention != cfg.retention) {
    auto old = parse_retention(dir.retention);
    if (!old)
      return Status::corruption(cfg.data_dir + "/TALLY: bad retention: " + old.status().message());
    for (const auto& o : *old) {
      auto it = std::find_if(cfg.resolutions.begin(), cfg.resolutions.end(),
                             [&](const Resolution& r) { return r.step_s == o.step_s; });
      if (it == cfg.resolutions.end()) {
        spdlog::warn(
            "event=retention_change resolution={} old={} action=drop note=\"no longer configured: "
            "its stored "
            "buckets are deleted now\"",
            format_duration(o.step_s), format_duration(o.retention_s));
        uint64_t freed = 0;
        for (auto& shard : shards_) {
          uint64_t bytes = 0;
          if (auto st = shard->store().drop_step(o.step_s, &bytes); !st) return st;
          freed += bytes;
        }
        spdlog::info("event=retention_change resolution={} action=dropped freed_bytes={}",
                     format_duration(o.step_s), freed);
      } else if (it->retention_s < o.retention_s) {
        spdlog::warn(
            "event=retention_change resolution={} old={} new={} action=drop_older note=\"buckets "
            "older than {} "
            "are deleted now\"",
            format_duration(o.step_s), format_duration(o.retention_s),
            format_duration(it->retention_s), format_duration(it->retention_s));
      } else if (it->retention_s > o.retention_s) {
        spdlog::info("event=retention_change resolution={} old={} new={} action=keep_longer",
                     format_duration(o.step_s), format_duration(o.retention_s),
                     format_duration(it->retention_s));
      }
    }
    for (size_t r = 0; r < cfg.resolutions.size(); ++r) {
      const int64_t step = cfg.resolutions[r].step_s;
      if (std::any_of(old->begin(), old->end(),
                      [&](const Resolution& o) { return o.step_s == step; }))
        continue;
      // New resolution: fill it from the coarsest finer resolution that existed before.
      std::optional<size_t> src;
      for (size_t f = 0; f < r; ++f) {
        if (std::any_of(old->begin(), old->end(),
                        [&](const Resolution& o) { return o.step_s == cfg.resolutions[f].step_s; }))
          src = f;
      }
      uint64_t written = 0;
      if (src) {
        for (auto& shard : shards_) {
          auto n = shard->backfill(r, *src);
          if (!n) return n.status();
          written += *n;
        }
      }
      spdlog::info(
          "event=retention_change resolution={} action=added filled_from={} buckets_written={}",
          format_duration(step),
          src ? format_duration(cfg.resolutions[*src].step_s) : std::string("none"), written);
    }
  }
  if (dir.retention != cfg.retention) {
    if (auto s = record_retention(layout_, cfg.retention); !s) return s;
    layout_.retention = cfg.retention;
  }
  return Status::ok();
}

// A directory an older collector wrote (docs/format/storage.md, writer_revision): the log says so
// before anything is opened, and again with what changed once it is open and its log replayed.
Status Server::begin_migration() {
  if (layout_.created || layout_.writer_revision >= kWriterRevision) return Status::ok();
  spdlog::info("event=migration_started data_dir={} from={} from_version={} to={} to_version={}",
               layout_.path, layout_.writer_revision,
               layout_.writer_version.empty() ? "0.1.0" : layout_.writer_version, kWriterRevision,
               kVersion);
  return Status::ok();
}

Status Server::finish_migration() {
  if (layout_.created || layout_.writer_revision >= kWriterRevision) return Status::ok();
  size_t converted = 0;
  for (auto& shard : shards_) converted += shard->store().converted_rows() ? 1 : 0;
  const int from = layout_.writer_revision;
  layout_.writer_revision = kWriterRevision;
  layout_.writer_version = kVersion;
  if (auto s = record_layout(layout_); !s) return s;
  // Format 1 is read as it is: the log's records of type 1 replay as before and new StatsD
  // records are of type 2; only shard files still in plain rows are converted (to chunks).
  spdlog::info("event=migration_done data_dir={} from={} to={} changes=\"{}\"", layout_.path, from,
               kWriterRevision,
               converted ? std::to_string(converted) + " shard files converted from rows to chunks"
                         : std::string("none needed"));
  return Status::ok();
}

// Forwarding: every final or corrected 1 s bucket goes by remote-write to a distributed engine.
// Each shard hands its final buckets to whichever forwarder is configured at the time (a reload
// may turn it on, off, or point it elsewhere).
Status Server::open_forwarding() {
  const auto& cfg = config_;
  if (cfg.remote_write.enabled()) {
    auto rw = RemoteWriter::create(cfg.remote_write, shards_.size(), metrics_, clock_);
    if (!rw) return rw.status();
    set_forwarder(std::shared_ptr<RemoteWriter>(std::move(*rw)));
  }
  for (size_t i = 0; i < shards_.size(); ++i)
    shards_[i]->set_final_sink(
        [this, i](const std::vector<wire::LiveUpdate>& updates) {
          if (auto rw = forwarder()) rw->deliver(i, updates);
        },
        [this] { return forwarder() != nullptr; });
  return Status::ok();
}

std::shared_ptr<RemoteWriter> Server::forwarder() const {
  MutexLock lock(rw_mu_);
  return remote_write_;
}

void Server::set_forwarder(std::shared_ptr<RemoteWriter> rw) {
  MutexLock lock(rw_mu_);
  remote_write_.swap(rw);
}

ZmqIngestOptions Server::ingest_options() const {
  const auto& cfg = config_;
  ZmqIngestOptions io;
  io.endpoint = cfg.ingest;
  io.max_batch_bytes = cfg.max_batch_bytes;
  io.max_queued_bytes = cfg.max_queued_bytes;
  io.debug_def_delay_us = cfg.debug_def_delay_us;
  io.limits.max_future_s = cfg.max_future_s;
  io.limits.max_age_s = cfg.resolutions.back().retention_s;
  io.limits.max_points = cfg.limits.batch_max_points;
  io.limits.max_defs = cfg.limits.batch_max_defs;
  io.limits.max_sketch_bins = cfg.limits.sketch_max_bins;
  io.limits.max_sketch_key_span = cfg.limits.sketch_max_key_span;
  io.producers_max = static_cast<size_t>(cfg.limits.producers_max);
  io.producer_idle_s = std::max<int64_t>(1, cfg.limits.producer_idle_ms / 1000);
  io.producer_min_idle_s = std::min<int64_t>(io.producer_idle_s, 2 * cfg.checkpoint_s + 60);
  io.series_idle_expiry_s = cfg.limits.series_idle_expiry_ms / 1000;
  io.live_limits = limits_.get();
  io.curve_secret_key = curve_.secret_key;
  io.watch_handshakes = [this](zmq::socket_t& s) {
    return zap_ ? zap_->watch(s, "ingest") : Status::ok();
  };
  return io;
}

// Annotations live in their own file beside the shards, synced like them (a write is answered
// once committed), bounded by annotations_max and the longest retention (live_limits.h).
Status Server::open_annotations() {
  AnnotationStoreOptions o;
  o.path = (std::filesystem::path(config_.data_dir) / annotation_format::kFileName).string();
  o.sync_commits = sync_commits_for(config_);
  o.limits = limits_.get();
  auto store = AnnotationStore::open(std::move(o), clock_, metrics_);
  if (!store) return store.status();  // its message names the file
  annotations_ = std::move(*store);
  if (auto s = sync_directory(config_.data_dir); !s) return s;
  return Status::ok();
}

// When this collector ran (docs/format/coverage.md). A data directory an older collector wrote
// has no record: its history counts as covered from its earliest stored bucket (at any
// resolution) to now, so an upgrade does not turn it into gaps.
Status Server::open_coverage(const DataDirLayout& layout) {
  CoverageStoreOptions o;
  o.path = (std::filesystem::path(config_.data_dir) / coverage_format::kFileName).string();
  o.sync_commits = sync_commits_for(config_);
  o.limits = limits_.get();
  bool existed = false;
  auto store = CoverageStore::open(std::move(o), clock_, metrics_, &existed);
  if (!store) return store.status();
  coverage_ = std::move(*store);
  if (auto s = sync_directory(config_.data_dir); !s) return s;
  if (existed || layout.created) return Status::ok();
  // Per resolution (finest first), the earliest stored bucket over the shards.
  const size_t nres = config_.resolutions.size();
  std::vector<std::optional<int64_t>> first(nres);
  for (auto& shard : shards_) {
    ShardStore& st = shard->store();
    auto reader = st.acquire_reader();
    if (!reader) return reader.status();
    Status failed = Status::ok();
    for (size_t r = 0; failed && r < nres; ++r) {
      auto e = (*reader)->earliest(r);
      if (!e)
        failed = e.status();
      else if (*e)
        first[r] = first[r] ? std::min(*first[r], **e) : **e;
    }
    st.release_reader(std::move(*reader));
    if (!failed) return failed;
  }
  // The earliest at any resolution; a finer resolution that holds data inside that bucket tells
  // more exactly where in it the data begins (an hour's rollup starts on the hour).
  std::optional<int64_t> earliest;
  int64_t earliest_step = 1;
  for (size_t r = 0; r < nres; ++r)
    if (first[r] && (!earliest || *first[r] < *earliest)) {
      earliest = first[r];
      earliest_step = config_.resolutions[r].step_s;
    }
  for (size_t r = 0; earliest && r < nres; ++r)
    if (first[r] && *first[r] >= *earliest && *first[r] < *earliest + earliest_step) {
      earliest = first[r];
      break;
    }
  const int64_t now_ms = clock_.now_ms();
  spdlog::info("event=coverage_created from_stored_data={} note=\"{}\"", earliest.value_or(0),
               earliest ? "history before this version counts as covered from its earliest bucket"
                        : "nothing stored yet");
  if (!earliest) return Status::ok();
  return coverage_->add_covered(std::min(*earliest * 1000, now_ms), now_ms);
}

// Producers' refs and sequence windows, then the write-ahead log and its replay.
Status Server::replay_log(const IngestLimits& ingest_limits, uint64_t max_lsn) {
  const auto& cfg = config_;
  // What the log holds was accepted under the budgets it was sent under: replay checks meaning,
  // not size (a lowered budget must not drop acknowledged batches).
  IngestLimits limits = ingest_limits;
  limits.max_points = limits.max_defs = INT64_MAX;
  limits.max_sketch_bins = limits.max_sketch_key_span = INT64_MAX;
  limits.rate_limit_new_series = false;
  limits.skip_unknown_refs = true;
  const std::string ingest_db = (std::filesystem::path(cfg.data_dir) / "ingest.sqlite").string();
  auto producers = ProducerTable::open(ingest_db, *catalog_, sync_commits_for(cfg),
                                       [this](uint64_t id) { return revive_stored(id); });
  if (!producers) return Status::io_error(ingest_db + ": " + producers.status().message());
  producers_ = std::move(*producers);

  WalOptions wo;
  wo.dir = (std::filesystem::path(cfg.data_dir) / "wal").string();
  auto policy = parse_fsync_policy(cfg.fsync);
  wo.fsync = policy->first;
  wo.fsync_interval_ms = policy->second;
  wo.salvage = cfg.salvage_wal;
  wo.segment_bytes = cfg.wal_segment_bytes;
  auto wal = Wal::open(wo);
  if (!wal) return wal.status();
  wal_ = std::move(*wal);
  // The entries of files created above (shard files, ingest.sqlite, the wal directory) are only
  // durable once their directory is synced.
  if (auto s = sync_directory(cfg.data_dir); !s) return s;
  // Replay: every logged batch goes through the same decoding; each shard skips the points its
  // stored buckets already hold (their LSN says so), so nothing is lost and nothing is doubled.
  uint64_t replayed = 0, reapplied_points = 0, skipped_unknown = 0;
  Status replay_status;
  uint64_t statsd_records = 0;
  Status rs = wal_->replay_records([&](uint64_t lsn, uint8_t type, std::string_view payload) {
    if (type == wal_format::kTypeStatsd) {
      // One interval of StatsD work: it defines every series it touches.
      std::vector<ShardWork> per_shard;
      uint64_t points = 0;
      if (auto s = decode_statsd_record(payload, *catalog_, &per_shard, &points); !s) {
        spdlog::error("event=wal_record_rejected lsn={} type=statsd reason=\"{}\"", lsn,
                      s.to_string());
        return;
      }
      for (size_t i = 0; i < per_shard.size(); ++i) {
        auto& w = per_shard[i];
        if (w.empty()) continue;
        w.lsn = lsn;
        if (auto s = shards_[i]->replay(w); !s && replay_status) replay_status = s;
      }
      reapplied_points += points;
      ++statsd_records;
      ++replayed;
      return;
    }
    wire::Batch batch;
    if (!batch.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      spdlog::error("event=wal_record_undecodable lsn={}", lsn);
      return;
    }
    DecodedBatch d =
        decode_batch(batch, *producers_, *catalog_, limits, clock_.now_s(), cardinality_.get());
    if (d.code != wire::Ack::OK) {
      spdlog::error("event=wal_record_rejected lsn={} reason=\"{}\"", lsn, d.reason);
      return;
    }
    producers_->mark_seen(batch.producer_id(), batch.seq());
    skipped_unknown += d.skipped_unknown;
    for (size_t i = 0; i < d.per_shard.size(); ++i) {
      auto& w = d.per_shard[i];
      if (w.empty()) continue;
      w.lsn = lsn;
      reapplied_points += w.points();
      if (auto s = shards_[i]->replay(w); !s && replay_status) replay_status = s;
    }
    ++replayed;
  });
  if (!rs) return rs;
  if (!replay_status) return replay_status;
  // New records must follow every LSN the shards have stored, even if the log was emptied.
  wal_->advance_to(max_lsn + 1);
  router_->note_replayed(wal_->next_lsn() - 1);
  if (auto s = producers_->save_sequences(); !s) return s;
  spdlog::info(
      "event=wal_replayed records={} statsd_records={} points_considered={} "
      "points_of_expired_refs={} next_lsn={} log_bytes={}",
      replayed, statsd_records, reapplied_points, skipped_unknown, wal_->next_lsn(), wal_->bytes());
  return Status::ok();
}

// Ingest: the ROUTER socket and StatsD (UDP and a unix datagram socket), and the tick that
// publishes their counters; nothing listens until start().
void Server::wire_ingest(const ZmqIngestOptions& io) {
  const auto& cfg = config_;
  ZmqIngestOptions opts = io;
  opts.cardinality = cardinality_.get();
  ingest_ = std::make_unique<ZmqIngest>(zmq_, opts, *catalog_, *producers_, *router_, *wal_, clock_,
                                        metrics_);
  // StatsD / DogStatsD over UDP and a unix datagram socket.
  // Its intervals reach the shards through the ingest thread, once their log record is durable.
  statsd_router_ =
      std::make_unique<StatsdRouter>(*catalog_, router_->shard_count(), metrics_, io.limits, clock_,
                                     cardinality_.get(), limits_.get());
  ingest_->set_statsd(statsd_router_.get());
  StatsdListenerOptions so;
  so.udp = cfg.statsd;
  so.unix_path = cfg.statsd_unix;
  so.udp_dialect = parse_statsd_dialect(cfg.statsd_dialect).value_or(StatsdDialect::kDogStatsd);
  so.unix_dialect = parse_statsd_dialect(cfg.statsd_unix_dialect.empty() ? cfg.statsd_dialect
                                                                         : cfg.statsd_unix_dialect)
                        .value_or(StatsdDialect::kDogStatsd);
  so.max_age_s = io.limits.max_age_s;
  so.max_future_s = io.limits.max_future_s;
  so.live_limits = limits_.get();
  so.on_thread_failure = [m = &metrics_](const std::string& e) { m->thread_failed("statsd", e); };
  // DogStatsD events become annotations: queued without blocking, written by the store's thread.
  so.event_sink = [store = annotations_.get()](std::vector<StatsdEvent>&& events) {
    for (StatsdEvent& ev : events) {
      Annotation a;
      a.time_ms = ev.time_ms;
      a.title = std::move(ev.title);
      a.text = std::move(ev.text);
      a.tags = std::move(ev.tags);
      a.source = "dogstatsd";
      store->submit(std::move(a));  // a full queue drops it and counts it
    }
  };
  for (const auto& c : cfg.security.statsd_allowed_sources)
    so.allowed_sources.push_back(parse_cidr(c).value());  // validate() parsed each
  statsd_ = std::make_unique<StatsdListener>(
      so, [r = statsd_router_.get()](std::vector<StatsdSample>&& s) { (*r)(std::move(s)); },
      clock_);

  if (cfg.self_metrics)
    reporter_ = std::make_unique<SelfReporter>(*catalog_, *router_, metrics_, clock_);
  ingest_->set_tick([s = this] {
    auto c = s->statsd_->counters();
    s->metrics_.statsd_lines.store(c.lines_ok, std::memory_order_relaxed);
    s->metrics_.statsd_rejected.store(c.lines_rejected_total() + s->statsd_router_->rejected(),
                                      std::memory_order_relaxed);
    for (size_t i = 0; i < kStatsdRejectReasons; ++i) {
      uint64_t n = c.lines_rejected[i];
      if (i == static_cast<size_t>(StatsdReject::kKindConflict)) n += s->statsd_router_->rejected();
      s->metrics_.statsd_rejected_by_reason[i].store(n, std::memory_order_relaxed);
    }
    s->metrics_.statsd_events.store(c.events, std::memory_order_relaxed);
    s->metrics_.statsd_service_checks.store(c.service_checks, std::memory_order_relaxed);
    s->metrics_.statsd_tags_dropped.store(c.tags_dropped, std::memory_order_relaxed);
    s->metrics_.statsd_names_mapped.store(c.names_mapped, std::memory_order_relaxed);
    s->metrics_.statsd_sources_refused.store(c.sources_refused, std::memory_order_relaxed);
    if (s->reporter_) s->reporter_->tick();
  });
}

void Server::wire_query() {
  const auto& cfg = config_;
  engine_ = std::make_unique<QueryEngine>(*catalog_, *router_, *limits_, clock_, &metrics_);
  engine_->set_coverage(coverage_.get());
  http_ = std::make_unique<HttpApi>(*engine_, *catalog_, *router_, metrics_, clock_);
  http_->set_cardinality(cardinality_.get());
  http_->set_annotations(annotations_.get());
  http_->set_promql_limits({cfg.promql_max_length, cfg.promql_max_depth});
  http_->set_max_connections(static_cast<size_t>(cfg.limits.http_max_connections));
  http_->set_health_check([i = ingest_.get()] { return i->log_healthy(); });
  http_->set_backup([this](const std::string& dir) { return backup(dir); });
  const auto& sec = cfg.security;
  http_->set_security({HttpGuardOptions{sec.http_read_tokens,
                                        sec.http_admin_tokens,
                                        sec.http_allowed_hosts,
                                        sec.http_allowed_origins,
                                        {}},
                       sec.http_tls_cert_file, sec.http_tls_key_file});
  http_->set_reload([this] { return reload_auth(); });
  metrics_.series.store(static_cast<int64_t>(catalog_->size()));
}

Result<backup::Manifest> Server::backup(const std::string& dir) {
  MutexLock lock(backup_mu_);
  spdlog::info("event=backup_started dir={}", dir);
  const bool existed = std::filesystem::exists(dir);
  ingest_->hold_log_truncation();  // until the log is copied: no record may go before then
  auto m = write_backup(config_.data_dir, dir, clock_.now_ms(), config_.debug_backup_pause_us);
  ingest_->release_log_truncation();
  if (!m) {
    spdlog::error("event=backup_failed dir={} error=\"{}\"", dir, m.status().to_string());
    // What this backup created goes again; a directory that was there is never touched.
    if (!existed && m.status().code() != StatusCode::kInvalidArgument) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
    return m;
  }
  spdlog::info("event=backup_done dir={} files={} bytes={}", dir, m->files.size(),
               m->total_bytes());
  return m;
}

Server::~Server() {
  stop();
}

// Starts the threads downstream first (forwarding, shards, live, HTTP, StatsD) and ZeroMQ ingest
// last, so nothing is accepted before the stage it feeds runs. The first failure is returned;
// stop() (the destructor runs it too) stops whatever had started.
Result<BoundEndpoints> Server::start() {
  BoundEndpoints b;
  warn_insecure_listeners(config_.security,
                          {config_.ingest, config_.live, config_.http, config_.statsd});
  // The ZAP handler answers every CURVE handshake: it listens before any CURVE socket binds.
  if (zap_) {
    if (auto s = zap_->start(); !s) return s;
  }
  if (auto rw = forwarder()) rw->start();
  for (auto& s : shards_) s->start();
  annotations_->start();
  auto live = live_->start(config_.live, curve_.secret_key, [this](zmq::socket_t& s) {
    return zap_ ? zap_->watch(s, "live") : Status::ok();
  });
  if (!live) return live.status();
  b.live = *live;
  auto http = http_->start(config_.http);
  if (!http) return http.status();
  b.http_port = *http;
  // Covered from here on: StatsD and ZeroMQ ingest accept data from the next lines.
  // A record that cannot be written (disk full) does not stop ingest: counted, logged, retried.
  if (auto s = coverage_->start(); !s)
    spdlog::error("event=coverage_write_failed error=\"{}\"", s.to_string());
  if (auto s = statsd_->start(); !s) return s;
  b.statsd_port = statsd_->udp_port();
  auto ingest = ingest_->start();
  if (!ingest) return ingest.status();
  b.ingest = *ingest;
  return b;
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  // StatsD first: its last interval (open sets included) is logged by the ingest thread's stop.
  if (statsd_) statsd_->stop();
  if (ingest_) ingest_->stop();
  // Nothing is accepted any more: the exact end of this run's coverage.
  if (coverage_) {
    if (auto s = coverage_->finish(); !s)
      spdlog::error("event=coverage_write_failed error=\"{}\"", s.to_string());
  }
  auto rw = forwarder();
  if (rw) {
    // Only final buckets are forwarded: let the watermark pass everything received (bounded
    // in real time, for clocks that do not move) so the last seconds are sent, not just stored.
    const int64_t until_s = clock_.now_s() + 1 + config_.lateness_s;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(config_.lateness_s + 2);
    while (clock_.now_s() < until_s && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::this_thread::sleep_for(
        std::chrono::milliseconds(250));  // two shard ticks: finalise and hand over
  }
  for (auto& s : shards_) s->stop();
  if (rw) rw->stop();  // sends what is queued, within its drain timeout
  {
    MutexLock lock(reload_mu_);
    for (auto& retired : retired_writers_) retired->stop();
  }
  if (http_) http_->stop();
  if (annotations_) annotations_->stop();  // after StatsD and HTTP: what they queued is written
  if (live_) live_->stop();
  if (zap_) zap_->stop();
  spdlog::info("event=stopped series={}", catalog_ ? catalog_->size() : 0);
}

}  // namespace tally::collector
