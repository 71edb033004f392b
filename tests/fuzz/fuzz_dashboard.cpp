// Fuzz: a dashboard JSON file -> parseDashboard. What parses serialises and parses back to the
// same file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/dashboard.h"

using namespace tally;
using namespace tally::dash;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 65536) return 0;
  auto d = parseDashboard(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!d) return 0;
  const std::string once = serializeDashboard(*d);
  auto again = parseDashboard(once);
  if (!again) std::abort();
  if (serializeDashboard(*again) != once) std::abort();
  return 0;
}
