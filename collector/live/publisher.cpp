#include "live/publisher.h"

#include "thread_guard.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>

namespace tally::collector {

void LiveTopics::add(const std::string& prefix) {
  if (prefix.empty()) {
    all_ = true;
    return;
  }
  if (std::find(prefixes_.begin(), prefixes_.end(), prefix) == prefixes_.end())
    prefixes_.push_back(prefix);
}

void LiveTopics::remove(const std::string& prefix) {
  if (prefix.empty()) {
    all_ = false;
    return;
  }
  prefixes_.erase(std::remove(prefixes_.begin(), prefixes_.end(), prefix), prefixes_.end());
}

Result<std::string> LivePublisher::start(
    const std::string& endpoint, const std::string& curve_secret_key,
    const std::function<Status(zmq::socket_t&)>& watch_handshakes) {
  if (endpoint == "off") return std::string("off");
  // XPUB: as PUB to subscribers, and it passes up the first subscription and the last
  // unsubscription of each topic, which is the set of topics somebody wants.
  socket_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::xpub);
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

std::shared_ptr<const LiveTopics> LivePublisher::topics() const {
  MutexLock lock(topics_mu_);
  return topics_;
}

void LivePublisher::publish(std::vector<wire::LiveUpdate>&& updates) {
  if (!enabled_.load(std::memory_order_acquire) || updates.empty()) return;
  const auto wanted = topics();
  if (wanted->empty()) return;  // nobody listens
  size_t queued = 0;
  {
    MutexLock lock(mu_);
    for (auto& u : updates) {
      if (!wanted->wants(u.metric())) continue;
      if (queue_.size() >= kMaxQueued) break;  // nobody is keeping up; drop
      queue_.push_back(std::move(u));
      ++queued;
    }
  }
  if (queued) cv_.notify_one();
}

void LivePublisher::read_subscriptions() {
  bool changed = false;
  zmq::message_t m;
  while (socket_->recv(m, zmq::recv_flags::dontwait)) {
    const auto* d = static_cast<const char*>(m.data());
    if (m.size() < 1 || (d[0] != 0 && d[0] != 1)) continue;  // not a subscription message
    const std::string prefix(d + 1, m.size() - 1);
    if (d[0] == 1)
      wanted_.add(prefix);
    else
      wanted_.remove(prefix);
    changed = true;
  }
  if (!changed) return;
  auto next = std::make_shared<const LiveTopics>(wanted_);
  metrics_.live_topics.store(static_cast<int64_t>(next->size()), std::memory_order_relaxed);
  MutexLock lock(topics_mu_);
  topics_ = std::move(next);
}

void LivePublisher::run() {
  std::vector<wire::LiveUpdate> batch;
  while (true) {
    read_subscriptions();
    {
      MutexLock lock(mu_);
      // Wakes at least every 100 ms to read new subscriptions.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      while (!stopping_ && queue_.empty())
        if (lock.wait_until(cv_, until) == std::cv_status::timeout) break;
      if (queue_.empty() && stopping_) return;
      batch.swap(queue_);
    }
    if (batch.empty()) continue;
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
