#include "sender.h"

#include <algorithm>

#include "tally/common/wire.h"
#include "thread_state.h"
#include "wire_format.h"

namespace tally::detail {

Sender::Sender(const ClientOptions& options, uint64_t producer_id, DefLookup defs)
    : options_(options), producer_id_(producer_id), defs_(std::move(defs)), ctx_(1) {
  try {
    auto s = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    s->set(zmq::sockopt::linger, 0);  // delivery is ours (close_timeout), not ZeroMQ's
    s->set(zmq::sockopt::immediate, 1);
    s->set(zmq::sockopt::sndhwm, kSendHighWaterMark);
    s->set(zmq::sockopt::reconnect_ivl, kReconnectIvlMs);
    s->set(zmq::sockopt::reconnect_ivl_max, kReconnectIvlMaxMs);
    s->connect(options_.endpoint);
    socket_ = std::move(s);
  } catch (const zmq::error_t& e) {
    ++counters_.transport_errors;
    errors_.push_back("cannot connect to '" + options_.endpoint + "': " + e.what() +
                      "; recording continues, nothing is sent");
  }
}

Sender::~Sender() {
  socket_.reset();
}

void Sender::enqueue(wire::Batch batch, std::vector<uint32_t> refs, size_t points, int64_t now_ms) {
  Pending p;
  p.batch = std::move(batch);
  p.batch.set_producer_id(producer_id_);
  p.batch.set_seq(next_seq_++);
  p.points = points;
  p.due_ms = now_ms;
  std::vector<uint32_t> need;
  for (uint32_t r : refs)
    if (!acked_defs_.contains(r)) need.push_back(r);
  p.refs = std::move(refs);
  add_defs(p, need);
  ++counters_.batches_sent;
  counters_.points_sent += points;
  pending_.push_back(std::move(p));
  size_t bound = std::max<size_t>(1, options_.max_pending_batches);
  while (pending_.size() > bound) {
    ++counters_.batches_dropped;
    counters_.points_dropped += pending_.front().points;
    pending_.pop_front();
  }
}

void Sender::add_defs(Pending& p, const std::vector<uint32_t>& refs) {
  for (uint32_t r : refs) {
    if (std::find(p.def_refs.begin(), p.def_refs.end(), r) != p.def_refs.end()) continue;
    const SeriesInfo* s = defs_(r);
    if (!s) continue;
    wire::SeriesDef* d = p.batch.add_defs();
    d->set_ref(r);
    d->set_metric(s->metric);
    for (const Tag& t : s->tags) {
      wire::Tag* wt = d->add_tags();
      wt->set_key(t.key);
      wt->set_value(t.value);
    }
    d->set_kind(kind_to_proto(s->kind));
    p.def_refs.push_back(r);
  }
}

int64_t Sender::next_due_ms() const {
  int64_t due = INT64_MAX;
  for (const Pending& p : pending_) due = std::min(due, p.due_ms);
  return due;
}

void Sender::send_due(int64_t now_ms) {
  blocked_ = false;
  if (!socket_) {
    blocked_ = !pending_.empty();
    return;
  }
  std::string bytes;
  for (Pending& p : pending_) {
    if (p.due_ms > now_ms) continue;
    p.batch.set_sent_unix_ms(now_ms);
    p.batch.set_dropped_batches(counters_.batches_dropped);
    p.batch.SerializeToString(&bytes);
    zmq::message_t msg(bytes.data(), bytes.size());
    if (!socket_->send(msg, zmq::send_flags::dontwait)) {
      blocked_ = true;  // no connected collector (immediate) or its queue is full
      return;
    }
    if (p.attempts > 0) ++counters_.batches_resent;
    ++p.attempts;
    p.due_ms = now_ms + options_.ack_timeout.count();
  }
}

void Sender::pump(int64_t now_ms, int64_t wait_ms, int wake_fd) {
  send_due(now_ms);
  zmq::pollitem_t items[2];
  size_t n = 0;
  items[n++] = {nullptr, wake_fd, ZMQ_POLLIN, 0};
  if (socket_) {
    short events = ZMQ_POLLIN;
    if (blocked_) events |= ZMQ_POLLOUT;
    items[n++] = {socket_->handle(), 0, events, 0};
  }
  zmq::poll(items, n, std::chrono::milliseconds(std::max<int64_t>(0, wait_ms)));
  if (!socket_) return;
  zmq::message_t msg;
  while (socket_->recv(msg, zmq::recv_flags::dontwait)) handle_ack(msg, now_ms);
  if (items[1].revents & ZMQ_POLLOUT) send_due(now_ms);
}

std::deque<Sender::Pending>::iterator Sender::find(uint64_t seq) {
  auto it = std::lower_bound(pending_.begin(), pending_.end(), seq,
                             [](const Pending& p, uint64_t s) { return p.batch.seq() < s; });
  return it != pending_.end() && it->batch.seq() == seq ? it : pending_.end();
}

void Sender::handle_ack(const zmq::message_t& msg, int64_t now_ms) {
  wire::Ack ack;
  if (msg.more() || !ack.ParseFromArray(msg.data(), static_cast<int>(msg.size()))) {
    ++counters_.transport_errors;
    errors_.push_back("undecodable ack from the collector (" + std::to_string(msg.size()) +
                      " bytes)");
    return;
  }
  if (ack.producer_id() != producer_id_) {
    ++counters_.transport_errors;
    errors_.push_back("ack for another producer id " + std::to_string(ack.producer_id()));
    return;
  }
  auto it = find(ack.seq());
  if (it == pending_.end()) return;  // already resolved (an ack for a resent copy) or dropped
  Pending* p = &*it;
  auto erase = [&] { pending_.erase(it); };
  switch (ack.code()) {
    case wire::Ack::OK:
    case wire::Ack::DUPLICATE:
      for (uint32_t r : p->def_refs) acked_defs_.insert(r);
      ++counters_.batches_acked;
      erase();
      return;
    case wire::Ack::INVALID:
      ++counters_.batches_rejected;
      counters_.points_dropped += p->points;
      errors_.push_back("collector rejected batch " + std::to_string(ack.seq()) + ": " +
                        (ack.reason().empty() ? "no reason given" : ack.reason()));
      erase();
      return;
    case wire::Ack::UNKNOWN_REF: {
      ++counters_.unknown_ref_acks;
      std::vector<uint32_t> refs(ack.unknown_refs().begin(), ack.unknown_refs().end());
      if (refs.empty()) refs = p->refs;  // the collector did not say which: define them all
      bool already = true;
      for (uint32_t r : refs) {
        acked_defs_.erase(r);
        if (std::find(p->def_refs.begin(), p->def_refs.end(), r) == p->def_refs.end())
          already = false;
      }
      add_defs(*p, refs);
      // Resend at once with the definitions; if it already carried them, the collector is not
      // keeping up, so wait an ack timeout rather than loop.
      p->due_ms = already ? now_ms + options_.ack_timeout.count() : now_ms;
      return;
    }
    case wire::Ack::UNAVAILABLE:
      ++counters_.unavailable_acks;
      p->due_ms = now_ms + options_.ack_timeout.count();
      return;
    default:
      ++counters_.transport_errors;
      errors_.push_back("ack with unknown code " + std::to_string(static_cast<int>(ack.code())));
      return;  // resent after the ack timeout
  }
}

std::vector<std::string> Sender::take_errors() {
  return std::exchange(errors_, {});
}

}  // namespace tally::detail
