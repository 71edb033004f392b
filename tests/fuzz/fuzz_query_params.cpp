// Fuzz: the query string of GET /api/query -> the parameters the handler reads (metric, filter,
// group_by, from, to, step, points, fn) -> the plan (step and resolution) the engine would use.
#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "query/http_api.h"
#include "query/query_engine.h"

using namespace tally;
using namespace tally::collector;

namespace {
struct FixedClock : Clock {
  int64_t now_ms() const override { return 1'700'000'000'000; }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  static FixedClock clock;
  static SeriesCatalog catalog(1);
  static Router router({});
  static QueryEngine engine(catalog, router, *parse_retention("1s:1d,10s:7d,1m:30d,1h:2y"), clock);
  httplib::Request req;
  httplib::detail::parse_query_text(std::string(reinterpret_cast<const char*>(data), size),
                                    req.params);
  auto q = parse_range_params(req, clock.now_s(), true);
  if (!q) return 0;
  (void)engine.plan(q->from, q->to, q->step, q->points);
  return 0;
}
