#include "sender.h"

#include <algorithm>
#include <cstring>

#include "tally/common/curve_keys.h"
#include "tally/common/wire.h"
#include "thread_state.h"
#include "wire_format.h"

namespace tally::detail {

Sender::Sender(const ClientOptions& options, uint64_t producer_id, DefLookup defs)
    : options_(options),
      producer_id_(producer_id),
      defs_(std::move(defs)),
      ctx_(1),
      rng_(producer_id) {
  try {
    auto s = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    s->set(zmq::sockopt::linger, 0);  // delivery is ours (close_timeout), not ZeroMQ's
    s->set(zmq::sockopt::immediate, 1);
    s->set(zmq::sockopt::sndhwm, kSendHighWaterMark);
    s->set(zmq::sockopt::reconnect_ivl, kReconnectIvlMs);
    s->set(zmq::sockopt::reconnect_ivl_max, kReconnectIvlMaxMs);
    auto keys = resolve_curve_client_keys(
        {options_.curve_server_key, options_.curve_public_key, options_.curve_secret_key});
    if (!keys) {
      ++counters_.transport_errors;
      errors_.push_back("CURVE keys: " + keys.status().message() + "; nothing is sent");
      return;
    }
    if (auto st = apply_curve_client(s->handle(), *keys); !st) {
      ++counters_.transport_errors;
      errors_.push_back(st.message() + "; nothing is sent");
      return;
    }
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
  p.seq = next_seq_++;
  batch.set_producer_id(producer_id_);
  batch.set_seq(p.seq);
  batch.clear_defs();
  batch.SerializeToString(&p.bytes);  // fields in number order: producer_id and seq come first
  p.points = points;
  p.due_ms = now_ms;
  p.refs = std::move(refs);
  ++counters_.batches_sent;
  counters_.points_sent += points;
  pending_bytes_ += p.bytes.size();
  pending_.push_back(std::move(p));
  enforce_bounds();
}

void Sender::enforce_bounds() {
  // Oldest first, never the newest, and never a batch awaiting its answer (the collector may have
  // taken it): those become droppable once answered or timed out, so the bound is exceeded by
  // at most the batches in flight.
  const size_t max_batches = std::max<size_t>(1, options_.max_pending_batches);
  auto over = [&] {
    return pending_.size() > max_batches || pending_bytes_ > options_.max_pending_bytes;
  };
  for (auto it = pending_.begin(); over() && pending_.size() > 1 && it + 1 != pending_.end();) {
    if (it->awaiting) {
      ++it;
      continue;
    }
    ++counters_.batches_dropped;
    counters_.points_dropped += it->points;
    forget(*it);
    it = pending_.erase(it);
  }
}

void Sender::forget(Pending& p) {
  mark_answered(p);
  pending_bytes_ -= p.bytes.size();
  for (uint32_t r : p.def_refs) {
    auto it = carried_.find(r);
    if (it != carried_.end() && --it->second == 0) carried_.erase(it);
  }
}

void Sender::mark_answered(Pending& p, bool sample) {
  if (!p.awaiting) return;
  if (sample && p.attempts == 1 && last_now_ms_ >= p.sent_ms) {  // Karn: only unambiguous samples
    const int64_t rtt = last_now_ms_ - p.sent_ms;
    srtt_ms_ = srtt_ms_ == 0 ? std::max<int64_t>(1, rtt) : (7 * srtt_ms_ + rtt) / 8;
  }
  p.awaiting = false;
  --in_flight_;
}

int64_t Sender::jitter(int64_t ms) {
  // +0..50 %: never earlier than asked, and clients that failed together spread out.
  std::uniform_int_distribution<int64_t> d(0, std::max<int64_t>(0, ms / 2));
  return ms + d(rng_);
}

int64_t Sender::backoff_ms(int n) {
  const int64_t cap = std::max<int64_t>(1, options_.max_retry_delay.count());
  const int64_t base =
      std::min(cap, std::max<int64_t>({1, options_.ack_timeout.count(), 3 * srtt_ms_}));
  int64_t d = base;
  for (int i = 1; i < n && d < cap; ++i) d *= 2;
  d = std::min(d, cap);
  return n <= 1 ? d : std::min(jitter(d), cap);
}

size_t Sender::def_bytes(uint32_t ref) const {
  if (acked_defs_.contains(ref) || carried_.contains(ref)) return 0;
  const SeriesInfo* s = defs_(ref);
  if (!s) return 0;
  // Field tags, lengths and varints: at most 3 bytes of framing a string below 2 MiB, 6 for a
  // ref, 2 for the kind, 4 for the def and for each tag message.
  size_t n = 4 + 6 + 2 + 3 + s->metric.size();
  for (const Tag& t : s->tags) n += 4 + 3 + t.key.size() + 3 + t.value.size();
  return n;
}

std::string Sender::encode_defs(const Pending& p, const std::vector<uint32_t>& refs,
                                std::vector<uint32_t>* encoded) {
  wire::Batch extra;  // only defs: appended to the serialised batch (repeated fields concatenate)
  for (uint32_t r : refs) {
    if (std::find(p.def_refs.begin(), p.def_refs.end(), r) != p.def_refs.end()) continue;
    if (std::find(encoded->begin(), encoded->end(), r) != encoded->end()) continue;
    const SeriesInfo* s = defs_(r);
    if (!s) continue;
    wire::SeriesDef* d = extra.add_defs();
    d->set_ref(r);
    d->set_metric(s->metric);
    for (const Tag& t : s->tags) {
      wire::Tag* wt = d->add_tags();
      wt->set_key(t.key);
      wt->set_value(t.value);
    }
    d->set_kind(kind_to_proto(s->kind));
    encoded->push_back(r);
  }
  return extra.defs_size() ? extra.SerializeAsString() : std::string();
}

void Sender::commit_defs(Pending& p, const std::string& bytes, const std::vector<uint32_t>& refs) {
  p.bytes += bytes;
  pending_bytes_ += bytes.size();
  for (uint32_t r : refs) {
    p.def_refs.push_back(r);
    ++carried_[r];
  }
}

void Sender::add_defs(Pending& p, const std::vector<uint32_t>& refs) {
  std::vector<uint32_t> encoded;
  std::string bytes = encode_defs(p, refs, &encoded);
  commit_defs(p, bytes, encoded);
}

int64_t Sender::next_due_ms() const {
  int64_t due = INT64_MAX;
  for (const Pending& p : pending_) {
    if (p.awaiting)
      due = std::min(due, p.due_ms);
    else if (in_flight_ < window_)
      due = std::min(due, std::max(p.due_ms, hold_until_ms_));
  }
  return due;
}

void Sender::send_due(int64_t now_ms) {
  last_now_ms_ = now_ms;
  blocked_ = false;
  if (!socket_) {
    blocked_ = !pending_.empty();
    return;
  }
  // Deliveries not answered in time: send again (their next deadline is longer), one at a time.
  for (Pending& p : pending_) {
    if (!p.awaiting || p.due_ms > now_ms) continue;
    mark_answered(p, false);  // a timeout is no answer-time sample
    ++counters_.ack_timeouts;
    window_ = 1;
    p.due_ms = now_ms;
  }
  if (now_ms >= hold_until_ms_) send_window(now_ms);
  enforce_bounds();  // definitions added to what was sent count too
}

void Sender::send_window(int64_t now_ms) {
  std::string trailer;
  for (Pending& p : pending_) {
    if (in_flight_ >= window_) return;
    if (p.awaiting || p.due_ms > now_ms) continue;
    // First delivery: definitions for refs the collector has not acknowledged and no earlier
    // pending batch carries. Kept only once the socket has taken the frame.
    std::string defs;
    std::vector<uint32_t> def_refs;
    if (!p.sent_once) {
      std::vector<uint32_t> need;
      for (uint32_t r : p.refs)
        if (!acked_defs_.contains(r) && !carried_.contains(r)) need.push_back(r);
      defs = encode_defs(p, need, &def_refs);
    }
    wire::Batch tail;  // per delivery; a later occurrence of a scalar field wins
    tail.set_sent_unix_ms(now_ms);
    tail.set_dropped_batches(counters_.batches_dropped);
    tail.SerializeToString(&trailer);
    zmq::message_t msg(p.bytes.size() + defs.size() + trailer.size());
    char* out = static_cast<char*>(msg.data());
    std::memcpy(out, p.bytes.data(), p.bytes.size());
    std::memcpy(out + p.bytes.size(), defs.data(), defs.size());
    std::memcpy(out + p.bytes.size() + defs.size(), trailer.data(), trailer.size());
    if (!socket_->send(msg, zmq::send_flags::dontwait)) {
      blocked_ = true;  // no connected collector (immediate) or its queue is full
      return;
    }
    if (!p.sent_once) {
      commit_defs(p, defs, def_refs);
      p.sent_once = true;
    }
    if (p.attempts > 0) ++counters_.batches_resent;
    ++p.attempts;
    p.awaiting = true;
    ++in_flight_;
    p.sent_ms = now_ms;
    p.due_ms = now_ms + backoff_ms(p.attempts);
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
  bool answered = false;
  while (socket_->recv(msg, zmq::recv_flags::dontwait)) {
    handle_ack(msg, now_ms);
    answered = true;
  }
  if (answered || (items[1].revents & ZMQ_POLLOUT)) send_due(now_ms);
}

std::deque<Sender::Pending>::iterator Sender::find(uint64_t seq) {
  auto it = std::lower_bound(pending_.begin(), pending_.end(), seq,
                             [](const Pending& p, uint64_t s) { return p.seq < s; });
  return it != pending_.end() && it->seq == seq ? it : pending_.end();
}

void Sender::handle_ack(const zmq::message_t& msg, int64_t now_ms) {
  last_now_ms_ = now_ms;
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
  auto erase = [&] {
    forget(*p);
    pending_.erase(it);
  };
  switch (ack.code()) {
    case wire::Ack::OK:
    case wire::Ack::DUPLICATE:
      for (uint32_t r : p->def_refs) acked_defs_.insert(r);
      ++counters_.batches_acked;
      window_ = std::min(window_ + 1, kMaxWindow);
      refusals_ = 0;
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
      mark_answered(*p);
      std::vector<uint32_t> refs(ack.unknown_refs().begin(), ack.unknown_refs().end());
      if (refs.empty()) refs = p->refs;  // the collector did not say which: define them all
      bool already = true;
      for (uint32_t r : refs) {
        acked_defs_.erase(r);
        if (std::find(p->def_refs.begin(), p->def_refs.end(), r) == p->def_refs.end())
          already = false;
      }
      add_defs(*p, refs);
      p->sent_once = true;
      // Resend at once with the definitions; if it already carried them, the collector is not
      // keeping up, so back off rather than loop.
      p->due_ms = already ? now_ms + backoff_ms(p->attempts) : now_ms;
      return;
    }
    case wire::Ack::UNAVAILABLE: {
      ++counters_.unavailable_acks;
      mark_answered(*p);
      window_ = 1;
      ++refusals_;
      const int64_t cap = std::max<int64_t>(1, options_.max_retry_delay.count());
      const int64_t wait = ack.retry_after_ms() > 0
                               ? std::min<int64_t>(jitter(ack.retry_after_ms()), cap)
                               : backoff_ms(refusals_);
      p->due_ms = now_ms + wait;
      hold_until_ms_ = std::max(hold_until_ms_, now_ms + wait);
      return;
    }
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
