#include "forward/remote_write.h"

#include "thread_guard.h"

#include <httplib.h>
#include <snappy.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <regex>

#include "query/prom_api.h"
#include "tally/common/series_key.h"
#include "tally/common/wire.h"

namespace tally::collector {

// ---------------------------------------------------------------------------------------------
// Options

Status RemoteWriteOptions::validate() const {
  if (url.empty()) return Status::ok();
  static const std::regex kUrl(R"(^https?://[^/\s]+(/\S*)?$)");
  if (!std::regex_match(url, kUrl))
    return Status::invalid_argument(
        "remote_write_url must look like http://host:port/api/v1/write, not '" + url + "'");
  for (const auto& [k, v] : labels) {
    if (k.empty() || k.rfind("__", 0) == 0 || prom_label_name(k) != k)
      return Status::invalid_argument(
          "remote_write_labels: '" + k +
          "' is no Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not __...)");
  }
  static const std::regex kHeaderName(R"(^[A-Za-z0-9!#$%&'*+.^_`|~-]+$)");
  for (const auto& [k, v] : headers) {
    if (!std::regex_match(k, kHeaderName) || v.find_first_of("\r\n") != std::string::npos)
      return Status::invalid_argument("remote_write_headers: '" + k + "' is no valid HTTP header");
  }
  if (max_samples_per_request < 1)
    return Status::invalid_argument("remote_write_max_samples must be at least 1");
  if (max_buffered_samples < max_samples_per_request)
    return Status::invalid_argument(
        "remote_write_max_buffered must be at least remote_write_max_samples");
  if (flush_interval_ms < 10 || flush_interval_ms > 60000)
    return Status::invalid_argument("remote_write_flush_interval must be 10ms..1m");
  if (timeout_ms < 100 || timeout_ms > 600000)
    return Status::invalid_argument("remote_write_timeout must be 100ms..10m");
  if (min_backoff_ms < 1 || max_backoff_ms < min_backoff_ms || max_backoff_ms > 600000)
    return Status::invalid_argument(
        "remote_write backoff must satisfy 1ms <= min_backoff <= max_backoff <= 10m");
  return Status::ok();
}

Status RemoteWriteOptions::add_header(std::string_view name_colon_value) {
  auto colon = name_colon_value.find(':');
  if (colon == std::string_view::npos || colon == 0)
    return Status::invalid_argument("remote-write header must be 'Name: value', not '" +
                                    std::string(name_colon_value) + "'");
  std::string_view value = name_colon_value.substr(colon + 1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  headers.emplace_back(std::string(name_colon_value.substr(0, colon)), std::string(value));
  return Status::ok();
}

void RemoteWriteOptions::add_default_labels() {
  if (!enabled() || std::any_of(labels.begin(), labels.end(),
                                [](const auto& l) { return l.first == "instance"; }))
    return;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == 0)
    std::snprintf(host, sizeof host, "tally-collector");
  labels.emplace_back("instance", host);
}

Status RemoteWriteOptions::set_label(std::string_view name_eq_value) {
  auto eq = name_eq_value.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return Status::invalid_argument("remote-write label must be name=value, not '" +
                                    std::string(name_eq_value) + "'");
  std::string name(name_eq_value.substr(0, eq)), value(name_eq_value.substr(eq + 1));
  auto it =
      std::find_if(labels.begin(), labels.end(), [&](const auto& l) { return l.first == name; });
  if (it != labels.end())
    it->second = value;
  else
    labels.emplace_back(name, value);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Mapping

namespace {

constexpr double kQuantiles[] = {0.5, 0.9, 0.99};  // as the read API's bare distribution selector
constexpr const char* kQuantileLabels[] = {"0.5", "0.9", "0.99"};

}  // namespace

PromSampleMapper::PromSampleMapper(int64_t floor_ms,
                                   std::vector<std::pair<std::string, std::string>> extra_labels)
    : floor_ms_(floor_ms), extra_labels_(std::move(extra_labels)) {}

std::shared_ptr<const PromSeries> PromSampleMapper::series(const wire::LiveUpdate& u,
                                                           const std::string& name,
                                                           const char* quantile,
                                                           bool cumulative) const {
  PromLabels l;
  auto has = [&](const std::string& n) {
    return std::any_of(l.begin(), l.end(), [&](const auto& p) { return p.first == n; });
  };
  l.emplace_back("__name__", name);
  if (quantile) l.emplace_back("quantile", quantile);
  // Tags arrive sorted by key: when two keys map to one label name the first wins, as in the
  // read API; names Prometheus reserves (__*) are left out.
  for (const auto& t : u.tags()) {
    std::string n = prom_label_name(t.key());
    if (n.rfind("__", 0) == 0 || t.value().empty() || has(n)) continue;
    l.emplace_back(std::move(n), t.value());
  }
  for (const auto& [k, v] : extra_labels_)
    if (!v.empty() && !has(k)) l.emplace_back(k, v);
  std::sort(l.begin(), l.end());
  return std::make_shared<const PromSeries>(l, cumulative);
}

PromSampleMapper::State& PromSampleMapper::state(const wire::LiveUpdate& u) {
  size_t n = u.metric().size();
  for (const auto& t : u.tags()) n += t.key().size() + t.value().size() + 2;
  std::string key;
  key.reserve(n);
  key = u.metric();
  for (const auto& t : u.tags()) {
    key += kKeySeparator;
    key += t.key();
    key += '=';
    key += t.value();
  }
  auto [it, created] = series_.try_emplace(std::move(key));
  State& s = it->second;
  if (created) {
    const std::string name = prom_metric_name(u.metric());
    switch (u.kind()) {
      case wire::DISTRIBUTION:
        s.cumulative.push_back({series(u, name + "_count", nullptr, true)});
        s.cumulative.push_back({series(u, name + "_sum", nullptr, true)});
        for (const char* q : kQuantileLabels) s.plain.push_back({series(u, name, q, false)});
        break;
      case wire::GAUGE:
        s.plain.push_back({series(u, name, nullptr, false)});
        break;
      default:
        s.cumulative.push_back({series(u, name, nullptr, true)});
        break;
    }
  }
  return s;
}

void PromSampleMapper::add(Cumulative& c, double delta, int64_t bucket_end_ms,
                           std::vector<PromSample>* out) {
  // Never before the series' newest sample (a correction lands there) nor before this run began.
  const int64_t t = std::max({bucket_end_ms, c.last_ms + 1, floor_ms_ + 1});
  if (c.last_ms < 0) out->push_back({c.series, t - 1, 0.0});  // where this run's total starts
  c.total += delta;
  c.last_ms = t;
  out->push_back({c.series, t, c.total});
}

void PromSampleMapper::set(Plain& p, double value, int64_t bucket_end_ms,
                           std::vector<PromSample>* out) {
  if (bucket_end_ms <= p.last_ms || bucket_end_ms <= floor_ms_) {
    ++skipped_;
    return;
  }
  p.last_ms = bucket_end_ms;
  out->push_back({p.series, bucket_end_ms, value});
}

void PromSampleMapper::map(const wire::LiveUpdate& u, std::vector<PromSample>* out) {
  const bool correction = u.state() == wire::LiveUpdate::CORRECTION;
  if (!correction && u.state() != wire::LiveUpdate::FINAL) return;
  const int64_t end_ms = (u.time() + std::max(1, u.resolution_s())) * 1000;
  State& s = state(u);
  s.last_update_ms = std::max(s.last_update_ms, end_ms);
  switch (u.kind()) {
    case wire::DISTRIBUTION: {
      add(s.cumulative[0], static_cast<double>(correction ? u.added_count() : u.count()), end_ms,
          out);
      add(s.cumulative[1], correction ? u.added_sum() : u.sum(), end_ms, out);
      if (u.count() == 0 || !u.has_sketch()) break;
      auto sketch = sketch_from_proto(u.sketch());
      if (!sketch) break;
      for (size_t i = 0; i < std::size(kQuantiles); ++i)
        set(s.plain[i], sketch->quantile(kQuantiles[i]), end_ms, out);
      break;
    }
    case wire::GAUGE:
      set(s.plain[0], u.value(), end_ms, out);
      break;
    default:
      add(s.cumulative[0], correction ? u.added_sum() : u.value(), end_ms, out);
      break;
  }
}

size_t PromSampleMapper::forget_idle(int64_t before_ms) {
  return std::erase_if(series_,
                       [&](const auto& kv) { return kv.second.last_update_ms < before_ms; });
}

// Protobuf wire format (remote_write.proto): a length-delimited field is (field << 3 | 2), a
// varint length, the bytes; Sample.value is fixed64 (field 1, type 1), Sample.timestamp a varint
// (field 2, type 0).
namespace {

constexpr char kTimeSeriesTag = (1 << 3) | 2;   // WriteRequest.timeseries
constexpr char kLabelTag = (1 << 3) | 2;        // TimeSeries.labels
constexpr char kSampleTag = (2 << 3) | 2;       // TimeSeries.samples
constexpr char kNameTag = (1 << 3) | 2;         // Label.name
constexpr char kValueTag = (2 << 3) | 2;        // Label.value
constexpr char kSampleValueTag = (1 << 3) | 1;  // Sample.value
constexpr char kTimestampTag = (2 << 3) | 0;    // Sample.timestamp

static_assert(std::endian::native == std::endian::little,
              "Sample.value is copied as little-endian fixed64");

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_bytes(std::string& out, char tag, std::string_view b) {
  out.push_back(tag);
  put_varint(out, b.size());
  out.append(b);
}
size_t sample_size(const PromSample& s) {
  return 1 + 8 + 1 + varint_size(static_cast<uint64_t>(s.time_ms));
}

}  // namespace

PromSeries::PromSeries(const PromLabels& labels, bool cumulative_series)
    : cumulative(cumulative_series) {
  std::string label;
  for (const auto& [k, v] : labels) {
    label.clear();
    put_bytes(label, kNameTag, k);
    put_bytes(label, kValueTag, v);
    put_bytes(encoded_labels, kLabelTag, label);
  }
  encoded_labels.shrink_to_fit();
}

PromLabels PromSeries::labels() const {
  // Only what the constructor writes: tag, one-or-more-byte varint length, bytes.
  PromLabels out;
  std::string_view in = encoded_labels;
  auto bytes = [&](std::string_view& from) {
    from.remove_prefix(1);  // tag
    uint64_t n = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<uint8_t>(from.front());
      from.remove_prefix(1);
      n |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    std::string_view v = from.substr(0, n);
    from.remove_prefix(n);
    return v;
  };
  while (!in.empty()) {
    std::string_view label = bytes(in);
    std::string_view name = bytes(label);
    std::string_view value = bytes(label);
    out.emplace_back(std::string(name), std::string(value));
  }
  return out;
}

std::string encode_write_request(const std::vector<PromSample>& samples) {
  // Group by series, keeping first-appearance order and each series' sample order.
  struct Group {
    const PromSeries* series;
    std::vector<uint32_t> samples;
    size_t bytes;
  };
  std::vector<Group> groups;
  std::unordered_map<const PromSeries*, size_t> index;
  index.reserve(samples.size());
  for (uint32_t i = 0; i < samples.size(); ++i) {
    auto [it, created] = index.try_emplace(samples[i].series.get(), groups.size());
    if (created)
      groups.push_back({samples[i].series.get(), {}, samples[i].series->encoded_labels.size()});
    Group& g = groups[it->second];
    g.samples.push_back(i);
    const size_t n = sample_size(samples[i]);
    g.bytes += 1 + varint_size(n) + n;
  }
  size_t total = 0;
  for (const auto& g : groups) total += 1 + varint_size(g.bytes) + g.bytes;
  std::string raw;
  raw.reserve(total);
  for (const auto& g : groups) {
    raw.push_back(kTimeSeriesTag);
    put_varint(raw, g.bytes);
    raw.append(g.series->encoded_labels);
    for (uint32_t i : g.samples) {
      const PromSample& s = samples[i];
      raw.push_back(kSampleTag);
      put_varint(raw, sample_size(s));
      raw.push_back(kSampleValueTag);
      char le[8];
      std::memcpy(le, &s.value, 8);  // fixed64 is little-endian, as this machine (asserted above)
      raw.append(le, 8);
      raw.push_back(kTimestampTag);
      put_varint(raw, static_cast<uint64_t>(s.time_ms));
    }
  }
  std::string compressed;
  snappy::Compress(raw.data(), raw.size(), &compressed);
  return compressed;
}

// ---------------------------------------------------------------------------------------------
// Sending

namespace {

// Series not updated for this long are forgotten (see forget_idle); checked this often.
constexpr int64_t kIdleForgetMs = 3600 * 1000;
constexpr int64_t kIdleCheckMs = 60 * 1000;
// Failure logs: at most one line per this interval (the counters have the full story).
constexpr int64_t kLogEveryMs = 10000;

}  // namespace

Result<std::unique_ptr<RemoteWriter>> RemoteWriter::create(RemoteWriteOptions opts, size_t shards,
                                                           SelfMetrics& metrics,
                                                           const Clock& clock) {
  if (auto s = opts.validate(); !s) return s;
  if (!opts.enabled()) return Status::invalid_argument("remote_write_url is empty");
  return std::unique_ptr<RemoteWriter>(new RemoteWriter(std::move(opts), shards, metrics, clock));
}

RemoteWriter::RemoteWriter(RemoteWriteOptions opts, size_t shards, SelfMetrics& metrics,
                           const Clock& clock)
    : metrics_(metrics), clock_(clock), debug_floor_ms_(opts.debug_floor_ms) {
  opts.add_default_labels();
  opts_ = opts;
  sending_ = std::move(opts);
  set_url();
  const int64_t floor_ms = debug_floor_ms_ >= 0 ? debug_floor_ms_ : clock_.now_ms();
  for (size_t i = 0; i < shards; ++i)
    mappers_.push_back(std::make_unique<PromSampleMapper>(floor_ms, opts_.labels));
  mapper_gen_.assign(shards, 0);
  next_idle_check_ms_.assign(shards, 0);
}

void RemoteWriter::set_url() {
  // http://host:port/path -> ("http://host:port", "/path")
  const size_t host_begin = sending_.url.find("://") + 3;
  const size_t slash = sending_.url.find('/', host_begin);
  scheme_host_port_ = sending_.url.substr(0, slash);
  path_ = slash == std::string::npos ? "/" : sending_.url.substr(slash);
}

RemoteWriter::~RemoteWriter() {
  stop();
}

Shard::FinalSink RemoteWriter::sink(size_t shard) {
  return [this, shard](const std::vector<wire::LiveUpdate>& updates) { deliver(shard, updates); };
}

void RemoteWriter::deliver(size_t shard, const std::vector<wire::LiveUpdate>& updates) {
  // New labels: new series, whose totals start from 0 (a reconfigure() changed them).
  if (const uint64_t gen = labels_gen_.load(std::memory_order_acquire); gen != mapper_gen_[shard]) {
    std::vector<std::pair<std::string, std::string>> labels;
    {
      MutexLock lock(mu_);
      labels = opts_.labels;
    }
    mappers_[shard] = std::make_unique<PromSampleMapper>(
        debug_floor_ms_ >= 0 ? debug_floor_ms_ : clock_.now_ms(), std::move(labels));
    mapper_gen_[shard] = gen;
  }
  PromSampleMapper* mapper = mappers_[shard].get();
  std::vector<PromSample> samples;
  samples.reserve(updates.size() * 2);
  for (const auto& u : updates) mapper->map(u, &samples);
  const int64_t now = clock_.now_ms();
  // Back-dated test feeds (debug_floor_ms) are older than the idle limit on arrival.
  if (debug_floor_ms_ < 0 && now >= next_idle_check_ms_[shard]) {
    if (size_t n = mapper->forget_idle(now - kIdleForgetMs))
      spdlog::info("event=remote_write_series_forgotten series={} idle_s={}", n,
                   kIdleForgetMs / 1000);
    next_idle_check_ms_[shard] = now + kIdleCheckMs;
  }
  if (!samples.empty()) enqueue(std::move(samples));
}

void RemoteWriter::enqueue(std::vector<PromSample>&& samples) {
  uint64_t dropped = 0, max_buffered = 0;
  bool wake;
  std::string url;
  {
    MutexLock lock(mu_);
    for (auto& s : samples) {
      if (queue_.size() >= opts_.max_buffered_samples) {
        queue_.pop_front();  // the oldest goes: a later cumulative sample still carries its count
        ++dropped;
      }
      queue_.push_back(std::move(s));
    }
    metrics_.remote_write_queue.store(static_cast<int64_t>(queue_.size() + in_flight_),
                                      std::memory_order_relaxed);
    wake = queue_.size() >= opts_.max_samples_per_request;
    if (dropped) {
      max_buffered = opts_.max_buffered_samples;
      url = opts_.url;
    }
  }
  if (dropped) {
    metrics_.remote_write_dropped.fetch_add(dropped, std::memory_order_relaxed);
    const int64_t now = clock_.now_ms();
    int64_t last = last_drop_log_ms_.load(std::memory_order_relaxed);
    if (now - last >= kLogEveryMs && last_drop_log_ms_.compare_exchange_strong(last, now))
      spdlog::warn("event=remote_write_buffer_full dropped_oldest={} max_buffered={} url={}",
                   dropped, max_buffered, url);
  }
  if (wake) cv_.notify_one();
}

void RemoteWriter::start() {
  spdlog::info("event=remote_write_started url={} max_samples={} flush_interval={} max_buffered={}",
               sending_.url, sending_.max_samples_per_request,
               format_duration_ms(sending_.flush_interval_ms), sending_.max_buffered_samples);
  thread_ = std::thread([this] { guarded("remote-write", metrics_, [this] { run(); }); });
}

void RemoteWriter::request_stop() {
  {
    MutexLock lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    if (!stopping_)
      drain_deadline_ =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.drain_timeout_ms);
    stopping_ = true;
  }
  cv_.notify_all();
}

void RemoteWriter::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
  MutexLock lock(mu_);
  if (!queue_.empty()) {
    metrics_.remote_write_dropped.fetch_add(queue_.size(), std::memory_order_relaxed);
    spdlog::warn(
        "event=remote_write_unsent samples={} url={} reason=\"stopping; the receiver did not take "
        "them in time\"",
        queue_.size(), opts_.url);
    queue_.clear();
  }
  metrics_.remote_write_queue.store(0, std::memory_order_relaxed);
}

