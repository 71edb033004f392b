// Reading an SDK Batch frame without decoding it (docs/format/wire.md, "Reading the header
// cheaply"): its (producer_id, seq), so a resend is recognised as a duplicate before anything is
// decoded, and a copy of the frame without the definitions the collector already holds, so a
// resend or a later batch does not pay for decoding them again.
//
//   Batch  [09 producer_id:fixed64][10 seq:varint][1a SeriesDef]*[22 CounterColumns]...
//   SeriesDef  [08 ref:varint][12 metric][1a Tag]*[20 kind]
//
// Both walk the top-level fields with protobuf's CodedInputStream and skip what they do not need;
// a frame they cannot walk is left to the full decoder, which rejects it.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace tally::collector {

struct BatchHeader {
  uint64_t producer_id = 0;
  uint64_t seq = 0;
};

// The producer and sequence number of a serialised Batch; nullopt if the frame is not a
// well-formed sequence of protobuf fields (the last occurrence of a field wins, as in a decode).
std::optional<BatchHeader> peek_batch_header(const void* data, size_t size);

// A copy of the frame without the SeriesDef entries whose ref `known` says the collector holds;
// nullopt when none was dropped (use the frame as it is) or the frame cannot be walked.
// *dropped receives the number of definitions left out.
std::optional<std::string> strip_known_defs(const void* data, size_t size,
                                            const std::function<bool(uint32_t ref)>& known,
                                            size_t* dropped);

}  // namespace tally::collector
