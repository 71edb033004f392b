#include "auth/zap_handler.h"

#include <spdlog/spdlog.h>
#include <zmq.h>

#include <cstring>
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
  monitors_.clear();
  MutexLock lock(mu_);
  new_monitors_.clear();
}

Status ZapHandler::watch(zmq::socket_t& socket, const std::string& listener) {
  const std::string endpoint = "inproc://tally.handshake." + listener;
  if (zmq_socket_monitor(
          socket.handle(), endpoint.c_str(),
          ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0)
    return Status::internal("cannot monitor the " + listener +
                            " socket: " + zmq_strerror(zmq_errno()));
  // Connected here, before the socket binds, so that no early event is lost; then handed to the
  // ZAP thread (a mutex is the full barrier ZeroMQ asks for when a socket changes threads).
  Monitor m{listener, std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::pair)};
  try {
    m.reader->set(zmq::sockopt::linger, 0);
    m.reader->connect(endpoint);
  } catch (const zmq::error_t& e) {
    return Status::internal("cannot monitor the " + listener + " socket: " + e.what());
  }
  MutexLock lock(mu_);
  new_monitors_.push_back(std::move(m));
  return Status::ok();
}

void ZapHandler::count_refusal(const std::string& listener, bool handshake) {
  const bool live = listener == "live";
  auto& counter = handshake ? (live ? metrics_.auth_refused_live_handshake
                                    : metrics_.auth_refused_ingest_handshake)
                            : (live ? metrics_.auth_refused_live : metrics_.auth_refused_ingest);
  counter.fetch_add(1, std::memory_order_relaxed);
}

// A monitor event: frame 1 is the event (uint16) and its value (uint32), frame 2 the endpoint.
void ZapHandler::read_monitor(Monitor& m) {
  zmq::message_t event, endpoint;
  while (m.reader->recv(event, zmq::recv_flags::dontwait)) {
    if (event.more()) (void)m.reader->recv(endpoint, zmq::recv_flags::none);
    if (event.size() < 6) continue;
    uint16_t id = 0;
    uint32_t value = 0;
    std::memcpy(&id, event.data(), sizeof id);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
    if (id != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && id != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
      continue;
    count_refusal(m.listener, true);
    std::string error = "no_detail";
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
      if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        error = "mechanism_mismatch";  // a client without CURVE keys
      else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        error = "cryptographic";  // e.g. a client that has the wrong server key
      else
        error = fmt::format("protocol_0x{:x}", value);
    }
    log_refusal(m.listener,
                fmt::format("reason=handshake error={} endpoint={}", error, endpoint.to_string()));
  }
}

void ZapHandler::run() {
  std::vector<zmq::pollitem_t> items;
  while (!stopping_) {
    try {
      {
        MutexLock lock(mu_);
        for (auto& m : new_monitors_) monitors_.push_back(std::move(m));
        new_monitors_.clear();
      }
      items.assign(1, {static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0});
      for (auto& m : monitors_) items.push_back({static_cast<void*>(*m.reader), 0, ZMQ_POLLIN, 0});
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
      for (size_t i = 0; i < monitors_.size(); ++i)
        if (items[i + 1].revents & ZMQ_POLLIN) read_monitor(monitors_[i]);
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
        count_refusal(domain, false);
        log_refusal(domain, fmt::format("reason=key peer={} client_key=\"{}\"", address,
                                        mechanism == "CURVE" ? z85_encode(key) : mechanism));
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

void ZapHandler::log_refusal(const std::string& listener, const std::string& what) {
  const int64_t now = clock_.now_s();
  LogLimit& limit = log_limits_[listener];  // two entries: ingest, live
  if (now == limit.last_s) {
    ++limit.suppressed;
    return;
  }
  limit.last_s = now;
  spdlog::warn("event=auth_refused listener={} {} suppressed={}", listener, what, limit.suppressed);
  limit.suppressed = 0;
}

}  // namespace tally::collector
