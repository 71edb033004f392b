// tally::Client: counts events and observes values from a service and ships them to a
// tally-collector. One Client per process is the usual shape.
//
// Recording: every thread pre-aggregates into its own slots (no lock or cache line shared
// between threads on the hot path); a background flush thread samples the slots at every
// 1 s boundary of the client's clock, turns the deltas into 1 s buckets and sends one
// protobuf Batch per flush interval over a ZeroMQ DEALER socket (docs/format/wire.md), split into
// several when it would pass max_batch_bytes (a first flush of many new series). Batches
// are resent with the same sequence number until the collector acknowledges them. Unacknowledged
// batches are kept up to max_pending_bytes (serialised size) and max_pending_batches; beyond
// either bound the oldest are dropped and counted.
//
// Backpressure: while the collector is slow the client keeps one batch in flight (the window
// grows again, one batch per acknowledgement, once acks come back); a batch not acknowledged
// within ack_timeout is resent after exponentially growing, jittered waits (ack_timeout, 2x,
// 4x ... up to max_retry_delay); an UNAVAILABLE answer pauses sending for the collector's
// retry-after hint (jittered), or the same backoff when it gives none.
//
// Thread-safety: every method of Client and of the handles is thread-safe. Handles are small
// values (copy them freely) that point into the Client: they must not outlive it. Recording
// never blocks, never throws and, once a thread has touched a series, never allocates.
//
// Invalid input (a bad metric name or tag, a non-finite value, a metric used with two kinds,
// too many series) never throws: the value is dropped and counted in stats().invalid_values,
// and last_error() says why. A handle made from invalid input is a valid object whose
// valid() is false; it drops (and counts) everything recorded through it.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "tally/common/endpoints.h"
#include "tally/common/series_key.h"
#include "tally/common/status.h"
#include "tally/common/time_bucket.h"

namespace tally {

namespace detail {
class ClientCore;
}

// A non-owning tag, for calls that must not allocate.
struct TagView {
  std::string_view key;
  std::string_view value;
};

// A non-owning list of tags: a braced list `{{"region", "eu"}, {"status", "500"}}`, a
// std::span<const TagView> or a tally::Tags vector. Order does not matter. Only valid for the
// duration of the call it is passed to.
class TagSpan {
 public:
  TagSpan() = default;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"  // by design: a parameter type, see above
#endif
  TagSpan(std::initializer_list<TagView> tags)
      : views_(tags.begin()), size_(tags.size()) {}  // NOLINT
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  TagSpan(std::span<const TagView> tags) : views_(tags.data()), size_(tags.size()) {}  // NOLINT
  TagSpan(const Tags& tags) : owned_(tags.data()), size_(tags.size()) {}               // NOLINT

  size_t size() const {
    return size_;
  }
  bool empty() const {
    return size_ == 0;
  }
  TagView operator[](size_t i) const {
    return views_ ? views_[i] : TagView{owned_[i].key, owned_[i].value};
  }
  Tags to_tags() const;

