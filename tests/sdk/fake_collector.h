// FakeCollector: a real ZeroMQ ROUTER on 127.0.0.1 that speaks the collector's side of the
// ingest protocol (docs/format/wire.md) for SDK tests. It keeps the (producer, ref) -> series
// dictionary from definitions, answers UNKNOWN_REF for refs it has not seen, drops duplicates
// by (producer, seq), and sums what it accepts exactly. A policy can withhold an ack or answer
// INVALID / UNAVAILABLE instead.
//
// Thread-safety: a thread of its own serves the socket; every public method is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "eventually.h"  // tests/support
#include "tally.pb.h"
#include "tally/common/series_key.h"
#include "tally/common/sketch.h"
#include "tally/common/wire.h"

namespace tally::test {

class FakeCollector {
 public:
  enum class Reply { kProcess, kWithhold, kInvalid, kUnavailable };
  // Called for every frame received, with how many times this (producer, seq) was seen before.
  using Policy = std::function<Reply(const wire::Batch&, int previous_deliveries)>;

  struct GaugePoint {
    double last = 0, min = 0, max = 0, sum = 0;
    uint64_t count = 0;
  };

  explicit FakeCollector(const std::string& bind = "tcp://127.0.0.1:*")
      : socket_(ctx_, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(bind);
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeCollector() {
    stop_.store(true);
    thread_.join();
  }

  std::string endpoint() const { return endpoint_; }
  void set_policy(Policy p) {
    std::lock_guard lk(mu_);
    policy_ = std::move(p);
  }
  // The retry_after_ms hint sent with UNAVAILABLE answers (0 = none).
  void set_retry_after_ms(uint32_t ms) {
    std::lock_guard lk(mu_);
    retry_after_ms_ = ms;
  }
  // Forgets every series definition, as a collector whose data was wiped.
  void forget_refs() {
    std::lock_guard lk(mu_);
    refs_.clear();
  }

  // Every frame received, decoded, in arrival order (resends included).
  std::vector<wire::Batch> received() const {
    std::lock_guard lk(mu_);
    return received_;
  }
  size_t received_count() const {
    std::lock_guard lk(mu_);
    return received_.size();
  }
  // Accepted counter total of a series ("metric" or "metric{k=v,k2=v2}", tags sorted).
  double counter_total(const std::string& series) const {
    std::lock_guard lk(mu_);
    auto it = counter_totals_.find(series);
    return it == counter_totals_.end() ? 0 : it->second;
  }
  std::map<int64_t, double> counter_points(const std::string& series) const {
    std::lock_guard lk(mu_);
    auto it = counter_points_.find(series);
    return it == counter_points_.end() ? std::map<int64_t, double>{} : it->second;
  }
  std::map<std::string, double> counter_totals() const {
    std::lock_guard lk(mu_);
    return counter_totals_;
  }
  std::map<int64_t, GaugePoint> gauge_points(const std::string& series) const {
    std::lock_guard lk(mu_);
    auto it = gauge_points_.find(series);
    return it == gauge_points_.end() ? std::map<int64_t, GaugePoint>{} : it->second;
  }
  Sketch distribution(const std::string& series) const {
    std::lock_guard lk(mu_);
    auto it = distributions_.find(series);
    return it == distributions_.end() ? Sketch{} : it->second;
  }
  size_t accepted_batches() const {
    std::lock_guard lk(mu_);
    return accepted_.size();
  }
  std::vector<std::string> errors() const {
    std::lock_guard lk(mu_);
    return errors_;
  }

  // Waits (real time) until pred() holds; pred runs without the lock held.
  bool wait_for(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
    return tally::testing::eventually(pred, static_cast<int>(timeout.count()), 2);
  }

  static std::string display_key(const std::string& metric, const Tags& tags) {
    if (tags.empty()) return metric;
    return metric + "{" + tags_to_string(tags) + "}";
  }

 private:
  void serve() {
    while (!stop_.load()) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(5));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t identity, payload;
      if (!socket_.recv(identity, zmq::recv_flags::none)) continue;
      if (!identity.more()) continue;
      (void)socket_.recv(payload, zmq::recv_flags::none);
      while (payload.more()) {  // the protocol has one frame; drain anything else
        zmq::message_t extra;
        (void)socket_.recv(extra, zmq::recv_flags::none);
        if (!extra.more()) break;
      }
      wire::Batch batch;
      wire::Ack ack;
      if (!batch.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
        std::lock_guard lk(mu_);
        errors_.push_back("undecodable batch");
        continue;
      }
      bool reply = handle(batch, ack);
      if (!reply) continue;
      std::string bytes;
      ack.SerializeToString(&bytes);
      socket_.send(identity, zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(bytes), zmq::send_flags::none);
    }
  }

