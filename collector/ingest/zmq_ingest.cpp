#include "ingest/zmq_ingest.h"

#include "ingest/statsd_record.h"
#include "storage/wal_format.h"
#include "thread_guard.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>
#include <unordered_set>

namespace tally::collector {

ZmqIngest::ZmqIngest(zmq::context_t& ctx, ZmqIngestOptions opts, SeriesCatalog& catalog,
                     ProducerTable& producers, Router& router, Wal& wal, const Clock& clock,
                     SelfMetrics& metrics)
    : ctx_(ctx),
      opts_(std::move(opts)),
      catalog_(catalog),
      producers_(producers),
      router_(router),
      wal_(wal),
      clock_(clock),
      metrics_(metrics) {}

ZmqIngest::Budgets ZmqIngest::budgets() const {
  Budgets b{opts_.limits,        opts_.max_batch_bytes, opts_.max_queued_bytes,
            opts_.producers_max, opts_.producer_idle_s, opts_.series_idle_expiry_s};
  if (!opts_.live_limits) return b;
  const auto l = opts_.live_limits->get();
  b.limits.max_age_s = l->max_age_s();
  b.limits.max_future_s = l->max_future_s;
  b.limits.max_points = l->input.batch_max_points;
  b.limits.max_defs = l->input.batch_max_defs;
  b.limits.max_sketch_bins = l->input.sketch_max_bins;
  b.limits.max_sketch_key_span = l->input.sketch_max_key_span;
  b.max_batch_bytes = l->max_batch_bytes;
  b.max_queued_bytes = l->max_queued_bytes;
  b.producers_max = static_cast<size_t>(l->input.producers_max);
  b.producer_idle_s = std::max<int64_t>(1, l->input.producer_idle_ms / 1000);
  b.series_idle_expiry_s = l->input.series_idle_expiry_ms / 1000;
  return b;
}

Result<std::string> ZmqIngest::start() {
  socket_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::router);
  socket_->set(zmq::sockopt::linger, 0);
  socket_->set(zmq::sockopt::router_mandatory, 0);
  // Refuse oversized frames at the transport: ZeroMQ drops the connection, the SDK reconnects.
  socket_->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(opts_.max_batch_bytes + 1024));
  // Bound what waits inside ZeroMQ: beyond this many frames from one peer, ZeroMQ stops reading
  // its connection and TCP pushes back on the sender.
  socket_->set(zmq::sockopt::rcvhwm, opts_.rcv_hwm);
  if (!opts_.curve_secret_key.empty()) {
    socket_->set(zmq::sockopt::curve_server, 1);
    socket_->set(zmq::sockopt::curve_secretkey, opts_.curve_secret_key);
    socket_->set(zmq::sockopt::zap_domain, "ingest");  // names the listener in ZAP refusals
    if (opts_.watch_handshakes)
      if (auto s = opts_.watch_handshakes(*socket_); !s)
        spdlog::warn("event=handshake_monitor_failed listener=ingest error=\"{}\"", s.message());
  }
  try {
    socket_->bind(opts_.endpoint);
  } catch (const zmq::error_t& e) {
    return Status::io_error("cannot bind ingest endpoint " + opts_.endpoint + ": " + e.what());
  }
  std::string bound = socket_->get(zmq::sockopt::last_endpoint);
  thread_ = std::thread([this] { guarded("ingest", metrics_, [this] { run(); }); });
  return bound;
}

void ZmqIngest::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  socket_.reset();
}

