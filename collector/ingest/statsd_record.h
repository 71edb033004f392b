// The write-ahead log's StatsD record (wal_format::kTypeStatsd, docs/format/wal.md): one interval
// of StatsD work, aggregated per (series, 1 s bucket), as a tally.wire.Batch without producer or
// seq. Every series the record touches is defined in it (refs are local to the record, 1, 2, 3
// ...), so a record replays on its own: no producer table, no earlier record needed.
//
//   defs          (ref, metric, canonical tags, kind) of each series touched
//   counters      (ref, second, sum of the interval's increments)
//   gauges        (ref, second, last, min, max, sum, count)
//   distributions (ref, second, sketch)
//
// Thread-safety: pure functions; the catalog is thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "aggregate/catalog.h"
#include "aggregate/shard.h"
#include "tally/common/status.h"

namespace tally::collector {

// Serialises per-shard work (what StatsdRouter::take() returns) into a record payload.
std::string encode_statsd_record(const std::vector<ShardWork>& per_shard);

// Reads a record payload back into per-shard work (index = shard), creating in the catalog the
// series it defines that the catalog does not hold yet (listed in new_series). Fails on a payload
// that does not decode, a point whose ref is not defined, or a series whose metric the catalog
// holds with another kind; then *per_shard may hold part of the record.
Status decode_statsd_record(std::string_view payload, SeriesCatalog& catalog,
                            std::vector<ShardWork>* per_shard, uint64_t* points);

}  // namespace tally::collector
