// Hash of metric + tags straight from the caller's strings, for the per-thread lookup of
// direct calls: no canonical key is built, and the tag order does not matter (each tag is
// hashed on its own and the tag hashes are summed). Not the collector's series_hash(); it
// never leaves the process. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

#include <cstring>

#include "tally/client.h"

namespace tally::detail {

inline uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 64x64 -> 128 multiply folded to 64 bits (the wyhash mixing step).
inline uint64_t mum(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline constexpr uint64_t kP0 = 0xa0761d6478bd642fULL;
inline constexpr uint64_t kP1 = 0xe7037ed1a0b428dbULL;
inline constexpr uint64_t kP2 = 0x8ebc6af09c88c6e3ULL;

// A short-string hash in the style of wyhash: one 64x64->128 multiply per 8 bytes, the tail
// (0..8 bytes) read with at most two loads, no finalisation (the caller mixes once at the
// end). Names and tag values are short, so this is a handful of cycles per string.
inline uint64_t absorb(uint64_t h, std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  h ^= n * kP0;  // the length keeps "ab"+"c" apart from "a"+"bc"
  while (n > 8) {
    h = mum(h ^ load64(p), kP1);
    p += 8;
    n -= 8;
  }
  uint64_t tail;
  if (n >= 4)
    tail = (load32(p) << 32) | load32(p + n - 4);
  else if (n > 0)
    tail = (static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16) |
           (static_cast<uint64_t>(static_cast<uint8_t>(p[n >> 1])) << 8) |
           static_cast<uint8_t>(p[n - 1]);
  else
    tail = 0;
  return mum(h ^ tail, kP2);
}

inline uint64_t lookup_hash(std::string_view metric, const TagSpan& tags) {
  uint64_t h = absorb(kP0, metric);
  uint64_t acc = tags.size();
  for (size_t i = 0; i < tags.size(); ++i) {
    TagView t = tags[i];
    acc += mum(absorb(absorb(kP1, t.key), t.value), kP0);  // a sum: the tag order does not matter
  }
  return mum(h ^ acc, kP1);
}

// Equality for short strings without a call to memcmp: whole words, the tail by an
// overlapping load.
inline bool same_bytes(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char* p = a.data();
  const char* q = b.data();
  if (n >= 8) {
    for (size_t i = 0; i + 8 <= n; i += 8)
      if (load64(p + i) != load64(q + i)) return false;
    return load64(p + n - 8) == load64(q + n - 8);
  }
  if (n >= 4) return load32(p) == load32(q) && load32(p + n - 4) == load32(q + n - 4);
  if (n == 0) return true;
  return p[0] == q[0] && p[n >> 1] == q[n >> 1] && p[n - 1] == q[n - 1];
}

}  // namespace tally::detail
