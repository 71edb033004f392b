#include "ingest/batch_header.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <vector>

namespace tally::collector {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

constexpr int kProducerField = 1;  // Batch.producer_id, fixed64
constexpr int kSeqField = 2;       // Batch.seq, varint
constexpr int kDefsField = 3;      // Batch.defs, length-delimited SeriesDef
constexpr int kDefRefField = 1;    // SeriesDef.ref, varint

// The ref of a serialised SeriesDef (0 when absent: proto3 does not write a default); nullopt if
// it cannot be walked.
std::optional<uint32_t> def_ref(const uint8_t* p, int n) {
  CodedInputStream in(p, n);
  std::optional<uint32_t> ref = 0;
  while (uint32_t tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == kDefRefField &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_VARINT) {
      uint32_t r;
      if (!in.ReadVarint32(&r)) return std::nullopt;
      ref = r;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return std::nullopt;
    }
  }
  return in.ConsumedEntireMessage() ? ref : std::nullopt;
}

}  // namespace

std::optional<BatchHeader> peek_batch_header(const void* data, size_t size) {
  if (size > static_cast<size_t>(INT32_MAX)) return std::nullopt;
  CodedInputStream in(static_cast<const uint8_t*>(data), static_cast<int>(size));
  BatchHeader h;
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const auto type = WireFormatLite::GetTagWireType(tag);
    if (field == kProducerField && type == WireFormatLite::WIRETYPE_FIXED64) {
      if (!in.ReadLittleEndian64(&h.producer_id)) return std::nullopt;
    } else if (field == kSeqField && type == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint64(&h.seq)) return std::nullopt;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return std::nullopt;
    }
  }
  if (!in.ConsumedEntireMessage() || in.CurrentPosition() != static_cast<int>(size))
    return std::nullopt;
  return h;
}

std::optional<std::string> strip_known_defs(const void* data, size_t size,
                                            const std::function<bool(uint32_t ref)>& known,
                                            size_t* dropped) {
  *dropped = 0;
  if (size > static_cast<size_t>(INT32_MAX)) return std::nullopt;
  const auto* base = static_cast<const uint8_t*>(data);
  CodedInputStream in(static_cast<const uint8_t*>(data), static_cast<int>(size));
  std::vector<std::pair<int, int>> cut;  // [begin, end) byte ranges to leave out
  while (true) {
    const int begin = in.CurrentPosition();
    uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    if (WireFormatLite::GetTagFieldNumber(tag) == kDefsField &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t len;
      if (!in.ReadVarint32(&len)) return std::nullopt;
      const int at = in.CurrentPosition();
      if (len > size - static_cast<size_t>(at)) return std::nullopt;
      auto ref = def_ref(base + at, static_cast<int>(len));
      if (!in.Skip(static_cast<int>(len))) return std::nullopt;
      if (ref && known(*ref)) {
        if (!cut.empty() && cut.back().second == begin)
          cut.back().second = in.CurrentPosition();
        else
          cut.emplace_back(begin, in.CurrentPosition());
        ++*dropped;
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return std::nullopt;
    }
  }
  if (!in.ConsumedEntireMessage() || in.CurrentPosition() != static_cast<int>(size))
    return std::nullopt;
  if (cut.empty()) return std::nullopt;
  std::string out;
  size_t removed = 0;
  for (auto [b, e] : cut) removed += static_cast<size_t>(e - b);
  out.reserve(size - removed);
  int at = 0;
  for (auto [b, e] : cut) {
    out.append(reinterpret_cast<const char*>(base) + at, static_cast<size_t>(b - at));
    at = e;
  }
  out.append(reinterpret_cast<const char*>(base) + at, size - static_cast<size_t>(at));
  return out;
}

}  // namespace tally::collector
