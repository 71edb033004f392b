// Server: wires the collector's pipeline together: data directory and shards (storage +
// aggregation), the catalog, ZeroMQ ingest, the live publisher, remote-write forwarding, the HTTP
// API and the collector's own metrics. Reading this file top to bottom reads the pipeline.
// Thread-safety: create/start/stop from one thread.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "aggregate/cardinality.h"
#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "aggregate/shard.h"
#include "auth/zap_handler.h"
#include "config.h"
#include "forward/remote_write.h"
#include "ingest/producer_table.h"
#include "ingest/statsd_listener.h"
#include "ingest/statsd_router.h"
#include "ingest/zmq_ingest.h"
#include "live/publisher.h"
#include "live_limits.h"
#include "query/http_api.h"
#include "query/query_engine.h"
#include "self_metrics.h"
#include "self_reporter.h"
#include "storage/annotation_store.h"
#include "storage/coverage.h"
#include "storage/data_dir.h"
#include "storage/wal.h"
#include "tally/common/curve_keys.h"
#include "tally/common/mutex.h"

namespace tally::collector {

struct BoundEndpoints {
  std::string ingest;
  int http_port = 0;
  std::string live;
  int statsd_port = 0;  // 0 when StatsD UDP is off
};

class Server {
 public:
  // Opens the data directory, loads what is stored and replays the write-ahead log; nothing
  // listens yet.
  static Result<std::unique_ptr<Server>> create(CollectorConfig config, const Clock& clock);
  ~Server();

  Result<BoundEndpoints> start();
  // Stops ingest first, then writes every open bucket, then stops the rest.
  void stop();

  // A reload (SIGHUP and POST /api/admin/reload): reads the configuration again (through the
  // loader set by set_config_loader, else security.config_file alone, else only the key
  // directory) and applies what can change live: CURVE client keys, HTTP tokens, the log level,
  // every InputLimits budget and the byte budgets, how long each resolution is kept, and
  // remote-write. Every other changed setting is logged as event=reload_needs_restart with the
  // reason. On an error nothing changes. Returns what was loaded, for the log and the answer.
  Result<std::string> reload_auth();
  std::string reload_settings(const CollectorConfig& file);
  // How a reload reads the configuration: the file with the command line's flags over it (so a
  // flag keeps winning), validated. Set before start().
  void set_config_loader(std::function<Result<CollectorConfig>()> load) {
    config_loader_ = std::move(load);
  }

  SelfMetrics& metrics() { return metrics_; }
  Router& router() { return *router_; }
  SeriesCatalog& catalog() { return *catalog_; }
  // Writes a consistent backup of the data directory into `dir` while ingest goes on
  // (storage/backup_writer.h); one at a time.
  Result<backup::Manifest> backup(const std::string& dir);
  CardinalityGuard& cardinality() { return *cardinality_; }

 private:
  Server(CollectorConfig config, const Clock& clock) : config_(std::move(config)), clock_(clock) {}

  Status load_auth();  // the collector's CURVE key pair and the allowed client keys
  // The steps of create(), in order. Each either succeeds or returns the Status create() returns.
  Status open_storage(DataDirLayout* layout, uint64_t* max_lsn);  // shards, catalog, live
  Status migrate_retention(const DataDirLayout& layout);  // a changed retention list, applied
  Status open_forwarding();                               // remote-write, when configured
  Status open_annotations();  // annotations.sqlite (deploys, incidents, DogStatsD events)
  // coverage.sqlite: when this collector ran; a directory without one is covered from its
  // earliest stored bucket to now.
  Status open_coverage(const DataDirLayout& layout);
  Status replay_log(const IngestLimits& limits, uint64_t max_lsn);  // producers, WAL, replay
  // Data written by an older collector: logged before and after, the writer recorded.
  Status begin_migration();
  Status finish_migration();
  // Parts of reload_settings(): each logs what it changed and returns a note for the answer.
  std::string reload_limits(const CollectorConfig& file);
  std::string reload_retention(const CollectorConfig& file);
  std::string reload_remote_write(const CollectorConfig& file);
  ZmqIngestOptions ingest_options() const;
  const SeriesInfo* revive_stored(uint64_t id);  // start-up: an expired series back by id
  void wire_ingest(const ZmqIngestOptions& io);  // ZeroMQ, StatsD, the tick (nothing listens)
  void wire_query();                             // QueryEngine, HTTP API

  CollectorConfig config_;
  const Clock& clock_;
  SelfMetrics metrics_;
  zmq::context_t zmq_{1};
  CurveKeyPair curve_;               // the collector's key pair; empty = plain ZeroMQ
  std::unique_ptr<ZapHandler> zap_;  // checks client keys when curve_ is set
  Mutex reload_mu_;                  // one reload at a time (SIGHUP and the admin route)
  std::function<Result<CollectorConfig>()> config_loader_;
  DataDirLayout layout_;
  uint64_t started_max_batch_bytes_ = 0;  // the ingest socket's message size is set from it
  // The budgets and retention in effect (a reload changes them); every component reads it.
  std::unique_ptr<LiveLimits> limits_;
  std::unique_ptr<SeriesCatalog> catalog_;
  std::unique_ptr<CardinalityGuard> cardinality_;  // the ingest paths create series through it
  std::unique_ptr<LivePublisher> live_;
  // The forwarder now configured (null: off); the shards' final sinks read it for every flush,
  // a reload swaps it. Writers turned off drain in retired_writers_ until stop().
  std::shared_ptr<RemoteWriter> forwarder() const;
  void set_forwarder(std::shared_ptr<RemoteWriter> rw);
  mutable Mutex rw_mu_;
  std::shared_ptr<RemoteWriter> remote_write_ GUARDED_BY(rw_mu_);
  std::vector<std::shared_ptr<RemoteWriter>> retired_writers_;  // GUARDED_BY(reload_mu_)
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<ProducerTable> producers_;
  std::unique_ptr<Wal> wal_;
  std::unique_ptr<ZmqIngest> ingest_;
  std::unique_ptr<StatsdRouter> statsd_router_;
  std::unique_ptr<StatsdListener> statsd_;
  std::unique_ptr<SelfReporter> reporter_;
  std::unique_ptr<CoverageStore> coverage_;  // before engine_: queries read it
  std::unique_ptr<QueryEngine> engine_;
  std::unique_ptr<AnnotationStore> annotations_;  // before http_: it outlives the handlers
  std::unique_ptr<HttpApi> http_;
  bool stopped_ = false;
  Mutex backup_mu_;  // one backup at a time
};

}  // namespace tally::collector
