// Deadline: when a piece of work (one query) must be done by. Long loops ask passed() every so
// many items (the clock is read each time), and give up with a status when it has.
// Thread-safety: const; any thread may ask (the query's shard reads run in parallel).
#pragma once

#include <cstdint>

#include "tally/common/time_bucket.h"

namespace tally::collector {

// What a read that gave up at its deadline answers (Status::unavailable); the query engine turns
// it into the 400 that names the budget.
inline constexpr const char* kPastDeadline = "past the query's deadline";

class Deadline {
 public:
  Deadline() = default;  // never passes
  Deadline(const Clock& clock, int64_t at_ms) : clock_(&clock), at_ms_(at_ms) {}
  bool passed() const { return clock_ != nullptr && clock_->now_ms() > at_ms_; }
  // passed(), asked once every `every` calls (counted in *n, the caller's loop counter).
  bool passed_every(uint32_t* n, uint32_t every = 256) const {
    return clock_ != nullptr && ++*n % every == 0 && passed();
  }

 private:
  const Clock* clock_ = nullptr;
  int64_t at_ms_ = 0;
};

}  // namespace tally::collector
