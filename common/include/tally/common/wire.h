// Conversions between common types and the generated protobuf messages (common/proto/tally.proto).
// Thread-safety: pure functions.
#pragma once

#include "tally.pb.h"
#include "tally/common/endpoints.h"
#include "tally/common/series_key.h"
#include "tally/common/sketch.h"

namespace tally {

// ZeroMQ transport constants (docs/format/wire.md); the default endpoints are in endpoints.h.
inline constexpr size_t kMaxBatchBytes =
    4 << 20;  // default max_batch_bytes: a larger frame is refused unread

void sketch_to_proto(const Sketch& s, wire::Sketch* out);
Result<Sketch> sketch_from_proto(const wire::Sketch& p);

wire::Kind kind_to_proto(Kind k);
std::optional<Kind> kind_from_proto(wire::Kind k);

}  // namespace tally