bool RemoteWriter::drain_expired() {
  MutexLock lock(mu_);
  return stopping_ && std::chrono::steady_clock::now() >= drain_deadline_;
}

bool RemoteWriter::wait_backoff(int64_t ms) {
  MutexLock lock(mu_);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  // Only a stop whose drain deadline passes cuts the wait short (stop() notifies).
  while (opts_gen_ == sending_gen_) {  // new settings end the wait: perhaps a new receiver
    const auto limit = stopping_ ? std::min(until, drain_deadline_) : until;
    if (std::chrono::steady_clock::now() >= limit) break;
    lock.wait_until(cv_, limit);
  }
  return !(stopping_ && std::chrono::steady_clock::now() >= drain_deadline_);
}

RemoteWriter::Outcome RemoteWriter::post(const std::string& body, int* http_status,
                                         std::string* error) {
  if (!client_) {
    client_ = std::make_unique<httplib::Client>(scheme_host_port_);
    const auto t = std::chrono::milliseconds(sending_.timeout_ms);
    client_->set_connection_timeout(t);
    client_->set_read_timeout(t);
    client_->set_write_timeout(t);
    client_->set_keep_alive(true);
    client_->set_tcp_nodelay(true);  // else Nagle holds the body back ~40 ms behind the headers
  }
  httplib::Headers headers = {{"Content-Encoding", "snappy"},
                              {"X-Prometheus-Remote-Write-Version", "0.1.0"},
                              {"User-Agent", "tally-collector"}};
  for (const auto& [k, v] : sending_.headers) headers.emplace(k, v);
  auto res = client_->Post(path_, headers, body, "application/x-protobuf");
  *http_status = res ? res->status : 0;
  if (!res) {
    *error = httplib::to_string(res.error());
    client_.reset();  // a fresh connection next time
    return Outcome::kRetry;
  }
  if (res->status >= 200 && res->status < 300) return Outcome::kSent;
  *error = res->body.substr(0, 200);
  // Remote-write 1.0: 5xx may be retried, 4xx must not be (the same data would fail again),
  // except 429 (the receiver asks to slow down).
  if (res->status >= 500 || res->status == 429) return Outcome::kRetry;
  return Outcome::kRejected;
}

