// Hash of metric + tags straight from the caller's strings, for the per-thread lookup of
// direct calls: no canonical key is built, and the tag order does not matter (each tag is
// hashed on its own and the tag hashes are summed). Not the collector's series_hash(); it
// never leaves the process. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tally/client.h"

namespace tally::detail {

inline uint64_t mix64(uint64_t x) {
  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline uint64_t lookup_hash(std::string_view metric, const TagSpan& tags) {
  uint64_t h = XXH3_64bits(metric.data(), metric.size());
  uint64_t acc = tags.size();
  for (size_t i = 0; i < tags.size(); ++i) {
    TagView t = tags[i];
    uint64_t k = XXH3_64bits_withSeed(t.key.data(), t.key.size(), 0x7461676bULL);
    acc += mix64(XXH3_64bits_withSeed(t.value.data(), t.value.size(), k));
  }
  return h ^ mix64(acc);
}

}  // namespace tally::detail
