// Sender: the SDK end of the ingest protocol (docs/format/wire.md). Holds the bounded buffer
// of unacknowledged batches, the DEALER socket, the set of refs whose definitions the collector
// has acknowledged, and the retry policy.
//
// Thread-safety: none; used only by the flush thread. Callers read counters() and
// pending() from that thread and publish them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
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

  Sender(const ClientOptions& options, uint64_t producer_id, DefLookup defs);
  ~Sender();

  // Takes a batch with points filled in (refs in `refs`, sorted, unique); assigns the next
  // sequence number, adds definitions for refs not yet acknowledged, and queues it. Drops the
  // oldest pending batch if the buffer is over its bound.
  void enqueue(wire::Batch batch, std::vector<uint32_t> refs, size_t points, int64_t now_ms);

  // Sends what is due, waits up to wait_ms (real time) for acks or a wake-up, handles acks.
  // wake_fd, when readable, ends the wait early (the caller drains it).
  void pump(int64_t now_ms, int64_t wait_ms, int wake_fd);

  // The earliest clock time at which a pending batch is due to be (re)sent; INT64_MAX if none.
  int64_t next_due_ms() const;
  // True when a batch waits for the socket to accept it (no connected peer).
  bool blocked() const { return blocked_; }

  size_t pending() const { return pending_.size(); }
  const ClientStats& counters() const { return counters_; }
  // Errors to report (rejected batches, socket errors) since the last call.
  std::vector<std::string> take_errors();

 private:
  struct Pending {
    wire::Batch batch;
    std::vector<uint32_t> refs;      // refs with points in the batch
    std::vector<uint32_t> def_refs;  // refs whose definitions the batch carries
    size_t points = 0;
    int64_t due_ms = 0;  // (re)send when the clock reaches this
    int attempts = 0;
  };

  void send_due(int64_t now_ms);
  void handle_ack(const zmq::message_t& msg, int64_t now_ms);
  void add_defs(Pending& p, const std::vector<uint32_t>& refs);
  std::deque<Pending>::iterator find(uint64_t seq);

  const ClientOptions& options_;
  const uint64_t producer_id_;
  DefLookup defs_;
  zmq::context_t ctx_;
  std::unique_ptr<zmq::socket_t> socket_;  // null if the endpoint could not be used
  std::deque<Pending> pending_;            // oldest first, seq ascending
  std::unordered_set<uint32_t> acked_defs_;
  uint64_t next_seq_ = 1;
  bool blocked_ = false;
  ClientStats counters_;
  std::vector<std::string> errors_;
};

}  // namespace tally::detail
