#include "auth/zap_handler.h"

#include <spdlog/spdlog.h>
#include <zmq.h>

#include <filesystem>
#include <vector>

#include "tally/common/curve_keys.h"
#include "thread_guard.h"

namespace tally::collector {

namespace {

std::string z85_decode(const std::string& z85) {
  std::string raw(32, '\0');
  zmq_z85_decode(reinterpret_cast<uint8_t*>(raw.data()), z85.c_str());
  return raw;
}

std::string z85_encode(const std::string& raw) {
  if (raw.size() != 32) return "(not a CURVE key)";
  char out[41];
  zmq_z85_encode(out, reinterpret_cast<const uint8_t*>(raw.data()), 32);
  return out;
}

}  // namespace

Result<std::set<std::string>> load_allowed_keys(const SecurityConfig& s) {
  std::set<std::string> keys;
  for (const auto& k : s.curve_allowed_keys) {
    if (!is_z85_key(k))
      return Status::invalid_argument("curve_allowed_keys: '" + k + "' is not a Z85 public key");
    keys.insert(z85_decode(k));
  }
  if (!s.curve_allowed_keys_dir.empty()) {
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(s.curve_allowed_keys_dir, ec))
      if (e.path().extension() == ".key") files.push_back(e.path());
    if (ec)
      return Status::io_error("curve_allowed_keys_dir " + s.curve_allowed_keys_dir + ": " +
                              ec.message());
    for (const auto& f : files) {
      auto pair = read_curve_key_file(f.string());
      if (!pair) return pair.status();
      keys.insert(z85_decode(pair->public_key));
    }
  }
  return keys;
}

void ZapHandler::set_allowed(std::set<std::string> keys) {
  MutexLock lock(mu_);
  allowed_ = std::move(keys);
}

size_t ZapHandler::allowed_count() const {
  MutexLock lock(mu_);
  return allowed_.size();
}

Status ZapHandler::start() {
  socket_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::rep);
  socket_->set(zmq::sockopt::linger, 0);
  try {
    socket_->bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& e) {
    return Status::internal(std::string("cannot start the ZAP handler: ") + e.what());
  }
  thread_ = std::thread([this] { guarded("zap", metrics_, [this] { run(); }); });
  return Status::ok();
}

void ZapHandler::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  socket_.reset();
}

void ZapHandler::run() {
  zmq::pollitem_t items[] = {{static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0}};
  while (!stopping_) {
    try {
      zmq::poll(items, 1, std::chrono::milliseconds(100));
      if (!(items[0].revents & ZMQ_POLLIN)) continue;
      // Request: version, request id, domain, address, routing id, mechanism, credentials...
      std::vector<zmq::message_t> frames;
      do {
        frames.emplace_back();
        if (!socket_->recv(frames.back(), zmq::recv_flags::none)) break;
      } while (frames.back().more());
      while (frames.size() < 7) frames.emplace_back();  // malformed: refused below, still answered
      const std::string domain = frames[2].to_string();
      const std::string address = frames[3].to_string();
      const std::string mechanism = frames[5].to_string();
      const std::string key = frames[6].to_string();
      bool ok = false;
      if (mechanism == "CURVE") {
        MutexLock lock(mu_);
        ok = allowed_.count(key) > 0;
      }
      if (!ok) {
        if (domain == "live")
          metrics_.auth_refused_live.fetch_add(1, std::memory_order_relaxed);
        else
          metrics_.auth_refused_ingest.fetch_add(1, std::memory_order_relaxed);
        log_refusal(domain, address, mechanism == "CURVE" ? z85_encode(key) : mechanism);
      }
      const std::string status = ok ? "200" : "400";
      const std::string text = ok ? "OK" : "client key not allowed";
      socket_->send(zmq::buffer(std::string("1.0")), zmq::send_flags::sndmore);
      socket_->send(frames[1], zmq::send_flags::sndmore);
      socket_->send(zmq::buffer(status), zmq::send_flags::sndmore);
      socket_->send(zmq::buffer(text), zmq::send_flags::sndmore);
      socket_->send(zmq::buffer(ok ? z85_encode(key) : std::string()), zmq::send_flags::sndmore);
      socket_->send(zmq::message_t(), zmq::send_flags::none);  // no metadata
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      spdlog::error("event=zap_error error=\"{}\"", e.what());
    }
  }
}

void ZapHandler::log_refusal(const std::string& listener, const std::string& address,
                             const std::string& key) {
  const int64_t now = clock_.now_s();
  if (now == last_log_s_) {
    ++suppressed_;
    return;
  }
  last_log_s_ = now;
  spdlog::warn("event=auth_refused listener={} peer={} client_key=\"{}\" suppressed={}", listener,
               address, key, suppressed_);
  suppressed_ = 0;
}

}  // namespace tally::collector
