// ZmqIngest: the ROUTER socket SDKs send batches to, and its thread.
//
// Per frame: size check, protobuf decode, de-duplication by (producer, seq), validation and
// routing (decode_batch), then an Ack to the sender. Rejected frames are counted and logged at a
// bounded rate. The thread also drives the collector's own metrics once a second.
// Thread-safety: start()/stop() from the owning thread; everything else runs on the ingest thread.
#pragma once

#include <atomic>
#include <functional>
#include <thread>
#include <unordered_map>

#include <zmq.hpp>

#include "aggregate/router.h"
#include "ingest/batch_decoder.h"
#include "ingest/producer_table.h"
#include "self_metrics.h"

namespace tally::collector {

struct ZmqIngestOptions {
  std::string endpoint = "tcp://127.0.0.1:7070";
  IngestLimits limits;
  size_t max_batch_bytes = 64u << 20;
};

class ZmqIngest {
 public:
  ZmqIngest(zmq::context_t& ctx, ZmqIngestOptions opts, SeriesCatalog& catalog, ProducerTable& producers,
            Router& router, const Clock& clock, SelfMetrics& metrics);
  ~ZmqIngest() { stop(); }

  // Binds the ROUTER socket and starts the thread; returns the bound endpoint.
  Result<std::string> start();
  void stop();
  // Called on the ingest thread about once a second (the collector's own metrics).
  void set_tick(std::function<void()> tick) { tick_ = std::move(tick); }

 private:
  void run();
  void handle(const zmq::message_t& identity, const zmq::message_t& payload);
  void send_ack(const zmq::message_t& identity, const wire::Ack& ack);
  void log_reject(const std::string& reason, uint64_t producer);

  zmq::context_t& ctx_;
  const ZmqIngestOptions opts_;
  SeriesCatalog& catalog_;
  ProducerTable& producers_;
  Router& router_;
  const Clock& clock_;
  SelfMetrics& metrics_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::function<void()> tick_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  int64_t last_reject_log_s_ = 0;
  uint64_t suppressed_rejects_ = 0;
  std::unordered_map<uint64_t, uint64_t> dropped_by_producer_;
};

}  // namespace tally::collector
