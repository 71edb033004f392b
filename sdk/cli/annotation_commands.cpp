// tally annotate / tally annotations: write and list annotations (docs/CLI.md, docs/API.md).
#include <charconv>
#include <chrono>
#include <nlohmann/json.hpp>
#include <ostream>

#include "collector_http.h"
#include "commands.h"
#include "exit_codes.h"
#include "tally/common/time_bucket.h"

namespace tally::cli {
namespace {

using json = nlohmann::json;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A JSON number with at most millisecond precision: 1700000000.25, 1700000060.
json seconds_json(double s) {
  const auto ms = static_cast<int64_t>(std::llround(s * 1000.0));
  if (ms % 1000 == 0) return ms / 1000;
  return static_cast<double>(ms) / 1000.0;
}

}  // namespace

std::optional<double> annotation_time(const std::string& text, double now_s) {
  if (text.empty() || text == "now") return now_s;
  if (text.front() == '-') {
    auto ms = parse_duration_ms(std::string_view(text).substr(1));
    if (!ms) return std::nullopt;
    return now_s - static_cast<double>(*ms) / 1000.0;
  }
  if (auto t = parse_time_utc(text)) return static_cast<double>(*t);
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return v;
}

int run_annotate(const GlobalOptions& g, const AnnotateArgs& a, std::ostream& out,
                 std::ostream& err) {
  const double now = now_seconds();
  json body = {{"title", a.title}};
  if (!a.text.empty()) body["text"] = a.text;
  for (const auto& [flag, text] : {std::pair{"--time", &a.time}, {"--end", &a.end}}) {
    if (text->empty()) continue;
    auto t = annotation_time(*text, now);
    if (!t) {
      err << "tally: " << flag << " '" << *text
          << "' must be unix seconds, now, -<duration> or 2024-05-01T12:00:00Z\n";
      return kExitUsage;
    }
    body[std::string(flag).substr(2)] = seconds_json(*t);
  }
  if (!a.tags.empty()) {
    json tags = json::object();
    for (const auto& t : a.tags) {
      std::string key, value;
      if (!split_tag(t, key, value)) {
        err << "tally: --tag '" << t << "' must be key=value\n";
        return kExitUsage;
      }
      tags[key] = value;
    }
    body["tags"] = std::move(tags);
  }
  auto target = parse_collector_url(g.collector);
  if (!target) {
    err << "tally: " << target.status().message() << '\n';
    return kExitUsage;
  }
  CollectorHttp http(*target, g.timeout);
  http.set_auth(g.token, g.ca_cert);
  HttpReply r = http.post_json("/api/annotations", body);
  if (r.exit_code != kExitOk) {
    err << "tally: " << r.error << '\n';
    return r.exit_code;
  }
  if (g.format == Format::kJson)
    out << r.body.dump() << '\n';
  else
    out << r.body.value("id", int64_t{0}) << '\n';
  return kExitOk;
}

int run_annotations(const GlobalOptions& g, const AnnotationsArgs& a, std::ostream& out,
                    std::ostream& err) {
  // ISO times become unix seconds; the rest goes as typed and the collector parses it as
  // /api/query's from and to.
  auto time_param = [](const std::string& text) {
    if (auto t = parse_time_utc(text)) return std::to_string(*t);
    return text;
  };
  std::multimap<std::string, std::string> params{
      {"from", time_param(a.from)}, {"to", time_param(a.to)}, {"limit", std::to_string(a.limit)}};
  for (const auto& t : a.tags) {
    std::string key, value;
    if (!split_tag(t, key, value)) {
      err << "tally: --tag '" << t << "' must be key=value\n";
      return kExitUsage;
    }
    params.emplace("tag", key + ":" + value);
  }
  json body;
  if (int rc = call_collector(g, false, "/api/annotations", params, g.timeout, &body, err);
      rc != kExitOk)
    return rc;
  switch (g.format) {
    case Format::kJson:
      out << body.dump() << '\n';
      break;
    case Format::kCsv:
      write_csv(annotations_table(body, false), out);
      break;
    case Format::kTable:
      write_table(annotations_table(body, true), out);
      break;
  }
  return kExitOk;
}

}  // namespace tally::cli
