// Fuzz: a PromQL query -> parse -> check. A parse error is a Status; a parsed query checks to a
// type or a problem.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "query/promql.h"

using namespace tally::collector;
using namespace tally::collector::promql;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The HTTP API takes at most an 8 KiB query body.
  if (size > 8192) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto expr = parse(text);
  if (expr && expr->root) {
    ValueType type{};
    (void)check(*expr->root, &type);
  }
  (void)parse_selector(text);
  return 0;
}
