// ZapHandler: the ZeroMQ authentication handler (ZAP, RFC 27) of the collector's context. Every
// CURVE handshake on the ingest ROUTER and the live PUB socket asks it; it answers 200 for an
// allowed client public key and 400 for any other, counting each refusal per listener
// (tally_auth_refused_total{listener}) and logging them at most once a second with the count of
// those not logged. The allowed set is replaced whole by set_allowed() (SIGHUP, admin reload).
// A plain (NULL mechanism) client never reaches it: the CURVE server refuses its handshake. So
// that those are counted too, watch() puts a ZeroMQ socket monitor on each CURVE socket; its
// handshake failures (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, _PROTOCOL: a client without keys, a
// client with the wrong server key, a broken greeting) count as reason="handshake", ZAP's own
// refusals as reason="key" (their _AUTH events are not counted again); each listener's refusals
// are logged at most once a second.
// Thread-safety: set_allowed()/allowed_count() from any thread; watch() from the thread that owns
// the watched socket; start()/stop() from the owner.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "auth/security_config.h"
#include "self_metrics.h"
#include "tally/common/mutex.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

// The allowed client keys (32 raw bytes each): curve_allowed_keys plus the public-key of every
// *.key file in curve_allowed_keys_dir. A file that cannot be read fails the whole load (a reload
// keeps the previous set rather than half of a new one).
[[nodiscard]] Result<std::set<std::string>> load_allowed_keys(const SecurityConfig& s);

class ZapHandler {
 public:
  ZapHandler(zmq::context_t& ctx, SelfMetrics& metrics, const Clock& clock)
      : ctx_(ctx), metrics_(metrics), clock_(clock) {}
  ~ZapHandler() { stop(); }

  void set_allowed(std::set<std::string> keys);
  size_t allowed_count() const;
  // Binds inproc://zeromq.zap.01 in the context; must run before a CURVE socket binds.
  [[nodiscard]] Status start();
  void stop();
  // Counts the failed handshakes of `socket` (a CURVE server) for `listener` ("ingest", "live").
  // Call on the thread that owns `socket`, before it binds; after start().
  [[nodiscard]] Status watch(zmq::socket_t& socket, const std::string& listener);

 private:
  struct Monitor {
    std::string listener;
    std::unique_ptr<zmq::socket_t> reader;  // PAIR connected to the socket's monitor endpoint
  };
  void run();
  void read_monitor(Monitor& m);
  void count_refusal(const std::string& listener, bool handshake);
  void log_refusal(const std::string& listener, const std::string& what);

  zmq::context_t& ctx_;
  SelfMetrics& metrics_;
  const Clock& clock_;
  mutable Mutex mu_;
  std::set<std::string> allowed_ GUARDED_BY(mu_);
  std::vector<Monitor> new_monitors_ GUARDED_BY(mu_);  // watch() hands them to the ZAP thread
  std::vector<Monitor> monitors_;  // ZAP thread only (and stop() after the join)
  std::unique_ptr<zmq::socket_t> socket_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  struct LogLimit {
    int64_t last_s = 0;
    uint64_t suppressed = 0;
  };
  std::map<std::string, LogLimit> log_limits_;  // per listener; ZAP thread only
};

}  // namespace tally::collector
