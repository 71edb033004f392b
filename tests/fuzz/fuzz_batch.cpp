// Fuzz: a frame as an SDK sends it -> wire::Batch -> decode_batch (validation, series definitions,
// refs, points). Nothing may crash, and a refused batch creates no series.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "aggregate/catalog.h"
#include "ingest/batch_decoder.h"
#include "ingest/producer_table.h"
#include "tally.pb.h"
#include "tally/common/wire.h"

using namespace tally;
using namespace tally::collector;

// Protobuf's line per invalid UTF-8 string would be most of the run's time (the collector
// quiets it the same way).
static const bool kProtobufQuiet = (tally::quiet_protobuf_log(), true);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wire::Batch batch;
  if (!batch.ParseFromArray(data, static_cast<int>(size))) return 0;
  SeriesCatalog catalog(2);
  auto producers = ProducerTable::open(":memory:", catalog);
  if (!producers) std::abort();
  IngestLimits limits;
  const int64_t now_s = 1'700'000'000;
  DecodedBatch d = decode_batch(batch, **producers, catalog, limits, now_s);
  if (d.code != wire::Ack::OK && d.code != wire::Ack::UNKNOWN_REF && catalog.size() != 0)
    std::abort();  // validation runs to the end before anything is created
  if (d.code == wire::Ack::OK && d.per_shard.size() != 2) std::abort();
  // The same batch once more: a second decode sees the refs the first defined.
  (void)decode_batch(batch, **producers, catalog, limits, now_s);
  return 0;
}
