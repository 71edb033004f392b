// decode_batch: validates one SDK Batch and turns it into per-shard work.
//
// Validation happens before anything changes: a batch with a malformed definition, an invalid
// name or tag, a kind that contradicts the metric's, ragged columns, a non-finite value or a bad
// sketch is rejected whole (INVALID, with the reason) and touches nothing. A batch naming refs
// the collector does not know gets UNKNOWN_REF with the list. Points older than the longest
// retention or too far in the future are dropped one by one and counted; the rest is accepted.
// Thread-safety: called from the ingest thread, which owns the ProducerTable.
#pragma once

#include <string>
#include <vector>

#include "aggregate/cardinality.h"
#include "aggregate/catalog.h"
#include "aggregate/shard.h"
#include "ingest/producer_table.h"
#include "tally.pb.h"

namespace tally::collector {

struct IngestLimits {
  int64_t max_age_s = 2 * 365 * 86400;  // the longest retention
  int64_t max_future_s = 600;
  // Decoded size of one batch, checked before anything is allocated for it (InputLimits).
  int64_t max_points = 1000000;
  int64_t max_defs = 100000;
  int64_t max_sketch_bins = 4096;      // non-empty bins in one distribution point
  int64_t max_sketch_key_span = 4096;  // highest - lowest key of one store of one point
  // False while replaying the write-ahead log: the per-producer new-series limit counted the
  // minute the batch was sent in, not the minute it is replayed in.
  bool rate_limit_new_series = true;
  // True while replaying the write-ahead log: a point whose ref the producer table no longer has
  // is skipped (counted in DecodedBatch::skipped_unknown) instead of refusing the record. A saved
  // ref goes only once its series' expiry is durable, which comes after every point logged for it
  // is stored (catalog.h), or with its producer (forgotten only when the log no longer holds it).
  bool skip_unknown_refs = false;
};

struct DecodedBatch {
  wire::Ack::Code code = wire::Ack::OK;
  std::string reason;
  std::vector<uint32_t> unknown_refs;
  std::vector<ShardWork> per_shard;  // index = shard; UNAVAILABLE: the new series only
  uint64_t points = 0;
  uint64_t rejected_old = 0;
  uint64_t rejected_future = 0;
  uint64_t skipped_unknown = 0;     // replay only (IngestLimits::skip_unknown_refs)
  Limit limit_hit = Limit::kCount;  // the budget an INVALID batch went over, if any
};

// New series are created through `guard` when given (cardinality limits; a definition beyond
// them resolves to its metric's overflow series), else directly in the catalog.
DecodedBatch decode_batch(const wire::Batch& batch, ProducerTable& producers,
                          SeriesCatalog& catalog, const IngestLimits& limits, int64_t now_s,
                          CardinalityGuard* guard = nullptr);

}  // namespace tally::collector