  bool handle(const wire::Batch& b, wire::Ack& ack) {
    std::lock_guard lk(mu_);
    received_.push_back(b);
    auto id = std::make_pair(b.producer_id(), b.seq());
    int previous = deliveries_[id]++;
    ack.set_producer_id(b.producer_id());
    ack.set_seq(b.seq());
    Reply r = policy_ ? policy_(b, previous) : Reply::kProcess;
    if (r == Reply::kWithhold) return false;
    if (r == Reply::kInvalid) {
      ack.set_code(wire::Ack::INVALID);
      ack.set_reason("schema mismatch (test)");
      return true;
    }
    if (r == Reply::kUnavailable) {
      ack.set_code(wire::Ack::UNAVAILABLE);
      ack.set_reason("disk full (test)");
      ack.set_retry_after_ms(retry_after_ms_);
      return true;
    }
    if (accepted_.contains(id)) {
      ack.set_code(wire::Ack::DUPLICATE);
      return true;
    }
    // Definitions first (they are part of the batch), then check every referenced ref.
    for (const auto& d : b.defs()) {
      Tags tags;
      for (const auto& t : d.tags()) tags.push_back(Tag{t.key(), t.value()});
      refs_[{b.producer_id(), d.ref()}] = display_key(d.metric(), tags);
    }
    std::set<uint32_t> unknown;
    auto check = [&](uint32_t ref) {
      if (!refs_.contains({b.producer_id(), ref})) unknown.insert(ref);
    };
    for (uint32_t r2 : b.counters().refs()) check(r2);
    for (uint32_t r2 : b.gauges().refs()) check(r2);
    for (const auto& d : b.distributions()) check(d.ref());
    if (!unknown.empty()) {
      ack.set_code(wire::Ack::UNKNOWN_REF);
      for (uint32_t u : unknown) ack.add_unknown_refs(u);
      return true;
    }
    const auto& c = b.counters();
    if (c.refs_size() != c.times_size() || c.refs_size() != c.values_size()) {
      ack.set_code(wire::Ack::INVALID);
      ack.set_reason("counter columns differ in length");
      return true;
    }
    for (int i = 0; i < c.refs_size(); ++i) {
      const std::string& key = refs_[{b.producer_id(), c.refs(i)}];
      counter_totals_[key] += c.values(i);
      counter_points_[key][c.times(i)] += c.values(i);
    }
    const auto& g = b.gauges();
    for (int i = 0; i < g.refs_size(); ++i) {
      const std::string& key = refs_[{b.producer_id(), g.refs(i)}];
      GaugePoint& p = gauge_points_[key][g.times(i)];
      if (p.count == 0) {
        p.min = g.min(i);
        p.max = g.max(i);
      } else {
        p.min = std::min(p.min, g.min(i));
        p.max = std::max(p.max, g.max(i));
      }
      p.last = g.last(i);
      p.sum += g.sum(i);
      p.count += g.count(i);
    }
    for (const auto& d : b.distributions()) {
      auto sk = sketch_from_proto(d.sketch());
      if (!sk) {
        ack.set_code(wire::Ack::INVALID);
        ack.set_reason(sk.status().message());
        return true;
      }
      distributions_[refs_[{b.producer_id(), d.ref()}]].merge(*sk);
    }
    accepted_.insert(id);
    ack.set_code(wire::Ack::OK);
    return true;
  }

  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;

  mutable std::mutex mu_;
  Policy policy_;
  uint32_t retry_after_ms_ = 0;
  std::vector<wire::Batch> received_;
  std::map<std::pair<uint64_t, uint64_t>, int> deliveries_;
  std::set<std::pair<uint64_t, uint64_t>> accepted_;
  std::map<std::pair<uint64_t, uint32_t>, std::string> refs_;
  std::map<std::string, double> counter_totals_;
  std::map<std::string, std::map<int64_t, double>> counter_points_;
  std::map<std::string, std::map<int64_t, GaugePoint>> gauge_points_;
  std::map<std::string, Sketch> distributions_;
  std::vector<std::string> errors_;
};

}  // namespace tally::test