void ZmqIngest::run() {
  int64_t last_tick_ms = clock_.now_ms();
  zmq::pollitem_t items[] = {{static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0},
                             {nullptr, statsd_ ? statsd_->wake_fd() : -1, ZMQ_POLLIN, 0}};
  while (!stopping_) {
    try {
      // StatsD intervals are taken at most every statsd_interval_ms: until the next is due the
      // wake fd is left out of the poll (it stays readable) and the poll ends when it is due.
      const int64_t statsd_wait_ms =
          statsd_ ? last_statsd_take_ms_ + opts_.statsd_interval_ms - clock_.now_ms() : 0;
      const int nitems = statsd_ && statsd_wait_ms <= 0 ? 2 : 1;
      const int64_t timeout_ms =
          statsd_ && statsd_wait_ms > 0 ? std::min<int64_t>(100, statsd_wait_ms) : 100;
      zmq::poll(items, nitems, std::chrono::milliseconds(timeout_ms));
      // Take what is there as one group: one log sync, then all the acks.
      for (int n = 0; n < 1000 && (items[0].revents & ZMQ_POLLIN); ++n) {
        zmq::message_t identity, payload;
        if (!socket_->recv(identity, zmq::recv_flags::dontwait)) break;
        // DEALER sends one frame; a REQ peer adds an empty delimiter. The payload is the last
        // frame.
        bool more = identity.more();
        while (more) {
          if (!socket_->recv(payload, zmq::recv_flags::none)) break;
          more = payload.more();
        }
        handle(identity, payload);
      }
      if (statsd_ && clock_.now_ms() >= last_statsd_take_ms_ + opts_.statsd_interval_ms)
        take_statsd();
      commit_group();
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      spdlog::error("event=ingest_socket_error error=\"{}\"", e.what());
    }
    (void)wal_.sync();  // the interval policy syncs here when its time has come
    int64_t now_ms = clock_.now_ms();
    if (now_ms - last_tick_ms >= 1000) {
      const uint64_t applied = router_.applied_bytes();
      const uint64_t rate = (applied - last_applied_bytes_) * 1000 /
                            static_cast<uint64_t>(std::max<int64_t>(1, now_ms - last_tick_ms));
      drain_bytes_per_s_ = drain_bytes_per_s_ ? (drain_bytes_per_s_ + rate) / 2 : rate;
      last_applied_bytes_ = applied;
      (void)queued_bytes();  // keeps the gauges current while nothing arrives
      last_tick_ms = now_ms;
      if (tick_) tick_();
      const Budgets b = budgets();
      if (auto n = producers_.forget(clock_.now_s(), b.producer_idle_s, b.producers_max,
                                     std::min(b.producer_idle_s, opts_.producer_min_idle_s));
          !n)
        spdlog::warn("event=producer_forget_failed error=\"{}\"", n.status().to_string());
      else if (*n) {
        metrics_.producers_forgotten.fetch_add(*n, std::memory_order_relaxed);
        spdlog::info("event=producers_forgotten count={} remaining={}", *n, producers_.producers());
      }
      if (b.series_idle_expiry_s > 0 &&
          clock_.now_s() - last_sweep_s_ >=
              std::clamp<int64_t>(b.series_idle_expiry_s / 4, 1, 60)) {
        last_sweep_s_ = clock_.now_s();
        sweep_series(last_sweep_s_, b.series_idle_expiry_s);
      }
      metrics_.producers.store(static_cast<int64_t>(producers_.producers()),
                               std::memory_order_relaxed);
      metrics_.producer_refs.store(static_cast<int64_t>(producers_.refs()),
                                   std::memory_order_relaxed);
      const uint64_t appended = wal_.next_lsn() - 1;
      if (auto s = producers_.save_sequences(); !s)
        spdlog::warn("event=producer_state_save_failed error=\"{}\"", s.to_string());
      else
        seqs_saved_lsn_ = appended;
      // Records whose points are all in SQLite and whose seqs are saved are no longer needed.
      if (truncation_holds_.load() == 0)
        if (auto s = wal_.truncate(std::min(router_.safe_lsn(), seqs_saved_lsn_)); !s)
          spdlog::warn("event=wal_truncate_failed error=\"{}\"", s.to_string());
    }
  }
  take_statsd();  // the listener stopped first: its last interval is logged here
  commit_group();
  (void)wal_.sync(true);
  if (auto s = producers_.save_sequences(); !s)
    spdlog::error("event=producer_state_save_failed error=\"{}\"", s.to_string());
}

void ZmqIngest::set_log_health(bool ok, const Status& why) {
  if (log_healthy_.exchange(ok) == ok) return;
  if (ok) {
    spdlog::info("event=log_recovered note=\"acknowledging batches again\"");
  } else {
    spdlog::error(
        "event=log_unwritable error=\"{}\" note=\"batches are answered UNAVAILABLE; SDKs keep and "
        "resend them\"",
        why.to_string());
  }
  metrics_.storage_healthy.store(ok && router_.healthy() ? 1 : 0);
}

void ZmqIngest::route_definitions(DecodedBatch& d) {
  // The batch is not logged, but decoding already put its new series in the catalog: the resent
  // batch will not create them again, so their shards must learn of them now, or their points
  // would be dropped until a restart. Definitions only; the points come with the resend.
  for (auto& w : d.per_shard) {
    w.counters.clear();
    w.gauges.clear();
    w.dists.clear();
  }
  router_.route(std::move(d.per_shard));
}

