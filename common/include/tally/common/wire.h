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

// Protobuf writes a line to stderr for every string field that is not valid UTF-8 when it parses
// a message, and a client can send such messages as fast as the network carries them: lines the
// log's level, rate limit and rotation never see. The collector answers and counts each message
// that does not parse, so a process that parses what others send calls this once at start: it
// drops protobuf's lines below FATAL (a FATAL one still reaches stderr before protobuf aborts).
void quiet_protobuf_log();

}  // namespace tally
