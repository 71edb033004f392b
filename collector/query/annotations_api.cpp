#include "query/annotations_api.h"

#include <httplib.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "query/http_api.h"
#include "query/http_server.h"
#include "storage/annotation_format.h"

namespace tally::collector {
namespace {

using json = nlohmann::json;

// Unix seconds accepted for time and end: after 1970, before the year 5000 (ms stay far from
// int64's limits).
constexpr double kMaxUnixSeconds = 95617584000.0;

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void error(httplib::Response& res, int status, const std::string& msg) {
  reply(res, status, {{"error", msg}});
}

// Milliseconds as seconds: 1700000000250 -> 1700000000.25, whole seconds as integers.
json seconds(int64_t ms) {
  if (ms % 1000 == 0) return ms / 1000;
  return static_cast<double>(ms) / 1000.0;
}

Result<int64_t> time_field(const json& body, const char* name) {
  const json& v = body.at(name);
  if (!v.is_number())
    return Status::invalid_argument(std::string(name) + ": must be a number (unix seconds)");
  const double s = v.get<double>();
  if (!std::isfinite(s) || s <= 0 || s >= kMaxUnixSeconds)
    return Status::invalid_argument(std::string(name) +
                                    ": must be unix seconds after 1970 and before the year 5000");
  return std::llround(s * 1000.0);
}

// The top-level field a byte at `pos` of a JSON object lies in, for an error message: the last
// known field name that starts before it ("" when none does).
std::string field_at(std::string_view body, size_t pos) {
  std::string best;
  size_t best_at = 0;
  for (const char* name : {"title", "text", "tags", "time", "end"}) {
    const std::string quoted = std::string("\"") + name + "\"";
    size_t at = body.rfind(quoted, pos);
    if (at != std::string_view::npos && (best.empty() || at > best_at)) {
      best = name;
      best_at = at;
    }
  }
  return best;
}

Result<int64_t> parse_id(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0)
    return Status::invalid_argument("id: '" + std::string(s) + "' is not a positive integer");
  return v;
}

}  // namespace

