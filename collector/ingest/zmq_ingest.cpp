#include "ingest/zmq_ingest.h"

#include <spdlog/spdlog.h>

namespace tally::collector {

ZmqIngest::ZmqIngest(zmq::context_t& ctx, ZmqIngestOptions opts, SeriesCatalog& catalog, ProducerTable& producers,
                     Router& router, const Clock& clock, SelfMetrics& metrics)
    : ctx_(ctx), opts_(std::move(opts)), catalog_(catalog), producers_(producers), router_(router),
      clock_(clock), metrics_(metrics) {}

Result<std::string> ZmqIngest::start() {
  socket_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::router);
  socket_->set(zmq::sockopt::linger, 0);
  socket_->set(zmq::sockopt::router_mandatory, 0);
  // Refuse oversized frames at the transport: ZeroMQ drops the connection, the SDK reconnects.
  socket_->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(opts_.max_batch_bytes + 1024));
  try {
    socket_->bind(opts_.endpoint);
  } catch (const zmq::error_t& e) {
    return Status::io_error("cannot bind ingest endpoint " + opts_.endpoint + ": " + e.what());
  }
  std::string bound = socket_->get(zmq::sockopt::last_endpoint);
  thread_ = std::thread([this] { run(); });
  return bound;
}

void ZmqIngest::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  socket_.reset();
}

void ZmqIngest::run() {
  int64_t last_tick_ms = clock_.now_ms();
  zmq::pollitem_t items[] = {{static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0}};
  while (!stopping_) {
    try {
      zmq::poll(items, 1, std::chrono::milliseconds(100));
      // Drain what is there before ticking, so a busy socket is served in bursts.
      for (int n = 0; n < 10000 && (items[0].revents & ZMQ_POLLIN); ++n) {
        zmq::message_t identity, payload;
        if (!socket_->recv(identity, zmq::recv_flags::dontwait)) break;
        // DEALER sends one frame; a REQ peer adds an empty delimiter. The payload is the last frame.
        bool more = identity.more();
        while (more) {
          if (!socket_->recv(payload, zmq::recv_flags::none)) break;
          more = payload.more();
        }
        handle(identity, payload);
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      spdlog::error("event=ingest_socket_error error=\"{}\"", e.what());
    }
    int64_t now_ms = clock_.now_ms();
    if (now_ms - last_tick_ms >= 1000) {
      last_tick_ms = now_ms;
      if (tick_) tick_();
      if (auto s = producers_.save_sequences(); !s)
        spdlog::warn("event=producer_state_save_failed error=\"{}\"", s.to_string());
    }
  }
  if (auto s = producers_.save_sequences(); !s)
    spdlog::error("event=producer_state_save_failed error=\"{}\"", s.to_string());
}

void ZmqIngest::handle(const zmq::message_t& identity, const zmq::message_t& payload) {
  metrics_.batches_received.fetch_add(1, std::memory_order_relaxed);
  metrics_.bytes_received.fetch_add(payload.size(), std::memory_order_relaxed);
  wire::Ack ack;
  wire::Batch batch;
  if (payload.size() > opts_.max_batch_bytes) {
    ack.set_code(wire::Ack::INVALID);
    ack.set_reason("batch of " + std::to_string(payload.size()) + " bytes is above the limit of " +
                   std::to_string(opts_.max_batch_bytes));
  } else if (!batch.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    ack.set_code(wire::Ack::INVALID);
    ack.set_reason("malformed protobuf frame: not a tally.wire.Batch");
  } else if (batch.producer_id() == 0 || batch.seq() == 0) {
    ack.set_code(wire::Ack::INVALID);
    ack.set_reason("batch without producer_id or seq");
  }
  ack.set_producer_id(batch.producer_id());
  ack.set_seq(batch.seq());
  if (ack.code() == wire::Ack::INVALID) {
    metrics_.batches_rejected.fetch_add(1, std::memory_order_relaxed);
    log_reject(ack.reason(), batch.producer_id());
    send_ack(identity, ack);
    return;
  }
  if (producers_.seen(batch.producer_id(), batch.seq())) {
    metrics_.batches_duplicate.fetch_add(1, std::memory_order_relaxed);
    ack.set_code(wire::Ack::DUPLICATE);
    send_ack(identity, ack);
    return;
  }
  if (!router_.healthy()) {
    metrics_.batches_unavailable.fetch_add(1, std::memory_order_relaxed);
    ack.set_code(wire::Ack::UNAVAILABLE);
    ack.set_reason("storage is not accepting writes; keep the batch and resend");
    send_ack(identity, ack);
    return;
  }
  DecodedBatch d = decode_batch(batch, producers_, catalog_, opts_.limits, clock_.now_s());
  ack.set_code(d.code);
  ack.set_reason(d.reason);
  for (uint32_t r : d.unknown_refs) ack.add_unknown_refs(r);
  switch (d.code) {
    case wire::Ack::OK:
      producers_.mark_seen(batch.producer_id(), batch.seq());
      router_.route(std::move(d.per_shard));
      metrics_.points_received.fetch_add(d.points, std::memory_order_relaxed);
      metrics_.points_rejected_old.fetch_add(d.rejected_old, std::memory_order_relaxed);
      metrics_.points_rejected_future.fetch_add(d.rejected_future, std::memory_order_relaxed);
      if (batch.dropped_batches()) {
        // Producers report a running total; the metric adds what is new since the last report.
        uint64_t& seen = dropped_by_producer_[batch.producer_id()];
        if (batch.dropped_batches() > seen) {
          metrics_.sdk_dropped_batches.fetch_add(batch.dropped_batches() - seen, std::memory_order_relaxed);
          seen = batch.dropped_batches();
        }
      }
      if (d.rejected_old || d.rejected_future)
        log_reject(std::to_string(d.rejected_old + d.rejected_future) + " points outside the accepted time range",
                   batch.producer_id());
      break;
    case wire::Ack::INVALID:
      metrics_.batches_rejected.fetch_add(1, std::memory_order_relaxed);
      log_reject(d.reason, batch.producer_id());
      break;
    case wire::Ack::UNKNOWN_REF:
      metrics_.batches_unknown_ref.fetch_add(1, std::memory_order_relaxed);
      break;
    default:
      metrics_.batches_unavailable.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  send_ack(identity, ack);
}

void ZmqIngest::send_ack(const zmq::message_t& identity, const wire::Ack& ack) {
  std::string bytes = ack.SerializeAsString();
  zmq::message_t id(identity.data(), identity.size());
  // Never block the ingest thread on a peer that went away.
  if (!socket_->send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return;
  (void)socket_->send(zmq::buffer(bytes), zmq::send_flags::dontwait);
}

void ZmqIngest::log_reject(const std::string& reason, uint64_t producer) {
  // At most one line a second; the count of what was not logged goes with the next line.
  int64_t now = clock_.now_s();
  if (now == last_reject_log_s_) {
    ++suppressed_rejects_;
    return;
  }
  last_reject_log_s_ = now;
  spdlog::warn("event=batch_rejected producer={:016x} reason=\"{}\" suppressed={}", producer, reason,
               suppressed_rejects_);
  suppressed_rejects_ = 0;
}

}  // namespace tally::collector
