// Remote-write forwarding: the collector as a pre-aggregation tier in front of a distributed
// time-series engine (VictoriaMetrics, Mimir, Thanos Receive, Prometheus). Every 1 s bucket a
// shard finalises or corrects becomes Prometheus samples that are sent by Prometheus remote-write
// 1.0 (protobuf WriteRequest, snappy, HTTP POST). docs/SCALING.md describes the deployment.
//
// What a Tally series becomes (names by prom_metric_name/prom_label_name, as the read API):
//   counter       name                        cumulative: the running total since this forwarder
//                                             first saw the series
//   gauge         name                        the bucket's last value
//   distribution  name_count, name_sum        cumulative, like counters
//                 name{quantile="0.5|0.9|0.99"} the quantiles of the bucket's observations
// A bucket's samples carry its end time ([t, t+1) -> (t+1)*1000 ms): a count shows once its
// second is over, as in the read API, so increase(x[w]) over the remote data equals the sum of
// the buckets in the window. A cumulative series starts with a 0 sample 1 ms before its first
// value, so increase() counts the first bucket too and a forwarder restart reads as a counter
// reset (totals live in memory; a restart starts them again from 0).
// A correction (late points merged into a final bucket) adds what it added to the running total,
// at the series' newest timestamp: remote stores cannot rewrite the past of a cumulative series,
// so a late point counts in the remote data when it arrived, not in its own second. Gauge and
// quantile samples whose time is not after the series' newest sample are not sent (remote
// stores refuse out-of-order samples).
//
// Receivers and reconfiguration: reconfigure() takes new settings while running (a reload). The
// samples not yet sent stay queued and go to the receiver now configured; a request under way
// finishes (or times out) first, and one that failed goes to the new receiver. Cumulative series
// are introduced to each receiver: the first sample a receiver gets of a series is preceded by a
// 0 sample 1 ms earlier, and every value it gets is the running total minus what earlier receivers
// took (`offset`), so each receiver's increase() counts exactly the buckets sent to it, and a
// receiver that comes back sees a counter reset. New labels start new series (totals from 0).
//
// Thread-safety: sink(i) is called on shard i's thread only (it maps with that shard's own state,
// then appends to a bounded queue under a short lock; it never waits for the network). One
// sender thread does all HTTP. start()/stop()/request_stop()/reconfigure() from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "aggregate/shard.h"
#include "forward/remote_write_options.h"
#include "self_metrics.h"
#include "tally.pb.h"
#include "tally/common/mutex.h"
#include "tally/common/time_bucket.h"

namespace httplib {
class Client;
}

namespace tally::collector {

// A Prometheus label set, sorted by name, __name__ included.
using PromLabels = std::vector<std::pair<std::string, std::string>>;

// One Prometheus series, shared by all its samples: its labels kept only in encoded form (the
// repeated prometheus.Label fields of a TimeSeries), so a request copies them instead of encoding
// them every second, and a forwarded series costs its label bytes once.
struct PromSeries {
  explicit PromSeries(const PromLabels& labels, bool cumulative = false);
  PromLabels labels() const;  // decoded again (tests, logs)
  std::string encoded_labels;
  const bool cumulative;  // a running total (counter, _count, _sum)
  // The sender thread's alone: what the receivers hold of a cumulative series.
  mutable uint64_t receiver = 0;  // the receiver it was introduced to (RemoteWriter's), 0: none
  mutable double offset = 0;      // subtracted from what that receiver is sent
  mutable double acked = 0;       // the newest running total any receiver took
};

struct PromSample {
  std::shared_ptr<const PromSeries> series;
  int64_t time_ms = 0;
  double value = 0;
};

// Turns bucket updates into samples, keeping per series the running totals and newest timestamps.
// One per shard (a series lives in one shard); not thread-safe.
class PromSampleMapper {
 public:
  // floor_ms: no sample is stamped earlier (the forwarder's start: newer than anything an
  // earlier run of this collector sent). extra_labels: RemoteWriteOptions::labels.
  PromSampleMapper(int64_t floor_ms, std::vector<std::pair<std::string, std::string>> extra_labels);

  // Appends the samples of one FINAL or CORRECTION update; PARTIAL updates are ignored.
  void map(const wire::LiveUpdate& u, std::vector<PromSample>* out);
  // Forgets series with no update whose time is after before_ms (their totals restart from 0,
  // which remote stores read as a counter reset: nothing is lost).
  size_t forget_idle(int64_t before_ms);
  size_t series() const { return series_.size(); }
  // Samples not sent because they were not newer than their series' newest sample.
  uint64_t skipped() const { return skipped_; }