Result<Annotation> parse_annotation_body(std::string_view body, int64_t now_ms) {
  if (body.size() > kMaxAnnotationBodyBytes)
    return Status::invalid_argument("body: " + std::to_string(body.size()) +
                                    " bytes, the limit is " +
                                    std::to_string(kMaxAnnotationBodyBytes));
  // The JSON reader refuses bytes that are not UTF-8 with an offset only: say which field.
  if (!valid_utf8(body, true)) {
    size_t bad = 0;
    uint32_t cp = 0;
    while (bad < body.size()) {
      const size_t n = decode_utf8(body, bad, cp);
      if (n == 0) break;
      bad += n;
    }
    const std::string field = field_at(body, bad);
    return Status::invalid_argument((field.empty() ? std::string("body") : field) +
                                    ": not UTF-8 (byte " + std::to_string(bad) + ")");
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::invalid_argument("body: not JSON");
  if (!j.is_object()) return Status::invalid_argument("body: must be a JSON object");
  for (const auto& [key, v] : j.items()) {
    if (key != "time" && key != "end" && key != "title" && key != "text" && key != "tags")
      return Status::invalid_argument(key +
                                      ": unknown field (use time, end, title, text and tags)");
  }
  Annotation a;
  a.source = "api";
  a.time_ms = now_ms;
  if (j.contains("time")) {
    auto t = time_field(j, "time");
    if (!t) return t.status();
    a.time_ms = *t;
  }
  if (j.contains("end")) {
    auto e = time_field(j, "end");
    if (!e) return e.status();
    a.end_ms = *e;
  }
  if (!j.contains("title")) return Status::invalid_argument("title: missing");
  if (!j["title"].is_string()) return Status::invalid_argument("title: must be a string");
  a.title = j["title"].get<std::string>();
  if (j.contains("text")) {
    if (!j["text"].is_string()) return Status::invalid_argument("text: must be a string");
    a.text = j["text"].get<std::string>();
  }
  if (j.contains("tags")) {
    const json& tags = j["tags"];
    if (!tags.is_object())
      return Status::invalid_argument(
          "tags: must be an object of strings, like {\"env\":\"prod\"}");
    for (const auto& [k, v] : tags.items()) {
      if (!v.is_string()) return Status::invalid_argument("tags: '" + k + "' must be a string");
      a.tags.push_back({k, v.get<std::string>()});
    }
  }
  return a;
}

void register_annotation_routes(httplib::Server& s, AnnotationStore* store, SelfMetrics& metrics,
                                const Clock& clock) {
  s.Post("/api/annotations",
         [store, &metrics, &clock](const httplib::Request& req, httplib::Response& res) {
           http_request_body_read();
           if (!store) return error(res, 404, "annotations are not available in this collector");
           auto a = parse_annotation_body(req.body, clock.now_ms());
           if (!a) {
             metrics.annotations_rejected[0].fetch_add(1, std::memory_order_relaxed);
             return error(res, 400, a.status().message());
           }
           auto id = store->add(std::move(*a));  // counts its own rejections
           if (!id) {
             const bool bad = id.status().code() == StatusCode::kInvalidArgument;
             return error(res,
                          bad                                              ? 400
                          : id.status().code() == StatusCode::kUnavailable ? 503
                                                                           : 500,
                          id.status().message());
           }
           reply(res, 200, {{"id", *id}});
         });

  s.Get("/api/annotations", [store, &clock](const httplib::Request& req, httplib::Response& res) {
    if (!store) return error(res, 404, "annotations are not available in this collector");
    auto range = parse_from_to(req, clock.now_s());
    if (!range) return error(res, 400, range.status().message());
    AnnotationQuery q;
    // Seconds to ms without overflow: the range is clamped to what any annotation can have.
    auto to_ms = [](int64_t sec) {
      return std::clamp<int64_t>(sec, -int64_t{1} << 40, int64_t{1} << 40) * 1000;
    };
    q.from_ms = to_ms(range->first);
    q.to_ms = to_ms(range->second);
    for (size_t i = 0; i < req.get_param_value_count("tag"); ++i) {
      const std::string t = req.get_param_value("tag", i);
      const size_t colon = t.find(':');
      if (colon == std::string::npos) return error(res, 400, "tag: '" + t + "' must be key:value");
      Tag tag{t.substr(0, colon), t.substr(colon + 1)};
      if (auto st = validate_tag_key(tag.key); !st) return error(res, 400, "tag: " + st.message());
      if (auto st = validate_tag_value(tag.value); !st)
        return error(res, 400, "tag: " + st.message());
      q.tags.push_back(std::move(tag));
    }
    if (req.has_param("limit")) {
      const std::string v = req.get_param_value("limit");
      size_t n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || p != v.data() + v.size() || n < 1 || n > 10000)
        return error(res, 400, "limit: must be an integer 1..10000");
      q.limit = n;
    }
    auto page = store->list(q);
    if (!page) return error(res, 500, page.status().message());
    json list = json::array();
    for (const Annotation& a : page->annotations) {
      json tags = json::object();
      for (const auto& t : a.tags) tags[t.key] = t.value;
      json item = {{"id", a.id}, {"time", seconds(a.time_ms)}};
      if (a.end_ms) item["end"] = seconds(*a.end_ms);
      item["title"] = a.title;
      item["text"] = a.text;
      item["tags"] = std::move(tags);
      item["source"] = a.source;
      list.push_back(std::move(item));
    }
    json body = {{"annotations", std::move(list)}};
    if (page->truncated) body["truncated"] = true;
    reply(res, 200, body);
  });

  s.Delete(R"(/api/annotations/([^/]+))",
           [store](const httplib::Request& req, httplib::Response& res) {
             if (!store) return error(res, 404, "annotations are not available in this collector");
             auto id = parse_id(req.matches[1].str());
             if (!id) return error(res, 400, id.status().message());
             auto removed = store->remove(*id);
             if (!removed) return error(res, 500, removed.status().message());
             if (!*removed) return error(res, 404, "no annotation with id " + std::to_string(*id));
             reply(res, 200, {{"deleted", 1}});
           });
}

}  // namespace tally::collector
