#include "tally/common/wire.h"

#include <google/protobuf/stubs/logging.h>

#include <cstdio>

namespace tally {

void sketch_to_proto(const Sketch& s, wire::Sketch* out) {
  out->Clear();
  out->set_count(s.count());
  out->set_sum(s.sum());
  out->set_min(s.min());
  out->set_max(s.max());
  out->set_zero_count(s.zero_count());
  for (const auto& kc : s.positive_bins()) {
    out->add_pos_keys(kc.key);
    out->add_pos_counts(kc.count);
  }
  for (const auto& kc : s.negative_bins()) {
    out->add_neg_keys(kc.key);
    out->add_neg_counts(kc.count);
  }
}

Result<Sketch> sketch_from_proto(const wire::Sketch& p) {
  if (p.pos_keys_size() != p.pos_counts_size() || p.neg_keys_size() != p.neg_counts_size())
    return Status::invalid_argument("sketch key and count columns differ in length");
  std::vector<Sketch::KeyCount> pos, neg;
  pos.reserve(p.pos_keys_size());
  for (int i = 0; i < p.pos_keys_size(); ++i) pos.push_back({p.pos_keys(i), p.pos_counts(i)});
  neg.reserve(p.neg_keys_size());
  for (int i = 0; i < p.neg_keys_size(); ++i) neg.push_back({p.neg_keys(i), p.neg_counts(i)});
  return Sketch::from_parts(p.count(), p.sum(), p.min(), p.max(), p.zero_count(), pos, neg);
}

wire::Kind kind_to_proto(Kind k) {
  return static_cast<wire::Kind>(static_cast<int>(k));
}

std::optional<Kind> kind_from_proto(wire::Kind k) {
  switch (k) {
    case wire::COUNTER:
      return Kind::kCounter;
    case wire::GAUGE:
      return Kind::kGauge;
    case wire::DISTRIBUTION:
      return Kind::kDistribution;
    default:
      return std::nullopt;
  }
}

void quiet_protobuf_log() {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel level, const char* file, int line, const std::string& message) {
        if (level >= google::protobuf::LOGLEVEL_FATAL)
          std::fprintf(stderr, "[libprotobuf FATAL %s:%d] %s\n", file, line, message.c_str());
      });
}

}  // namespace tally
