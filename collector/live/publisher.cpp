#include "live/publisher.h"

#include "thread_guard.h"

#include <spdlog/spdlog.h>

#include <map>

namespace tally::collector {

Result<std::string> LivePublisher::start(
    const std::string& endpoint, const std::string& curve_secret_key,
    const std::function<Status(zmq::socket_t&)>& watch_handshakes) {
  if (endpoint == "off") return std::string("off");
  socket_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::pub);
  socket_->set(zmq::sockopt::sndhwm, 100000);
  socket_->set(zmq::sockopt::linger, 0);
  if (!curve_secret_key.empty()) {
    socket_->set(zmq::sockopt::curve_server, 1);
    socket_->set(zmq::sockopt::curve_secretkey, curve_secret_key);
    socket_->set(zmq::sockopt::zap_domain, "live");
    if (watch_handshakes)
      if (auto s = watch_handshakes(*socket_); !s)
        spdlog::warn("event=handshake_monitor_failed listener=live error=\"{}\"", s.message());
  }
  try {
    socket_->bind(endpoint);
  } catch (const zmq::error_t& e) {
    return Status::io_error("cannot bind live endpoint " + endpoint + ": " + e.what());
  }
  std::string bound = socket_->get(zmq::sockopt::last_endpoint);
  thread_ = std::thread([this] { guarded("publisher", metrics_, [this] { run(); }); });
  enabled_.store(true, std::memory_order_release);
  return bound;
}

void LivePublisher::stop() {
  enabled_.store(false, std::memory_order_release);
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  socket_.reset();
}

void LivePublisher::publish(std::vector<wire::LiveUpdate>&& updates) {
  if (!enabled_.load(std::memory_order_acquire) || updates.empty()) return;
  {
    MutexLock lock(mu_);
    if (queue_.size() + updates.size() > kMaxQueued) return;  // nobody is keeping up; drop
    for (auto& u : updates) queue_.push_back(std::move(u));
  }
  cv_.notify_one();
}

void LivePublisher::run() {
  std::vector<wire::LiveUpdate> batch;
  while (true) {
    {
      MutexLock lock(mu_);
      while (!stopping_ && queue_.empty()) lock.wait(cv_);
      if (queue_.empty() && stopping_) return;
      batch.swap(queue_);
    }
    std::map<std::string, wire::LiveBatch> by_metric;
    for (auto& u : batch) {
      auto& lb = by_metric[u.metric()];
      *lb.add_updates() = std::move(u);
    }
    if (batch.capacity() > kKeptCapacity)
      std::vector<wire::LiveUpdate>().swap(batch);  // a burst leaves no buffer behind
    else
      batch.clear();
    for (auto& [metric, lb] : by_metric) {
      std::string payload = lb.SerializeAsString();
      socket_->send(zmq::buffer(metric), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      socket_->send(zmq::buffer(payload), zmq::send_flags::dontwait);
      metrics_.live_updates.fetch_add(static_cast<uint64_t>(lb.updates_size()),
                                      std::memory_order_relaxed);
    }
  }
}

}  // namespace tally::collector
