#include "server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "storage/data_dir.h"

namespace tally::collector {

Result<std::unique_ptr<Server>> Server::create(CollectorConfig config, const Clock& clock) {
  if (auto s = config.validate(); !s) return s;
  std::unique_ptr<Server> srv(new Server(std::move(config), clock));
  const auto& cfg = srv->config_;

  // Storage: the data directory fixes the shard count when it is created.
  uint32_t wanted = cfg.shards ? cfg.shards : std::max(1u, std::thread::hardware_concurrency());
  auto dir = open_data_dir(cfg.data_dir, wanted);
  if (!dir) return dir.status();
  if (!dir->created && cfg.shards && cfg.shards != dir->shards)
    spdlog::warn(
        "event=shards_fixed configured={} stored={} note=\"the data directory keeps the count it "
        "was created with\"",
        cfg.shards, dir->shards);
  srv->catalog_ = std::make_unique<SeriesCatalog>(dir->shards);
  srv->live_ = std::make_unique<LivePublisher>(srv->zmq_, srv->metrics_);

  // Aggregation: one worker per shard, each owning its series and its SQLite file.
  std::vector<Shard*> raw;
  uint64_t max_lsn = 0;
  // With a synced log, SQLite commits are synced too (synchronous=FULL): a checkpoint lets the
  // log drop its segments, so what it wrote must be on disk first.
  auto policy = parse_fsync_policy(cfg.fsync);
  const bool sync_commits = policy->first != FsyncPolicy::kNever;
  // A shard file that cannot be read stops start-up with its name (never a silent empty shard).
  auto unreadable = [](const std::string& path, const Status& s) {
    std::string msg = "shard file " + path + " cannot be read: " + s.message() +
                      " (restore it from a backup, or move it aside to start that shard empty; "
                      "docs/CORRECTNESS.md)";
    return s.code() == StatusCode::kCorruption ? Status::corruption(std::move(msg))
                                               : Status::io_error(std::move(msg));
  };
  for (uint32_t i = 0; i < dir->shards; ++i) {
    ShardStoreOptions store_opts;
    store_opts.sync_commits = sync_commits;
    auto store = ShardStore::open(shard_path(*dir, i), cfg.resolutions, store_opts);
    if (!store) return unreadable(shard_path(*dir, i), store.status());
    auto series = (*store)->load_series();
    if (!series) return unreadable(shard_path(*dir, i), series.status());
    auto lsn = (*store)->get_meta("applied_lsn", 0);
    if (!lsn) return unreadable(shard_path(*dir, i), lsn.status());
    max_lsn = std::max(max_lsn, static_cast<uint64_t>(*lsn));
    ShardOptions so;
    so.index = i;
    so.resolutions = cfg.resolutions;
    so.lateness_s = cfg.lateness_s;
    so.checkpoint_every_s = cfg.checkpoint_s;
    auto shard =
        std::make_unique<Shard>(so, std::move(*store), clock, srv->live_.get(), srv->metrics_);
    for (auto& info : *series) {
      if (srv->catalog_->shard_of(info.hash) != i)
        return Status::corruption(shard_path(*dir, i) + ": series " + std::to_string(info.id) +
                                  " belongs to another shard");
      info.shard = i;
      if (auto s = srv->catalog_->restore(info); !s) return s;
      shard->restore_series(srv->catalog_->by_id(info.id));
    }
    raw.push_back(shard.get());
    srv->shards_.push_back(std::move(shard));
  }
  srv->router_ = std::make_unique<Router>(raw);

  // A changed retention list applies to the existing data now, and the log says what it does.
  if (!dir->created && !dir->retention.empty() && dir->retention != cfg.retention) {
    auto old = parse_retention(dir->retention);
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
        for (auto& shard : srv->shards_) {
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
        for (auto& shard : srv->shards_) {
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
  if (dir->retention != cfg.retention) {
    if (auto s = record_retention(*dir, cfg.retention); !s) return s;
  }

  // Forwarding: every final or corrected 1 s bucket goes by remote-write to a distributed engine.
  if (cfg.remote_write.enabled()) {
    auto rw = RemoteWriter::create(cfg.remote_write, srv->shards_.size(), srv->metrics_, clock);
    if (!rw) return rw.status();
    srv->remote_write_ = std::move(*rw);
    for (size_t i = 0; i < srv->shards_.size(); ++i)
      srv->shards_[i]->set_final_sink(srv->remote_write_->sink(i));
  }

  // Ingest: producers' refs and sequence windows, the write-ahead log, then the ROUTER socket.
  const std::string ingest_db = (std::filesystem::path(cfg.data_dir) / "ingest.sqlite").string();
  auto producers = ProducerTable::open(ingest_db, *srv->catalog_, sync_commits);
  if (!producers) return Status::io_error(ingest_db + ": " + producers.status().message());
  srv->producers_ = std::move(*producers);
  ZmqIngestOptions io;
  io.endpoint = cfg.ingest;
  io.max_batch_bytes = cfg.max_batch_bytes;
  io.limits.max_future_s = cfg.max_future_s;
  io.limits.max_age_s = cfg.resolutions.back().retention_s;

  WalOptions wo;
  wo.dir = (std::filesystem::path(cfg.data_dir) / "wal").string();
  wo.fsync = policy->first;
  wo.fsync_interval_ms = policy->second;
  wo.salvage = cfg.salvage_wal;
  wo.segment_bytes = cfg.wal_segment_bytes;
  auto wal = Wal::open(wo);
  if (!wal) return wal.status();
  srv->wal_ = std::move(*wal);
  // The entries of files created above (shard files, ingest.sqlite, the wal directory) are only
  // durable once their directory is synced.
  if (auto s = sync_directory(cfg.data_dir); !s) return s;
  // Replay: every logged batch goes through the same decoding; each shard skips the points its
  // stored buckets already hold (their LSN says so), so nothing is lost and nothing is doubled.
  uint64_t replayed = 0, reapplied_points = 0;
  Status replay_status;
  Status rs = srv->wal_->replay([&](uint64_t lsn, std::string_view payload) {
    wire::Batch batch;
    if (!batch.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      spdlog::error("event=wal_record_undecodable lsn={}", lsn);
      return;
    }
    DecodedBatch d =
        decode_batch(batch, *srv->producers_, *srv->catalog_, io.limits, clock.now_s());
    if (d.code != wire::Ack::OK) {
      spdlog::error("event=wal_record_rejected lsn={} reason=\"{}\"", lsn, d.reason);
      return;
    }
    srv->producers_->mark_seen(batch.producer_id(), batch.seq());
    for (size_t i = 0; i < d.per_shard.size(); ++i) {
      auto& w = d.per_shard[i];
      if (w.points() == 0 && w.new_series.empty()) continue;
      w.lsn = lsn;
      reapplied_points += w.points();
      if (auto s = srv->shards_[i]->replay(w); !s && replay_status) replay_status = s;
    }
    ++replayed;
  });
  if (!rs) return rs;
  if (!replay_status) return replay_status;
  // New records must follow every LSN the shards have stored, even if the log was emptied.
  srv->wal_->advance_to(max_lsn + 1);
  if (auto s = srv->producers_->save_sequences(); !s) return s;
  spdlog::info("event=wal_replayed records={} points_considered={} next_lsn={} log_bytes={}",
               replayed, reapplied_points, srv->wal_->next_lsn(), srv->wal_->bytes());

  srv->ingest_ = std::make_unique<ZmqIngest>(srv->zmq_, io, *srv->catalog_, *srv->producers_,
                                             *srv->router_, *srv->wal_, clock, srv->metrics_);
  // StatsD / DogStatsD over UDP and a unix datagram socket.
  srv->statsd_router_ = std::make_unique<StatsdRouter>(*srv->catalog_, *srv->router_, srv->metrics_,
                                                       io.limits, clock);
  StatsdListenerOptions so;
  so.udp = cfg.statsd;
  so.unix_path = cfg.statsd_unix;
  srv->statsd_ = std::make_unique<StatsdListener>(
      so, [r = srv->statsd_router_.get()](std::vector<StatsdSample>&& s) { (*r)(std::move(s)); },
      clock);

  if (cfg.self_metrics)
    srv->reporter_ =
        std::make_unique<SelfReporter>(*srv->catalog_, *srv->router_, srv->metrics_, clock);
  srv->ingest_->set_tick([s = srv.get()] {
    auto c = s->statsd_->counters();
    s->metrics_.statsd_lines.store(c.lines_ok, std::memory_order_relaxed);
    s->metrics_.statsd_rejected.store(c.lines_rejected_total() + s->statsd_router_->rejected(),
                                      std::memory_order_relaxed);
    if (s->reporter_) s->reporter_->tick();
  });

  // Query.
  srv->engine_ =
      std::make_unique<QueryEngine>(*srv->catalog_, *srv->router_, cfg.resolutions, clock);
  srv->http_ =
      std::make_unique<HttpApi>(*srv->engine_, *srv->catalog_, *srv->router_, srv->metrics_, clock);
  srv->http_->set_health_check([i = srv->ingest_.get()] { return i->log_healthy(); });
  srv->metrics_.series.store(static_cast<int64_t>(srv->catalog_->size()));
  spdlog::info("event=opened data_dir={} shards={} series={} retention={} created={}", cfg.data_dir,
               dir->shards, srv->catalog_->size(), cfg.retention, dir->created);
  return srv;
}

Server::~Server() {
  stop();
}

Result<BoundEndpoints> Server::start() {
  BoundEndpoints b;
  if (remote_write_) remote_write_->start();
  for (auto& s : shards_) s->start();
  auto live = live_->start(config_.live);
  if (!live) return live.status();
  b.live = *live;
  auto http = http_->start(config_.http);
  if (!http) return http.status();
  b.http_port = *http;
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
  if (ingest_) ingest_->stop();
  if (statsd_) statsd_->stop();
  if (remote_write_) {
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
  if (remote_write_) remote_write_->stop();  // sends what is queued, within its drain timeout
  if (http_) http_->stop();
  if (live_) live_->stop();
  spdlog::info("event=stopped series={}", catalog_ ? catalog_->size() : 0);
}

}  // namespace tally::collector