void ZmqIngest::take_statsd() {
  if (!statsd_) return;
  StatsdInterval iv = statsd_->take();
  if (iv.empty()) return;
  last_statsd_take_ms_ = clock_.now_ms();
  if (!group_mark_) group_mark_ = wal_.mark();
  auto lsn = wal_.append(encode_statsd_record(iv.per_shard), wal_format::kTypeStatsd);
  if (!lsn) {
    set_log_health(false, lsn.status());
    route_statsd_unlogged(std::move(iv.per_shard), iv.samples, lsn.status());
    return;
  }
  for (const auto& w : iv.per_shard) group_bytes_ += work_bytes(w);
  statsd_group_.push_back(PendingStatsd{std::move(iv.per_shard), iv.samples, *lsn});
}

void ZmqIngest::route_statsd_unlogged(std::vector<ShardWork>&& per_shard, uint64_t samples,
                                      const Status& why) {
  // UDP cannot be asked to resend: keep the counts in memory as before logging existed, and say
  // that a crash before the next checkpoint would lose them.
  router_.route(std::move(per_shard));
  metrics_.points_received.fetch_add(samples, std::memory_order_relaxed);
  metrics_.statsd_samples_unlogged.fetch_add(samples, std::memory_order_relaxed);
  const int64_t now = clock_.now_s();
  if (now != last_unlogged_log_s_) {
    last_unlogged_log_s_ = now;
    spdlog::error("event=statsd_unlogged samples={} error=\"{}\"", samples, why.to_string());
  }
}

void ZmqIngest::commit_group() {
  if (group_.empty() && statsd_group_.empty()) return;
  Status s = wal_.sync();
  if (!s) {
    // Not durable: take the whole group back out of the log and let the producers resend.
    if (auto r = wal_.rollback(*group_mark_); !r)
      spdlog::error("event=wal_rollback_failed error=\"{}\"", r.to_string());
    set_log_health(false, s);
    for (auto& p : group_) {
      route_definitions(p.decoded);
      p.ack.set_code(wire::Ack::UNAVAILABLE);
      p.ack.set_reason("the collector cannot make the batch durable: " + s.message());
      metrics_.batches_unavailable.fetch_add(1, std::memory_order_relaxed);
      send_ack(p.identity, p.ack);
    }
    for (auto& p : statsd_group_) route_statsd_unlogged(std::move(p.per_shard), p.samples, s);
  } else {
    set_log_health(true, s);
    for (auto& p : group_) {
      producers_.mark_seen(p.ack.producer_id(), p.ack.seq());
      producers_.touch(p.ack.producer_id(), clock_.now_s());
      router_.route(std::move(p.decoded.per_shard), p.lsn);
      metrics_.points_received.fetch_add(p.decoded.points, std::memory_order_relaxed);
      metrics_.points_rejected_old.fetch_add(p.decoded.rejected_old, std::memory_order_relaxed);
      metrics_.points_rejected_future.fetch_add(p.decoded.rejected_future,
                                                std::memory_order_relaxed);
      if (p.dropped_batches) {
        // Producers report a running total; the metric adds what is new since the last report.
        uint64_t& seen = dropped_by_producer_[p.ack.producer_id()];
        if (p.dropped_batches > seen) {
          metrics_.sdk_dropped_batches.fetch_add(p.dropped_batches - seen,
                                                 std::memory_order_relaxed);
          seen = p.dropped_batches;
        }
      }
      if (p.decoded.rejected_old || p.decoded.rejected_future)
        log_reject(std::to_string(p.decoded.rejected_old + p.decoded.rejected_future) +
                       " points outside the accepted time range",
                   p.ack.producer_id());
      send_ack(p.identity, p.ack);
    }
    // After the batches: their LSNs are all below these (take_statsd runs after the burst).
    for (auto& p : statsd_group_) {
      router_.route(std::move(p.per_shard), p.lsn);
      metrics_.points_received.fetch_add(p.samples, std::memory_order_relaxed);
      metrics_.statsd_samples_logged.fetch_add(p.samples, std::memory_order_relaxed);
      metrics_.statsd_records_logged.fetch_add(1, std::memory_order_relaxed);
    }
  }
  group_.clear();
  statsd_group_.clear();
  group_mark_.reset();
  group_bytes_ = 0;
}

uint64_t ZmqIngest::queued_bytes() {
  const uint64_t q = router_.queued_bytes() + router_.held_bytes() + group_bytes_;
  metrics_.queued_bytes.store(static_cast<int64_t>(q), std::memory_order_relaxed);
  if (static_cast<int64_t>(q) > metrics_.queued_bytes_peak.load(std::memory_order_relaxed))
    metrics_.queued_bytes_peak.store(static_cast<int64_t>(q), std::memory_order_relaxed);
  return q;
}