Result<std::string> RemoteWriter::reconfigure(RemoteWriteOptions o) {
  o.add_default_labels();
  if (auto st = o.validate(); !st) return st;
  if (!o.enabled()) return Status::invalid_argument("remote_write_url is empty");
  o.debug_floor_ms = debug_floor_ms_;
  std::string changed;
  bool labels_changed = false;
  {
    MutexLock lock(mu_);
    const RemoteWriteOptions& c = opts_;
    for (auto [name, differs] :
         {std::pair{"url", o.url != c.url},
          {"headers", o.headers != c.headers},
          {"labels", o.labels != c.labels},
          {"max_samples", o.max_samples_per_request != c.max_samples_per_request},
          {"flush_interval", o.flush_interval_ms != c.flush_interval_ms},
          {"max_buffered", o.max_buffered_samples != c.max_buffered_samples},
          {"timeout", o.timeout_ms != c.timeout_ms},
          {"backoff",
           o.min_backoff_ms != c.min_backoff_ms || o.max_backoff_ms != c.max_backoff_ms}})
      if (differs) changed += (changed.empty() ? "" : ",") + std::string(name);
    if (changed.empty()) return changed;
    labels_changed = o.labels != c.labels;
    opts_ = std::move(o);
    ++opts_gen_;
  }
  if (labels_changed) labels_gen_.fetch_add(1, std::memory_order_release);
  cv_.notify_all();
  return changed;
}

