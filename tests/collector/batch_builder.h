// BatchBuilder: hand-made wire::Batch frames for integration tests (definitions, counter, gauge
// and distribution points), sent through RawProducer (collector_process.h).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tally.pb.h"
#include "tally/common/sketch.h"
#include "tally/common/wire.h"

namespace tally::testing {

struct BatchBuilder {
  wire::Batch b;
  BatchBuilder(uint64_t producer, uint64_t seq) {
    b.set_producer_id(producer);
    b.set_seq(seq);
  }
  BatchBuilder& def(uint32_t ref, const std::string& metric,
                    std::vector<std::pair<std::string, std::string>> tags,
                    wire::Kind kind = wire::COUNTER) {
    auto* d = b.add_defs();
    d->set_ref(ref);
    d->set_metric(metric);
    d->set_kind(kind);
    for (auto& [k, v] : tags) {
      auto* t = d->add_tags();
      t->set_key(k);
      t->set_value(v);
    }
    return *this;
  }
  BatchBuilder& count(uint32_t ref, int64_t t, double v) {
    b.mutable_counters()->add_refs(ref);
    b.mutable_counters()->add_times(t);
    b.mutable_counters()->add_values(v);
    return *this;
  }
  BatchBuilder& gauge(uint32_t ref, int64_t t, double last, double min, double max, double sum,
                      uint64_t n) {
    auto* g = b.mutable_gauges();
    g->add_refs(ref);
    g->add_times(t);
    g->add_last(last);
    g->add_min(min);
    g->add_max(max);
    g->add_sum(sum);
    g->add_count(n);
    return *this;
  }
  BatchBuilder& dist(uint32_t ref, int64_t t, const Sketch& s) {
    auto* d = b.add_distributions();
    d->set_ref(ref);
    d->set_time(t);
    sketch_to_proto(s, d->mutable_sketch());
    return *this;
  }
};

}  // namespace tally::testing
