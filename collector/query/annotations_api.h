// The annotation routes of the HTTP API (docs/API.md, "Annotations"):
//   POST   /api/annotations        {"time": 1700000000.25, "end": ..., "title": "...", "text":
//                                   "...", "tags": {"k": "v"}}  -> 200 {"id": 42}
//   GET    /api/annotations?from=&to=&tag=k:v&limit=N  -> {"annotations": [...], "truncated"}
//   DELETE /api/annotations/<id>  -> 200 {"deleted": 1} or 404
// POST and DELETE change state: with tokens configured they need an admin token (HttpGuard).
// Thread-safety: the handlers run on httplib's pool; the store serialises its own work.
#pragma once

#include <string_view>

#include "self_metrics.h"
#include "storage/annotation_store.h"
#include "tally/common/time_bucket.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace tally::collector {

// The largest POST body taken (bytes); a larger one is answered 400 before it is parsed.
inline constexpr size_t kMaxAnnotationBodyBytes = 64 * 1024;

// Reads a POST body into an annotation (source "api"); time defaults to now_ms. Errors name the
// field ("title: must be a string"); the store's validate_annotation() runs on what it returns.
Result<Annotation> parse_annotation_body(std::string_view body, int64_t now_ms);

// Registers the three routes; with no store (null) they answer 404.
void register_annotation_routes(httplib::Server& s, AnnotationStore* store, SelfMetrics& metrics,
                                const Clock& clock);

}  // namespace tally::collector