uint32_t ZmqIngest::retry_after_ms(uint64_t queued, uint64_t max_queued) const {
  // Long enough for the shards to bring the queue down to half the bound at their recent rate.
  constexpr int64_t kMin = 100, kMax = 5000, kUnknown = 1000;
  const uint64_t excess = queued > max_queued / 2 ? queued - max_queued / 2 : 0;
  if (drain_bytes_per_s_ == 0) return kUnknown;
  const auto ms = static_cast<int64_t>(excess * 1000 / drain_bytes_per_s_);
  return static_cast<uint32_t>(std::clamp(ms, kMin, kMax));
}

void ZmqIngest::handle(zmq::message_t& identity, const zmq::message_t& payload) {
  metrics_.batches_received.fetch_add(1, std::memory_order_relaxed);
  metrics_.bytes_received.fetch_add(payload.size(), std::memory_order_relaxed);
  wire::Ack ack;
  const Budgets budget = budgets();  // one snapshot for the whole frame
  // A resend is recognised from the frame's header alone, before anything is decoded.
  const std::optional<BatchHeader> header = payload.size() > budget.max_batch_bytes
                                                ? std::nullopt
                                                : peek_batch_header(payload.data(), payload.size());
  if (header && header->producer_id != 0 && header->seq != 0) {
    ack.set_producer_id(header->producer_id);
    ack.set_seq(header->seq);
    bool in_group = false;
    for (const auto& p : group_)
      in_group |= p.ack.producer_id() == header->producer_id && p.ack.seq() == header->seq;
    if (in_group || producers_.seen(header->producer_id, header->seq)) {
      // A copy inside the current group is answered after the group's sync, like the original.
      if (in_group) commit_group();
      if (!producers_.seen(header->producer_id, header->seq)) {  // the original's group failed
        ack.set_code(wire::Ack::UNAVAILABLE);
        ack.set_reason("the collector cannot make the batch durable now");
        metrics_.batches_unavailable.fetch_add(1, std::memory_order_relaxed);
      } else {
        ack.set_code(wire::Ack::DUPLICATE);
        metrics_.batches_duplicate.fetch_add(1, std::memory_order_relaxed);
      }
      send_ack(identity, ack);
      return;
    }
    // Beyond the budget: refuse now, with a hint, rather than queue.
    if (const uint64_t queued = queued_bytes(); queued >= budget.max_queued_bytes) {
      ack.set_code(wire::Ack::UNAVAILABLE);
      ack.set_retry_after_ms(retry_after_ms(queued, budget.max_queued_bytes));
      ack.set_reason("the collector is busy: " + std::to_string(queued) +
                     " bytes accepted and not yet applied (limit " +
                     std::to_string(budget.max_queued_bytes) + "); resend after retry_after_ms");
      metrics_.batches_overloaded.fetch_add(1, std::memory_order_relaxed);
      send_ack(identity, ack);
      return;
    }
  }
  // Definitions this producer's refs already have are not decoded again.
  std::optional<std::string> stripped;
  if (header && header->producer_id != 0) {
    size_t skipped = 0;
    const uint64_t pid = header->producer_id;
    stripped = strip_known_defs(
        payload.data(), payload.size(),
        [&](uint32_t ref) { return producers_.ref(pid, ref) != nullptr; }, &skipped);
    metrics_.defs_skipped.fetch_add(skipped, std::memory_order_relaxed);
  }
  const void* body = stripped ? stripped->data() : payload.data();
  const size_t body_size = stripped ? stripped->size() : payload.size();
  wire::Batch batch;
  if (payload.size() > budget.max_batch_bytes) {
    metrics_.hit(Limit::kBatchBytes);
    ack.set_code(wire::Ack::INVALID);
    ack.set_reason("batch of " + std::to_string(payload.size()) + " bytes is above the limit of " +
                   std::to_string(budget.max_batch_bytes));
  } else if (!header || !batch.ParseFromArray(body, static_cast<int>(body_size))) {
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
  if (!router_.healthy()) {
    metrics_.batches_unavailable.fetch_add(1, std::memory_order_relaxed);
    ack.set_code(wire::Ack::UNAVAILABLE);
    ack.set_reason("storage is not accepting writes; keep the batch and resend");
    send_ack(identity, ack);
    return;
  }
  if (opts_.debug_def_delay_us > 0 && batch.defs_size() > 0)
    std::this_thread::sleep_for(std::chrono::microseconds(opts_.debug_def_delay_us) *
                                batch.defs_size());
  if (batch.sent_unix_ms() != 0) {
    const double skew_s = static_cast<double>(batch.sent_unix_ms() - clock_.now_ms()) / 1000.0;
    if (metrics_.producer_skew(batch.producer_id(), skew_s))
      spdlog::warn(
          "event=producer_clock_skew producer={:016x} skew_s={:.1f} note=\"this producer's clock "
          "is off: points more than max_future ahead are dropped as future, points older than "
          "the longest retention as old; tally_producer_clock_skew_seconds follows it\"",
          batch.producer_id(), skew_s);
  }
  DecodedBatch d =
      decode_batch(batch, producers_, catalog_, budget.limits, clock_.now_s(), opts_.cardinality);
  ack.set_code(d.code);
  ack.set_reason(d.reason);
  for (uint32_t r : d.unknown_refs) ack.add_unknown_refs(r);
  switch (d.code) {
    case wire::Ack::OK: {
      if (!group_mark_) group_mark_ = wal_.mark();
      auto lsn =
          wal_.append(std::string_view(static_cast<const char*>(payload.data()), payload.size()));
      if (!lsn) {
        route_definitions(d);
        set_log_health(false, lsn.status());
        metrics_.batches_unavailable.fetch_add(1, std::memory_order_relaxed);
        ack.set_code(wire::Ack::UNAVAILABLE);
        ack.set_reason("the collector cannot log the batch: " + lsn.status().message());
        break;
      }
      for (const auto& w : d.per_shard) group_bytes_ += work_bytes(w);
      group_.push_back(Pending{std::move(identity), std::move(ack), std::move(d), *lsn,
                               batch.dropped_batches()});
      return;  // acknowledged by commit_group()
    }
    case wire::Ack::INVALID:
      metrics_.batches_rejected.fetch_add(1, std::memory_order_relaxed);
      if (d.limit_hit != Limit::kCount) metrics_.hit(d.limit_hit);
      log_reject(d.reason, batch.producer_id());
      break;
    case wire::Ack::UNKNOWN_REF:
      metrics_.batches_unknown_ref.fetch_add(1, std::memory_order_relaxed);
      break;
    default:
      route_definitions(d);  // refs could not be saved, but the series exist now
      metrics_.batches_unavailable.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  send_ack(identity, ack);
}

void ZmqIngest::sweep_series(int64_t now_s, int64_t expiry_s) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<const SeriesInfo*> gone = catalog_.unlink_idle(now_s - expiry_s);
  if (!gone.empty()) {
    // No batch decoded from here on resolves a ref to them: an SDK that uses one again is told
    // UNKNOWN_REF and defines it again (the same series, back with its id).
    std::unordered_set<const SeriesInfo*> set(gone.begin(), gone.end());
    for (auto& r : producers_.forget_series(set)) refs_to_delete_[r.series_id].push_back(r);
    // StatsD samples resolved before the unlink wait in the listener's interval: route them first.
    take_statsd();
    commit_group();
    // Behind every point already routed to them, their shards release them (shard.h).
    std::vector<ShardWork> per_shard(router_.shard_count());
    for (const SeriesInfo* s : gone) per_shard[s->shard].retire.push_back(s);
    router_.route(std::move(per_shard));
  }
  // Expiries now durable: the producers' saved refs to them go (a restart no longer needs them).
  std::vector<ProducerTable::SavedRef> saved;
  for (uint64_t id : catalog_.take_durable()) {
    auto it = refs_to_delete_.find(id);
    if (it == refs_to_delete_.end()) continue;
    saved.insert(saved.end(), it->second.begin(), it->second.end());
    refs_to_delete_.erase(it);
  }
  if (auto s = producers_.delete_refs(saved); !s) {
    spdlog::warn("event=producer_refs_delete_failed error=\"{}\"", s.to_string());
    for (const auto& r : saved) refs_to_delete_[r.series_id].push_back(r);  // next sweep
  }
  const size_t freed = catalog_.reclaim();
  metrics_.series_freed.fetch_add(freed, std::memory_order_relaxed);
  metrics_.series_revived.store(catalog_.revived(), std::memory_order_relaxed);
  metrics_.series_expiring.store(static_cast<int64_t>(catalog_.expiring()),
                                 std::memory_order_relaxed);
  metrics_.series.store(static_cast<int64_t>(catalog_.size()), std::memory_order_relaxed);
  if (!gone.empty() || freed)
    spdlog::info(
        "event=series_expired count={} freed={} active={} expiring={} ms={}", gone.size(), freed,
        catalog_.size(), catalog_.expiring(),
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count());
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
  spdlog::warn("event=batch_rejected producer={:016x} reason=\"{}\" suppressed={}", producer,
               reason, suppressed_rejects_);
  suppressed_rejects_ = 0;
}

}  // namespace tally::collector