bool RemoteWriter::take_settings() {
  RemoteWriteOptions o;
  {
    MutexLock lock(mu_);
    if (opts_gen_ == sending_gen_) return false;
    o = opts_;
    sending_gen_ = opts_gen_;
  }
  // Another url, or another tenant (any header but the credentials): another receiver, which is
  // sent what it does not hold yet.
  auto identity = [](const RemoteWriteOptions& x) {
    std::vector<std::pair<std::string, std::string>> h;
    for (const auto& kv : x.headers)
      if (kv.first != "Authorization") h.push_back(kv);
    return std::make_pair(x.url, h);
  };
  if (identity(o) != identity(sending_)) ++receiver_;
  client_.reset();  // a fresh connection with the new url, headers and timeout
  sending_ = std::move(o);
  set_url();
  return true;
}

void RemoteWriter::for_receiver(const std::vector<PromSample>& batch,
                                std::vector<PromSample>* out) {
  out->clear();
  out->reserve(batch.size() + 8);
  for (const auto& smp : batch) {
    const PromSeries& p = *smp.series;
    if (!p.cumulative) {
      out->push_back(smp);
      continue;
    }
    if (p.receiver != receiver_) {
      p.receiver = receiver_;
      p.offset = p.acked;
      // A series' own first sample is already its 0 (PromSampleMapper).
      if (smp.value != p.offset) out->push_back({smp.series, smp.time_ms - 1, 0.0});
    }
    out->push_back({smp.series, smp.time_ms, smp.value - p.offset});
  }
}

