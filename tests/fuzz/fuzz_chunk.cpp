// Fuzz: the stored encodings read back from a shard file: chunks (each kind), hot rows, and the
// counter fast paths. The first byte picks the decoder; damage must be a corruption Status.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "storage/chunk_codec.h"

using namespace tally;
using namespace tally::collector;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t which = data[0];
  // nslots as a chunk of the default layout has them (at most 4096 here to keep runs fast).
  const uint32_t nslots = 1u + (static_cast<uint32_t>(data[1]) << 4);
  std::string_view blob(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (which % 6) {
    case 0:
    case 1:
    case 2: {
      const Kind kind = static_cast<Kind>(1 + which % 3);
      std::vector<ChunkSlot> slots;
      Status s = decode_chunk(blob, kind, nslots, &slots);
      if (s) {
        // What decodes re-encodes to something that decodes to the same slots.
        std::vector<ChunkSlot> again;
        if (!decode_chunk(encode_chunk(kind, nslots, slots), kind, nslots, &again)) std::abort();
        if (again.size() != slots.size()) std::abort();
      }
      (void)chunk_kind(blob);
      break;
    }
    case 3: {
      std::vector<HotEntry> entries;
      if (decode_hot_row(blob, &entries)) {
        std::vector<HotEntry> again;
        if (!decode_hot_row(encode_hot_row(entries), &again)) std::abort();
        if (again.size() != entries.size()) std::abort();
      }
      break;
    }
    case 4: {
      HotEntry e;
      bool found = false;
      (void)find_in_hot_row(blob, nslots, &e, &found);
      break;
    }
    case 5: {
      std::vector<double> dense(nslots);
      (void)decode_counter_sums(blob, nslots, dense.data());
      std::vector<SlotRun> runs;
      std::vector<double> values;
      (void)decode_counter_runs(blob, nslots, &runs, &values);
      break;
    }
  }
  return 0;
}