 private:
  const TagView* views_ = nullptr;
  const Tag* owned_ = nullptr;
  size_t size_ = 0;
};

struct ClientOptions {
  // ZeroMQ endpoint of the collector's ingest ROUTER socket.
  std::string endpoint = kDefaultIngestEndpoint;
  // How often a batch is built and sent. Buckets are always 1 s; a longer interval puts
  // several seconds into one batch. A multiple of 1 s keeps batches aligned to seconds.
  std::chrono::milliseconds flush_interval{1000};
  // Bytes of unacknowledged batches (their serialised size, definitions included) kept for
  // resending; beyond this the oldest are dropped and counted (batches_dropped, points_dropped).
  // The newest batch is always kept, even when it alone is larger, and so are batches awaiting
  // their answer (at most 8), which become droppable once answered or timed out.
  size_t max_pending_bytes = 64u << 20;
  // A second bound, in batches; the byte bound above is the one that bounds memory. Kept for
  // compatibility: prefer max_pending_bytes.
  size_t max_pending_batches = 1000;
  // A batch's serialised size (its points and the definitions of series the collector has not
  // acknowledged yet) stays under this: a flush with more is split into several batches. Keep it
  // at or below the collector's max_batch_bytes (4 MiB by default), which refuses a larger frame
  // unread, so the batch would never be acknowledged. A single point larger than this (a
  // distribution with a huge sketch) still goes alone in one batch.
  size_t max_batch_bytes = 1u << 20;
  // A batch sent this long ago (client clock) without an ack is sent again, same sequence; each
  // further attempt waits twice as long (with jitter), up to max_retry_delay.
  std::chrono::milliseconds ack_timeout{2000};
  // The longest wait between two deliveries of one batch, and the longest pause an UNAVAILABLE
  // answer (or its retry-after hint) can impose.
  std::chrono::milliseconds max_retry_delay{30000};
  // How long the destructor keeps trying to deliver what is pending (real time).
  std::chrono::milliseconds close_timeout{5000};
  // Identifies this client to the collector; 0 picks a random non-zero 64-bit id.
  uint64_t producer_id = 0;
  // Distinct series (metric + tags) this client accepts; more are rejected as invalid, so a
  // tag with unbounded values cannot eat the process's memory.
  size_t max_series = 100000;
  // CurveZMQ (docs/SECURITY.md): the collector's public key and this client's key pair, Z85 (40
  // characters each, from `tally keygen`). Empty fields are taken from the environment:
  // TALLY_CURVE_SERVER_KEY (or TALLY_CURVE_SERVER_KEY_FILE), and TALLY_CURVE_KEY_FILE (the
  // client's .key_secret file) or TALLY_CURVE_PUBLIC_KEY + TALLY_CURVE_SECRET_KEY. All empty =
  // plain ZeroMQ. Keys that are incomplete or malformed: nothing is sent and last_error() says
  // why (like a malformed endpoint). A collector that does not allow the key never answers: the
  // batches stay pending (and are dropped beyond max_pending_bytes, counted).
  std::string curve_server_key;
  std::string curve_public_key;
  std::string curve_secret_key;
  // Bucket times, flush and ack deadlines read this clock. nullptr = the system clock. Tests
  // pass a ManualClock; it must outlive the Client.
  const Clock* clock = nullptr;
};

struct ClientStats {
  uint64_t series = 0;             // distinct series defined
  uint64_t batches_sent = 0;       // batches built (= the last sequence number used)
  uint64_t batches_acked = 0;      // acknowledged OK or DUPLICATE
  uint64_t batches_resent = 0;     // retransmissions (ack timeout, UNKNOWN_REF, UNAVAILABLE)
  uint64_t batches_dropped = 0;    // dropped unacknowledged because the buffer was full
  uint64_t batches_rejected = 0;   // answered INVALID; not resent (see last_error())
  uint64_t batches_pending = 0;    // built, not yet acknowledged
  uint64_t pending_bytes = 0;      // serialised bytes of the pending batches (max_pending_bytes)
  uint64_t batches_in_flight = 0;  // sent and awaiting an answer
  uint64_t ack_timeouts = 0;       // deliveries not answered within their (backed-off) timeout
  uint64_t unknown_ref_acks = 0;   // UNKNOWN_REF answers (definitions were resent)
  uint64_t unavailable_acks = 0;   // UNAVAILABLE answers (resent later)
  uint64_t points_sent = 0;        // points in the batches built
  uint64_t points_dropped = 0;     // points in dropped or rejected batches
  uint64_t invalid_values = 0;     // recordings dropped as invalid
  uint64_t transport_errors = 0;   // socket errors and undecodable acks
};

// Adds to a counter series. add() costs a few nanoseconds and never allocates once the
// calling thread has used this series.
class Counter {
 public:
  Counter() = default;  // detached: drops everything silently
  void add(double value = 1.0) const;
  bool valid() const;

 private:
  friend class Client;
  Counter(detail::ClientCore* core, uint32_t ref) : core_(core), ref_(ref) {}
  detail::ClientCore* core_ = nullptr;
  uint32_t ref_ = UINT32_MAX;
};

// Sets a gauge series; per 1 s bucket the collector receives last, min, max, sum and count.
class Gauge {
 public:
  Gauge() = default;
  void set(double value) const;
  bool valid() const;

 private:
  friend class Client;
  Gauge(detail::ClientCore* core, uint32_t ref) : core_(core), ref_(ref) {}
  detail::ClientCore* core_ = nullptr;
  uint32_t ref_ = UINT32_MAX;
};

// Observes values of a distribution series (count, sum, min, max and a 1% sketch per bucket).
class Distribution {
 public:
  Distribution() = default;
  void observe(double value) const;
  bool valid() const;

 private:
  friend class Client;
  Distribution(detail::ClientCore* core, uint32_t ref) : core_(core), ref_(ref) {}
  detail::ClientCore* core_ = nullptr;
  uint32_t ref_ = UINT32_MAX;
};

class Client {
 public:
  // Starts the flush thread and connects (ZeroMQ connects lazily: no collector is needed yet).
  // A malformed endpoint does not throw: the client records and buffers, never sends, and
  // last_error() says why.
  explicit Client(ClientOptions options = {});
  // Takes a last sample and tries to deliver everything pending for up to close_timeout.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Pre-bound handles: look the series up once, then record with no lookup at all.
  Counter counter(std::string_view metric, TagSpan tags = {});
  Gauge gauge(std::string_view metric, TagSpan tags = {});
  Distribution distribution(std::string_view metric, TagSpan tags = {});

  // Direct calls: find the series in a per-thread table by a hash of metric and tags (no
  // allocation once the thread has seen the series).
  void count(std::string_view metric, double value = 1.0, TagSpan tags = {});
  void set_gauge(std::string_view metric, double value, TagSpan tags = {});
  void observe(std::string_view metric, double value, TagSpan tags = {});

  // Samples everything recorded before the call into a batch, sends it and waits until no
  // batch is awaiting an acknowledgement (each one acknowledged, or rejected INVALID, which
  // stats() counts). False on timeout: the batches stay pending and are still resent.
  bool flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

  ClientStats stats() const;
  // The most recent problem (invalid input, a rejected batch, a socket error); empty if none.
  std::string last_error() const;
  uint64_t producer_id() const;

  // The checks a handle or direct call applies to its metric name and tags.
  static Status validate(std::string_view metric, TagSpan tags);

 private:
  std::unique_ptr<detail::ClientCore> core_;
};

}  // namespace tally