void RemoteWriter::run() {
  int64_t last_failed_log_ms = INT64_MIN / 2, last_rejected_log_ms = INT64_MIN / 2;
  auto next_flush =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(sending_.flush_interval_ms);
  std::vector<PromSample> batch, out;
  while (true) {
    if (take_settings())
      next_flush = std::min(next_flush, std::chrono::steady_clock::now() +
                                            std::chrono::milliseconds(sending_.flush_interval_ms));
    batch.clear();
    {
      MutexLock lock(mu_);
      while (!stopping_ && queue_.size() < opts_.max_samples_per_request &&
             opts_gen_ == sending_gen_)
        if (lock.wait_until(cv_, next_flush) == std::cv_status::timeout) break;
      if (opts_gen_ != sending_gen_) continue;  // take the new settings first
      if (queue_.empty()) {
        if (stopping_) return;
        next_flush = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(sending_.flush_interval_ms);
        continue;
      }
      // A partial request only when the interval is over (or at stop).
      if (queue_.size() < opts_.max_samples_per_request && !stopping_ &&
          std::chrono::steady_clock::now() < next_flush)
        continue;
      const size_t n = std::min<size_t>(queue_.size(), opts_.max_samples_per_request);
      batch.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + static_cast<ptrdiff_t>(n)));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(n));
      in_flight_ = n;
    }
    next_flush =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(sending_.flush_interval_ms);
    for_receiver(batch, &out);
    std::string body = encode_write_request(out);
    int64_t backoff = sending_.min_backoff_ms;
    bool sent = false;
    for (int attempt = 0;; ++attempt) {
      if (attempt > 0 && take_settings()) {  // new settings: the batch goes where they say
        for_receiver(batch, &out);
        body = encode_write_request(out);
        backoff = sending_.min_backoff_ms;
      }
      int status = 0;
      std::string error;
      Outcome o = post(body, &status, &error);
      if (o == Outcome::kSent) {
        metrics_.remote_write_samples.fetch_add(batch.size(), std::memory_order_relaxed);
        for (const auto& smp : batch)
          if (smp.series->cumulative) smp.series->acked = smp.value;
        if (attempt > 0)
          spdlog::info("event=remote_write_recovered url={} attempts={}", sending_.url,
                       attempt + 1);
        sent = true;
        break;
      }
      metrics_.remote_write_failed_requests.fetch_add(1, std::memory_order_relaxed);
      const int64_t now = clock_.now_ms();
      int64_t& last_log_ms = o == Outcome::kRejected ? last_rejected_log_ms : last_failed_log_ms;
      const bool log = now - last_log_ms >= kLogEveryMs;
      if (log) last_log_ms = now;
      if (o == Outcome::kRejected) {
        if (log)
          spdlog::error(
              "event=remote_write_rejected url={} status={} samples={} error=\"{}\" (not retried: "
              "a 4xx would repeat)",
              sending_.url, status, batch.size(), error);
        break;
      }
      if (log)
        spdlog::warn(
            "event=remote_write_failed url={} status={} samples={} retry_in_ms={} error=\"{}\"",
            sending_.url, status, batch.size(), backoff, error);
      if (!wait_backoff(backoff)) break;
      metrics_.remote_write_retries.fetch_add(1, std::memory_order_relaxed);
      backoff = std::min(backoff * 2, sending_.max_backoff_ms);
    }
    if (!sent) metrics_.remote_write_dropped.fetch_add(batch.size(), std::memory_order_relaxed);
    {
      MutexLock lock(mu_);
      in_flight_ = 0;
      metrics_.remote_write_queue.store(static_cast<int64_t>(queue_.size()),
                                        std::memory_order_relaxed);
    }
    if (drain_expired()) return;
  }
}

}  // namespace tally::collector
