// tally::Client and its handles: thin wrappers over ClientCore, plus the hot paths.
#include "tally/client.h"

#include <cmath>
#include <mutex>

#include "client_core.h"

namespace tally {

using detail::ClientCore;
using detail::CounterSlot;
using detail::DistributionSlot;
using detail::GaugeSlot;
using detail::kInvalidRef;

namespace {

// Orders gauge sets across threads so the bucket's `last` is the latest one. The TSC is
// synchronised across cores on the x86 machines we run on and costs a fraction of
// clock_gettime.
int64_t gauge_order() {
#if defined(__x86_64__)
  return static_cast<int64_t>(__builtin_ia32_rdtsc());
#else
  return std::chrono::steady_clock::now().time_since_epoch().count();
#endif
}

void set_gauge_slot(GaugeSlot* g, double v) {
  int64_t order = gauge_order();
  std::lock_guard<detail::SpinLock> lk(g->lock);
  g->agg.add(v, order);
}

}  // namespace

Tags TagSpan::to_tags() const {
  Tags out;
  out.reserve(size_);
  for (size_t i = 0; i < size_; ++i) {
    TagView t = (*this)[i];
    out.push_back(Tag{std::string(t.key), std::string(t.value)});
  }
  return out;
}

// ---------------------------------------------------------------- handles

void Counter::add(double value) const {
  if (ref_ == kInvalidRef || !std::isfinite(value)) [[unlikely]] {
    if (!core_) return;
    if (ref_ == kInvalidRef)
      core_->note_invalid_ref();
    else
      core_->note_invalid_value(value);
    return;
  }
  detail::ThreadState* ts = core_->local();
  static_cast<CounterSlot*>(core_->slot_for(ts, ref_))->add(value);
}

bool Counter::valid() const {
  return ref_ != kInvalidRef;
}

void Gauge::set(double value) const {
  if (ref_ == kInvalidRef || !std::isfinite(value)) [[unlikely]] {
    if (!core_) return;
    if (ref_ == kInvalidRef)
      core_->note_invalid_ref();
    else
      core_->note_invalid_value(value);
    return;
  }
  detail::ThreadState* ts = core_->local();
  set_gauge_slot(static_cast<GaugeSlot*>(core_->slot_for(ts, ref_)), value);
}

bool Gauge::valid() const {
  return ref_ != kInvalidRef;
}

void Distribution::observe(double value) const {
  if (ref_ == kInvalidRef || !std::isfinite(value)) [[unlikely]] {
    if (!core_) return;
    if (ref_ == kInvalidRef)
      core_->note_invalid_ref();
    else
      core_->note_invalid_value(value);
    return;
  }
  detail::ThreadState* ts = core_->local();
  static_cast<DistributionSlot*>(core_->slot_for(ts, ref_))->observe(value);
}

bool Distribution::valid() const {
  return ref_ != kInvalidRef;
}

// ---------------------------------------------------------------- client

Client::Client(ClientOptions options) : core_(std::make_unique<ClientCore>(std::move(options))) {}

Client::~Client() = default;

Counter Client::counter(std::string_view metric, TagSpan tags) {
  auto r = core_->resolve(Kind::kCounter, metric, tags);
  if (!r) {
    core_->note_invalid(r.status().message());
    return Counter(core_.get(), kInvalidRef);
  }
  return Counter(core_.get(), (*r)->ref);
}

Gauge Client::gauge(std::string_view metric, TagSpan tags) {
  auto r = core_->resolve(Kind::kGauge, metric, tags);
  if (!r) {
    core_->note_invalid(r.status().message());
    return Gauge(core_.get(), kInvalidRef);
  }
  return Gauge(core_.get(), (*r)->ref);
}

Distribution Client::distribution(std::string_view metric, TagSpan tags) {
  auto r = core_->resolve(Kind::kDistribution, metric, tags);
  if (!r) {
    core_->note_invalid(r.status().message());
    return Distribution(core_.get(), kInvalidRef);
  }
  return Distribution(core_.get(), (*r)->ref);
}

void Client::count(std::string_view metric, double value, TagSpan tags) {
  if (!std::isfinite(value)) [[unlikely]] {
    core_->note_invalid_value(value);
    return;
  }
  if (auto* s = core_->lookup(Kind::kCounter, metric, tags)) [[likely]]
    static_cast<CounterSlot*>(s)->add(value);
}

void Client::set_gauge(std::string_view metric, double value, TagSpan tags) {
  if (!std::isfinite(value)) [[unlikely]] {
    core_->note_invalid_value(value);
    return;
  }
  if (auto* s = core_->lookup(Kind::kGauge, metric, tags)) [[likely]]
    set_gauge_slot(static_cast<GaugeSlot*>(s), value);
}

void Client::observe(std::string_view metric, double value, TagSpan tags) {
  if (!std::isfinite(value)) [[unlikely]] {
    core_->note_invalid_value(value);
    return;
  }
  if (auto* s = core_->lookup(Kind::kDistribution, metric, tags)) [[likely]]
    static_cast<DistributionSlot*>(s)->observe(value);
}

bool Client::flush(std::chrono::milliseconds timeout) {
  return core_->flush(timeout);
}

ClientStats Client::stats() const {
  return core_->stats();
}

std::string Client::last_error() const {
  return core_->last_error();
}

uint64_t Client::producer_id() const {
  return core_->producer_id();
}

Status Client::validate(std::string_view metric, TagSpan tags) {
  if (Status s = validate_metric_name(metric); !s) return s;
  return validate_tags(tags.to_tags());
}

}  // namespace tally
