// Sender: the SDK end of the ingest protocol (docs/format/wire.md). Holds the bounded buffer
// of unacknowledged batches (serialised, bounded in bytes and in batches), the DEALER socket,
// the set of refs whose definitions the collector has acknowledged, and the retry policy:
//
//   window      batches sent and not yet answered; 1 at start and after any timeout or
//               UNAVAILABLE, +1 per acknowledgement up to kMaxWindow
//   ack timeout attempt n waits T * 2^(n-1) (jittered +0..50 %, at most max_retry_delay)
//               before it is sent again; T = max(ack_timeout, 3 x the smoothed answer time of
//               first deliveries), so a collector that is slow but answering is not flooded
//   UNAVAILABLE nothing is sent for the collector's retry_after_ms (jittered +0..50 %), or for
//               the backoff of the consecutive refusals when it gives no hint
//
// Definitions are added when a batch is first sent, for refs neither acknowledged nor carried by
// an earlier batch still pending, so while one batch with many definitions waits for its ack the
// batches behind it stay small.
//
// Thread-safety: none; used only by the flush thread. Callers read counters() and
// pending() from that thread and publish them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <zmq.hpp>

#include "tally.pb.h"
#include "tally/client.h"

namespace tally::detail {

struct SeriesInfo;

class Sender {
 public:
  // Looks a series up by ref to write its definition; nullptr if the ref is unknown.
  using DefLookup = std::function<const SeriesInfo*(uint32_t ref)>;

  // Batches sent and awaiting an answer at most (after a run of acknowledgements).
  static constexpr size_t kMaxWindow = 8;

  Sender(const ClientOptions& options, uint64_t producer_id, DefLookup defs);
  ~Sender();

  // Takes a batch with points filled in (refs in `refs`, sorted, unique); assigns the next
  // sequence number, adds definitions for refs not yet acknowledged, and queues it. Drops the
  // oldest pending batch if the buffer is over its bound.
  void enqueue(wire::Batch batch, std::vector<uint32_t> refs, size_t points, int64_t now_ms);

  // Bytes the definition of ref would add to the next batch built: 0 when the collector has
  // acknowledged it or a pending batch already carries it. An estimate (at least the encoded
  // size) for splitting a flush under max_batch_bytes.
  size_t def_bytes(uint32_t ref) const;

  // Sends what is due, waits up to wait_ms (real time) for acks or a wake-up, handles acks.
  // wake_fd, when readable, ends the wait early (the caller drains it).
  void pump(int64_t now_ms, int64_t wait_ms, int wake_fd);

  // The earliest clock time at which a pending batch is due to be (re)sent; INT64_MAX if none.
  int64_t next_due_ms() const;
  // True when a batch waits for the socket to accept it (no connected peer).
  bool blocked() const { return blocked_; }

  size_t pending() const { return pending_.size(); }
  size_t pending_bytes() const { return pending_bytes_; }
  size_t in_flight() const { return in_flight_; }
  const ClientStats& counters() const { return counters_; }
  // Errors to report (rejected batches, socket errors) since the last call.
  std::vector<std::string> take_errors();

 private:
  struct Pending {
    uint64_t seq = 0;
    std::string bytes;               // the serialised Batch without sent_unix_ms/dropped_batches
    std::vector<uint32_t> refs;      // refs with points in the batch
    std::vector<uint32_t> def_refs;  // refs whose definitions the batch carries
    size_t points = 0;
    bool sent_once = false;  // definitions decided
    bool awaiting = false;   // sent, no answer yet (counted in in_flight_)
    int64_t due_ms = 0;      // awaiting: the ack deadline; otherwise: the earliest (re)send
    int64_t sent_ms = 0;     // the last delivery
    int attempts = 0;
  };

  void send_due(int64_t now_ms);
  void send_window(int64_t now_ms);
  void handle_ack(const zmq::message_t& msg, int64_t now_ms);
  void add_defs(Pending& p, const std::vector<uint32_t>& refs);
  // Serialised definitions of `refs` p does not carry yet (their refs appended to *encoded).
  std::string encode_defs(const Pending& p, const std::vector<uint32_t>& refs,
                          std::vector<uint32_t>* encoded);
  void commit_defs(Pending& p, const std::string& bytes, const std::vector<uint32_t>& refs);
  void enforce_bounds();
  void forget(Pending& p);  // bookkeeping before p leaves pending_
  void mark_answered(Pending& p, bool sample = true);
  // ack_timeout * 2^(n-1), jittered, capped at max_retry_delay.
  int64_t backoff_ms(int n);
  int64_t jitter(int64_t ms);
  std::deque<Pending>::iterator find(uint64_t seq);

  const ClientOptions& options_;
  const uint64_t producer_id_;
  DefLookup defs_;
  zmq::context_t ctx_;
  std::unique_ptr<zmq::socket_t> socket_;  // null if the endpoint could not be used
  std::deque<Pending> pending_;            // oldest first, seq ascending
  size_t pending_bytes_ = 0;               // sum of pending_[i].bytes.size()
  size_t in_flight_ = 0;                   // pending_ entries with awaiting set
  size_t window_ = 1;
  int64_t hold_until_ms_ = 0;  // no sends before this (UNAVAILABLE)
  int refusals_ = 0;           // consecutive UNAVAILABLE answers
  int64_t srtt_ms_ = 0;
  int64_t last_now_ms_ = 0;  // the clock at the last send or ack handling        // smoothed answer
                             // time of first deliveries (0 = no sample yet)
  std::unordered_set<uint32_t> acked_defs_;
  std::unordered_map<uint32_t, uint32_t> carried_;  // ref -> pending batches carrying its def
  std::mt19937_64 rng_;
  uint64_t next_seq_ = 1;
  bool blocked_ = false;
  ClientStats counters_;
  std::vector<std::string> errors_;
};

}  // namespace tally::detail