 private:
  struct Cumulative {
    std::shared_ptr<const PromSeries> series;
    double total = 0;
    int64_t last_ms = -1;  // -1: nothing sent yet
  };
  struct Plain {
    std::shared_ptr<const PromSeries> series;
    int64_t last_ms = -1;
  };
  struct State {
    std::vector<Cumulative> cumulative;  // counter: [value]; distribution: [_count, _sum]
    std::vector<Plain> plain;            // gauge: [value]; distribution: quantiles
    int64_t last_update_ms = 0;
  };

  State& state(const wire::LiveUpdate& u);
  std::shared_ptr<const PromSeries> series(const wire::LiveUpdate& u, const std::string& name,
                                           const char* quantile, bool cumulative) const;
  void add(Cumulative& c, double delta, int64_t bucket_end_ms, std::vector<PromSample>* out);
  void set(Plain& p, double value, int64_t bucket_end_ms, std::vector<PromSample>* out);

  const int64_t floor_ms_;
  const std::vector<std::pair<std::string, std::string>> extra_labels_;
  std::unordered_map<std::string, State> series_;  // by Tally series key
  uint64_t skipped_ = 0;
};

// Serialises samples as one snappy-compressed prometheus.WriteRequest (remote_write.proto),
// grouped by series in first-appearance order, each series' samples in the order given. The
// protobuf is written by hand from the pre-encoded labels: no message objects, no allocation
// per label.
std::string encode_write_request(const std::vector<PromSample>& samples);

class RemoteWriter {
 public:
  // Checks the options (the URL must be http:// or https://).
  static Result<std::unique_ptr<RemoteWriter>> create(RemoteWriteOptions opts, size_t shards,
                                                      SelfMetrics& metrics, const Clock& clock);
  ~RemoteWriter();

  // The sink for shard i's final buckets (Shard::set_final_sink).
  Shard::FinalSink sink(size_t shard);
  // What sink(shard) does: maps shard i's updates and queues the samples; shard i's thread only.
  void deliver(size_t shard, const std::vector<wire::LiveUpdate>& updates);

  void start();
  // Sends what is queued for up to drain_timeout_ms (retrying as usual), then drops the rest
  // (counted) and stops the thread. Call after the shards have stopped.
  void stop();
  // Begins stop() without waiting: the thread sends what is queued until drain_timeout_ms passes.
  void request_stop();
  // Takes new settings (url, headers, labels, batching, timeouts, backoff, buffer) for what is
  // queued and what comes; returns the names of the settings that changed ("" when none).
  Result<std::string> reconfigure(RemoteWriteOptions opts);

 private:
  RemoteWriter(RemoteWriteOptions opts, size_t shards, SelfMetrics& metrics, const Clock& clock);
  void enqueue(std::vector<PromSample>&& samples);
  void run();
  enum class Outcome { kSent, kRetry, kRejected };
  Outcome post(const std::string& body, int* http_status, std::string* error);
  // Waits up to ms unless stopping is past its drain deadline or new settings came; false once
  // the drain deadline passed.
  bool wait_backoff(int64_t ms);
  bool drain_expired();
  // Sender thread: takes settings that changed since it last looked; true when it did.
  bool take_settings();
  void set_url();  // scheme_host_port_ and path_ from sending_.url
  // Sender thread: the samples a request carries for the current receiver (introductions and
  // offsets of cumulative series; see the top of this file).
  void for_receiver(const std::vector<PromSample>& batch, std::vector<PromSample>* out);

  SelfMetrics& metrics_;
  const Clock& clock_;
  const int64_t debug_floor_ms_;  // RemoteWriteOptions::debug_floor_ms (fixed)
  // Sender thread only: the settings it sends with, and where to.
  RemoteWriteOptions sending_;
  uint64_t sending_gen_ = 0;  // the opts_gen_ of sending_; written under mu_
  uint64_t receiver_ = 1;     // a new url or header set is a new receiver
  std::string scheme_host_port_;
  std::string path_;
  std::unique_ptr<httplib::Client> client_;  // sender thread only (keep-alive)
  // [shard], used on that shard's thread, replaced there when the labels changed (labels_gen_).
  std::vector<std::unique_ptr<PromSampleMapper>> mappers_;
  std::vector<uint64_t> mapper_gen_;
  std::vector<int64_t> next_idle_check_ms_;
  std::atomic<uint64_t> labels_gen_{0};

  Mutex mu_;
  std::condition_variable cv_;
  RemoteWriteOptions opts_ GUARDED_BY(mu_);  // the settings now configured
  uint64_t opts_gen_ GUARDED_BY(mu_) = 0;    // grows with each reconfigure()
  std::deque<PromSample> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point drain_deadline_ GUARDED_BY(mu_);  // set with stopping_
  size_t in_flight_ GUARDED_BY(mu_) = 0;                  // samples in the request being sent
  std::atomic<int64_t> last_drop_log_ms_{INT64_MIN / 2};  // bounds the buffer-full log line
  std::thread thread_;
};

}  // namespace tally::collector
