// Constants of the SDK side of the ingest protocol (docs/format/wire.md).
//
//   SDK DEALER  --[ Batch ]-->  collector ROUTER     one frame: a serialised tally.wire.Batch
//   SDK DEALER  <--[ Ack ]---   collector ROUTER     one frame: a serialised tally.wire.Ack
//
// The ROUTER sees [identity][Batch] and answers [identity][Ack]; neither side adds an empty
// delimiter frame.
#pragma once

#include <cstdint>

namespace tally::detail {

// Bucket width of every point the SDK sends: 1 s (times are unix seconds).
inline constexpr int64_t kBucketMs = 1000;

// Refs are dense per-client integers starting at 0; this one marks "no series".
inline constexpr uint32_t kInvalidRef = UINT32_MAX;

// DEALER socket settings. Immediate: queue only to a completed connection, so a batch that
// cannot be sent stays in our bounded buffer instead of a hidden ZeroMQ queue.
inline constexpr int kSendHighWaterMark = 1000;
inline constexpr int kReconnectIvlMs = 100;
inline constexpr int kReconnectIvlMaxMs = 2000;

// The flush thread never sleeps longer than this (real time) without re-reading the clock;
// an injected clock is polled faster so tests that move it see prompt reactions.
inline constexpr int64_t kMaxIdleWaitMs = 1000;
inline constexpr int64_t kMaxIdleWaitInjectedMs = 10;

}  // namespace tally::detail
