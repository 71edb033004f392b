// LivePublisher: the publishing side of the live stream (docs/API.md, "Live stream").
//
// Shards hand it LiveUpdates from their threads; one publisher thread owns the socket and sends,
// per metric, one LiveBatch per drain, with the metric name as the topic frame. The socket is an
// XPUB: its thread also reads which topic prefixes subscribers want, so updates for metrics
// nobody watches are dropped before they are queued, and shards skip building the partials of
// those metrics at all (topics()). A slow or absent subscriber never blocks a shard: the queue is
// bounded and overflow is dropped (ZeroMQ's high-water mark does the same on the socket).
// Thread-safety: publish() and topics() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "self_metrics.h"
#include "tally.pb.h"
#include "tally/common/mutex.h"
#include "tally/common/status.h"

namespace tally::collector {

// The topic prefixes subscribers currently want (ZeroMQ prefix matching, as SUB sockets do).
class LiveTopics {
 public:
  bool empty() const { return !all_ && prefixes_.empty(); }
  bool wants(std::string_view metric) const {
    if (all_) return true;
    for (const auto& p : prefixes_)
      if (metric.starts_with(p)) return true;
    return false;
  }
  void add(const std::string& prefix);
  void remove(const std::string& prefix);
  size_t size() const { return prefixes_.size() + (all_ ? 1 : 0); }

 private:
  bool all_ = false;  // someone subscribed to "" (everything)
  std::vector<std::string> prefixes_;
};

class LivePublisher {
 public:
  LivePublisher(zmq::context_t& ctx, SelfMetrics& metrics) : ctx_(ctx), metrics_(metrics) {}
  ~LivePublisher() { stop(); }

  // Binds the PUB socket ("off" disables publishing); returns the bound endpoint. With a CURVE
  // secret key (Z85) the socket is a CURVE server: a subscriber needs an allowed key (ZAP), and
  // `watch_handshakes` (if set) is called with the socket before it binds (ZapHandler::watch()).
  Result<std::string> start(const std::string& endpoint, const std::string& curve_secret_key = {},
                            const std::function<Status(zmq::socket_t&)>& watch_handshakes = {});
  void stop();
  void publish(std::vector<wire::LiveUpdate>&& updates);
  // What subscribers want now (at most ~100 ms old); empty before start() and when nobody
  // listens.
  std::shared_ptr<const LiveTopics> topics() const;

 private:
  void run();
  void read_subscriptions();  // publisher thread

  static constexpr size_t kMaxQueued = 1 << 20;
  // The queue and the batch being sent swap buffers on every drain, so each keeps the capacity of
  // the largest burst it ever held (a checkpoint of 20 k series is 20 k FINALs, 136 bytes each):
  // beyond this many updates the batch's buffer is freed after sending instead of kept.
  static constexpr size_t kKeptCapacity = 4096;
  zmq::context_t& ctx_;
  SelfMetrics& metrics_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::thread thread_;
  Mutex mu_;
  std::condition_variable cv_;
  std::vector<wire::LiveUpdate> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  mutable Mutex topics_mu_;
  std::shared_ptr<const LiveTopics> topics_ GUARDED_BY(topics_mu_) =
      std::make_shared<const LiveTopics>();
  LiveTopics wanted_;  // publisher thread: the set topics_ copies
  // Read by shard threads in publish(), set once the thread runs: atomic (it was a data race).
  std::atomic<bool> enabled_{false};
};

}  // namespace tally::collector
