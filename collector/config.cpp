#include "config.h"

#include "auth/security_toml.h"
#include "storage/wal.h"

#include <toml++/toml.h>
#include <charconv>
#include <cstdio>
#include <set>
#include <sstream>

namespace tally::collector {

Status CollectorConfig::validate() {
  auto r = parse_retention(retention);
  if (!r) return Status::invalid_argument("retention: " + r.status().message());
  resolutions = *r;
  if (limits.series_idle_expiry_ms < 0)
    limits.series_idle_expiry_ms = resolutions.front().retention_s * 1000;
  if (limits.series_idle_expiry_ms > 0 && limits.series_idle_expiry_ms < 1000)
    return Status::invalid_argument("series_idle_expiry must be at least 1s (or off)");
  if (lateness_s < 0 || lateness_s > 3600)
    return Status::invalid_argument("lateness must be 0s..1h");
  if (max_future_s < 0) return Status::invalid_argument("max_future must not be negative");
  if (shards > 256) return Status::invalid_argument("shards must be at most 256");
  if (data_dir.empty()) return Status::invalid_argument("data_dir is empty");
  if (statsd_dialect != "dogstatsd" && statsd_dialect != "etsy")
    return Status::invalid_argument("statsd_dialect must be \"dogstatsd\" or \"etsy\", not \"" +
                                    statsd_dialect + "\"");
  if (!statsd_unix_dialect.empty() && statsd_unix_dialect != "dogstatsd" &&
      statsd_unix_dialect != "etsy")
    return Status::invalid_argument(
        "statsd_unix_dialect must be \"dogstatsd\" or \"etsy\", not \"" + statsd_unix_dialect +
        "\"");
  if (max_batch_bytes < 1024)
    return Status::invalid_argument("max_batch_bytes must be at least 1024");
  if (max_queued_bytes < 65536)
    return Status::invalid_argument("max_queued_bytes must be at least 65536");
  if (auto f = parse_fsync_policy(fsync); !f)
    return Status::invalid_argument("fsync: " + f.status().message());
  if (wal_segment_bytes < 4096 || wal_segment_bytes > (1ull << 32))
    return Status::invalid_argument("wal_segment_bytes must be 4096..4294967296");
  if (checkpoint_s < 1 || checkpoint_s > 3600)
    return Status::invalid_argument("checkpoint must be 1s..1h");
  static const std::set<std::string> kLevels = {"trace", "debug",    "info", "warn",
                                                "error", "critical", "off"};
  if (!kLevels.count(log_level))
    return Status::invalid_argument("log_level must be one of trace, debug, info, warn, error");
  if (log_max_bytes != 0 && log_max_bytes < 4096)
    return Status::invalid_argument("log_max_bytes must be 0 (never rotate) or at least 4096");
  if (log_max_files < 1 || log_max_files > 200000)
    return Status::invalid_argument("log_max_files must be 1..200000");
  remote_write.add_default_labels();
  if (auto s = remote_write.validate(); !s) return s;
  if (auto s = validate_security(security, {ingest, live, http, statsd}); !s) return s;
  return Status::ok();
}

namespace {

// An integer key's value, from a TOML integer only: toml++'s value<int64_t>() also converts a
// float, and one beyond int64's range (44e034, found by fuzz_config) by an undefined cast.
template <typename View>
std::optional<int64_t> integer_of(const View& n) {
  if (auto* i = n.as_integer()) return i->get();
  return std::nullopt;
}

// "0", "0s", "00m" ...: parse_duration refuses zero (most durations must be positive), but a
// file may say it where the integer 0 is also taken, and config_to_toml prints 0 as "0s".
bool zero_duration(std::string_view v) {
  size_t i = 0;
  while (i < v.size() && v[i] == '0') ++i;
  return i > 0 && (i == v.size() || (i + 1 == v.size() && std::string_view("smhdwy").find(v[i]) !=
                                                              std::string_view::npos));
}

// The remote_write_* keys (forward/remote_write_options.h).
Status load_remote_write(const toml::table& t, const std::string& path, RemoteWriteOptions& rw) {
  if (auto n = t["remote_write_url"]; n) {
    auto v = n.value<std::string>();
    if (!v) return Status::invalid_argument(path + ": 'remote_write_url' must be a string");
    rw.url = *v;
  }
  if (auto n = t["remote_write_labels"]; n) {
    const toml::table* labels = n.as_table();
    if (!labels)
      return Status::invalid_argument(
          path + ": 'remote_write_labels' must be a table like { instance = \"c1\" }");
    for (const auto& [k, v] : *labels) {
      auto value = v.value<std::string>();
      if (!value)
        return Status::invalid_argument(path + ": remote_write_labels." + std::string(k.str()) +
                                        " must be a string");
      if (auto s = rw.set_label(std::string(k.str()) + "=" + *value); !s) return s;
    }
  }
  if (auto n = t["remote_write_headers"]; n) {
    const toml::table* headers = n.as_table();
    if (!headers)
      return Status::invalid_argument(
          path +
          ": 'remote_write_headers' must be a table like { \"X-Scope-OrgID\" = \"team-a\" }");
    for (const auto& [k, v] : *headers) {
      auto value = v.value<std::string>();
      if (!value)
        return Status::invalid_argument(path + ": remote_write_headers." + std::string(k.str()) +
                                        " must be a string");
      rw.headers.emplace_back(std::string(k.str()), *value);
    }
  }
  for (auto [key, field] : {std::pair{"remote_write_max_samples", &rw.max_samples_per_request},
                            {"remote_write_max_buffered", &rw.max_buffered_samples}}) {
    if (auto n = t[key]; n) {
      auto v = integer_of(n);
      if (!v || *v <= 0)
        return Status::invalid_argument(path + ": '" + key + "' must be a positive integer");
      *field = static_cast<uint64_t>(*v);
    }
  }
  for (auto [key, field] : {std::pair{"remote_write_flush_interval", &rw.flush_interval_ms},
                            {"remote_write_timeout", &rw.timeout_ms},
                            {"remote_write_min_backoff", &rw.min_backoff_ms},
                            {"remote_write_max_backoff", &rw.max_backoff_ms}}) {
    if (auto n = t[key]; n) {
      auto v = n.value<std::string>();
      if (!v)
        return Status::invalid_argument(path + ": '" + key +
                                        "' must be a duration like \"500ms\" or \"5s\"");
      auto d = parse_duration_ms(*v);
      if (!d) return Status::invalid_argument(path + ": '" + key + "': " + d.status().message());
      *field = *d;
    }
  }
  return Status::ok();
}

}  // namespace

Result<CollectorConfig> load_config_file(const std::string& path, CollectorConfig c) {
  toml::table t;
#if TOML_EXCEPTIONS
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << path << ":" << e.source().begin.line << ": " << e.description();
    return Status::invalid_argument(os.str());
  }
#else
  auto parsed = toml::parse_file(path);
  if (!parsed) {
    std::ostringstream os;
    os << path << ":" << parsed.error().source().begin.line << ": " << parsed.error().description();
    return Status::invalid_argument(os.str());
  }
  t = std::move(parsed).table();
#endif
  static const std::set<std::string> kKeys = {"data_dir",
                                              "shards",
                                              "ingest",
                                              "http",
                                              "live",
                                              "statsd",
                                              "statsd_unix",
                                              "statsd_dialect",
                                              "statsd_unix_dialect",
                                              "retention",
                                              "lateness",
                                              "max_future",
                                              "max_batch_bytes",
                                              "wal_segment_bytes",
                                              "max_queued_bytes",
                                              "self_metrics",
                                              "log_level",
                                              "log_file",
                                              "log_max_bytes",
                                              "log_max_files",
                                              "fsync",
                                              "checkpoint",
                                              "promql_max_length",
                                              "promql_max_depth",
                                              "remote_write_url",
                                              "remote_write_labels",
                                              "remote_write_headers",
                                              "remote_write_max_samples",
                                              "remote_write_flush_interval",
                                              "remote_write_max_buffered",
                                              "remote_write_timeout",
                                              "remote_write_min_backoff",
                                              "remote_write_max_backoff"};
  for (const auto& [k, v] : t) {
    if (!kKeys.count(std::string(k.str())) && !is_limit_key(k.str()) && !is_security_key(k.str()))
      return Status::invalid_argument(path + ": unknown setting '" + std::string(k.str()) + "'");
  }
  auto str = [&](const char* key, std::string& out) -> Status {
    if (auto n = t[key]; n) {
      auto v = n.value<std::string>();
      if (!v) return Status::invalid_argument(path + ": '" + key + "' must be a string");
      out = *v;
    }
    return Status::ok();
  };
  auto dur = [&](const char* key, int64_t& out) -> Status {
    if (auto n = t[key]; n) {
      if (auto i = integer_of(n)) {
        out = *i;
        return Status::ok();
      }
      auto v = n.value<std::string>();
      if (!v)
        return Status::invalid_argument(path + ": '" + key + "' must be a duration like \"2s\"");
      if (zero_duration(*v)) {  // validate() says which keys take zero (lateness does)
        out = 0;
        return Status::ok();
      }
      auto d = parse_duration(*v);
      if (!d) return Status::invalid_argument(path + ": '" + key + "': " + d.status().message());
      out = *d;
    }
    return Status::ok();
  };
  for (auto [key, field] : {std::pair{"data_dir", &c.data_dir},
                            {"ingest", &c.ingest},
                            {"http", &c.http},
                            {"live", &c.live},
                            {"statsd", &c.statsd},
                            {"statsd_unix", &c.statsd_unix},
                            {"statsd_dialect", &c.statsd_dialect},
                            {"statsd_unix_dialect", &c.statsd_unix_dialect},
                            {"retention", &c.retention},
                            {"log_level", &c.log_level},
                            {"log_file", &c.log_file},
                            {"fsync", &c.fsync}}) {
    if (auto s = str(key, *field); !s) return s;
  }
  if (auto s = dur("lateness", c.lateness_s); !s) return s;
  if (auto s = dur("max_future", c.max_future_s); !s) return s;
  if (auto s = dur("checkpoint", c.checkpoint_s); !s) return s;
  if (auto n = t["shards"]; n) {
    auto v = integer_of(n);
    if (!v || *v < 0)
      return Status::invalid_argument(path + ": 'shards' must be a non-negative integer");
    c.shards = static_cast<uint32_t>(*v);
  }
  if (auto n = t["max_batch_bytes"]; n) {
    auto v = integer_of(n);
    if (!v || *v <= 0)
      return Status::invalid_argument(path + ": 'max_batch_bytes' must be a positive integer");
    c.max_batch_bytes = static_cast<uint64_t>(*v);
  }
  if (auto n = t["wal_segment_bytes"]; n) {
    auto v = integer_of(n);
    if (!v || *v <= 0)
      return Status::invalid_argument(path + ": 'wal_segment_bytes' must be a positive integer");
    c.wal_segment_bytes = static_cast<uint64_t>(*v);
  }
  for (auto [key, field] :
       {std::pair{"log_max_bytes", &c.log_max_bytes}, {"log_max_files", &c.log_max_files}}) {
    if (auto n = t[key]; n) {
      auto v = integer_of(n);
      if (!v || *v < 0)
        return Status::invalid_argument(path + ": '" + key + "' must be a non-negative integer");
      *field = static_cast<uint64_t>(*v);
    }
  }
  if (auto n = t["max_queued_bytes"]; n) {
    auto v = integer_of(n);
    if (!v || *v <= 0)
      return Status::invalid_argument(path + ": 'max_queued_bytes' must be a positive integer");
    c.max_queued_bytes = static_cast<uint64_t>(*v);
  }
  for (auto [key, field] : {std::pair{"promql_max_length", &c.promql_max_length},
                            {"promql_max_depth", &c.promql_max_depth}}) {
    if (auto n = t[key]; n) {
      auto v = integer_of(n);
      if (!v || *v <= 0)
        return Status::invalid_argument(path + ": '" + key + "' must be a positive integer");
      *field = static_cast<uint64_t>(*v);
    }
  }
  if (auto n = t["self_metrics"]; n) {
    auto v = n.value<bool>();
    if (!v) return Status::invalid_argument(path + ": 'self_metrics' must be true or false");
    c.self_metrics = *v;
  }
  for (const auto& [k, node] : t) {
    if (!is_limit_key(k.str())) continue;
    std::string text;
    if (auto i = integer_of(node))
      text = std::to_string(*i);
    else if (auto str_v = node.value<std::string>())
      text = *str_v;
    else
      return Status::invalid_argument(path + ": '" + std::string(k.str()) +
                                      "' must be a positive integer (or a duration)");
    auto set = set_limit(c.limits, k.str(), text);
    if (!set) return Status::invalid_argument(path + ": " + set.status().message());
  }
  if (auto s = load_remote_write(t, path, c.remote_write); !s) return s;
  if (auto s = load_security(t, path, c.security); !s) return s;
  return c;
}

namespace {

struct LimitField {
  const char* key;
  int64_t InputLimits::*field;
  bool duration_ms;
};
constexpr LimitField kLimitFields[] = {
    {"query_max_points", &InputLimits::query_max_points, false},
    {"query_max_series", &InputLimits::query_max_series, false},
    {"query_max_samples", &InputLimits::query_max_samples, false},
    {"query_timeout", &InputLimits::query_timeout_ms, true},
    {"batch_max_points", &InputLimits::batch_max_points, false},
    {"batch_max_defs", &InputLimits::batch_max_defs, false},
    {"sketch_max_bins", &InputLimits::sketch_max_bins, false},
    {"sketch_max_key_span", &InputLimits::sketch_max_key_span, false},
    {"series_max_per_metric", &InputLimits::series_max_per_metric, false},
    {"series_max_total", &InputLimits::series_max_total, false},
    {"series_max_new_per_minute", &InputLimits::series_max_new_per_minute, false},
    {"producers_max", &InputLimits::producers_max, false},
    {"producer_idle", &InputLimits::producer_idle_ms, true},
    {"http_max_connections", &InputLimits::http_max_connections, false},
    {"series_idle_expiry", &InputLimits::series_idle_expiry_ms, true},  // also "off"
    {"annotations_max", &InputLimits::annotations_max, false},
};

}  // namespace

bool is_limit_key(std::string_view key) {
  for (const auto& f : kLimitFields)
    if (key == f.key) return true;
  return false;
}

Result<bool> set_limit(InputLimits& l, std::string_view key, std::string_view value) {
  for (const auto& f : kLimitFields) {
    if (key != f.key) continue;
    if (f.field == &InputLimits::series_idle_expiry_ms && (value == "off" || value == "0")) {
      l.*f.field = 0;
      return true;
    }
    int64_t v = 0;
    if (f.duration_ms) {
      auto d = parse_duration_ms(value);
      if (!d) return Status::invalid_argument(std::string(key) + ": " + d.status().message());
      v = *d;
    } else {
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || p != value.data() + value.size())
        return Status::invalid_argument(std::string(key) + " must be a positive integer");
    }
    if (v <= 0) return Status::invalid_argument(std::string(key) + " must be positive");
    l.*f.field = v;
    return true;
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> limits_as_toml(const InputLimits& l) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : kLimitFields) {
    // A negative duration is "not set" (series_idle_expiry: validate() puts the finest
    // resolution's retention there): left out, so the printed file loads back the same.
    if (f.duration_ms && l.*f.field < 0) continue;
    out.emplace_back(f.key, !f.duration_ms    ? std::to_string(l.*f.field)
                            : l.*f.field == 0 ? "\"off\""
                                              : "\"" + format_duration_ms(l.*f.field) + "\"");
  }
  return out;
}

std::string config_to_toml(const CollectorConfig& c) {
  std::ostringstream o;
  o << "data_dir = " << toml_quoted(c.data_dir) << "\n"
    << "shards = " << c.shards << "\n"
    << "ingest = " << toml_quoted(c.ingest) << "\n"
    << "http = " << toml_quoted(c.http) << "\n"
    << "live = " << toml_quoted(c.live) << "\n"
    << "statsd = " << toml_quoted(c.statsd) << "\n"
    << "statsd_unix = " << toml_quoted(c.statsd_unix) << "\n"
    << "statsd_dialect = " << toml_quoted(c.statsd_dialect) << "\n"
    << "statsd_unix_dialect = " << toml_quoted(c.statsd_unix_dialect) << "\n"
    << "retention = " << toml_quoted(c.retention) << "\n"
    << "lateness = " << toml_quoted(format_duration(c.lateness_s)) << "\n"
    << "max_future = " << toml_quoted(format_duration(c.max_future_s)) << "\n"
    << "max_batch_bytes = " << c.max_batch_bytes << "\n"
    << "wal_segment_bytes = " << c.wal_segment_bytes << "\n"
    << "max_queued_bytes = " << c.max_queued_bytes << "\n"
    << "self_metrics = " << (c.self_metrics ? "true" : "false") << "\n"
    << "fsync = " << toml_quoted(c.fsync) << "\n"
    << "checkpoint = " << toml_quoted(format_duration(c.checkpoint_s)) << "\n"
    << "promql_max_length = " << c.promql_max_length << "\n"
    << "promql_max_depth = " << c.promql_max_depth << "\n"
    << "log_level = " << toml_quoted(c.log_level) << "\n"
    << "log_file = " << toml_quoted(c.log_file) << "\n"
    << "log_max_bytes = " << c.log_max_bytes << "\n"
    << "log_max_files = " << c.log_max_files << "\n";
  for (const auto& [k, v] : limits_as_toml(c.limits)) o << k << " = " << v << "\n";
  const auto& rw = c.remote_write;
  o << "remote_write_url = " << toml_quoted(rw.url) << "\n"
    << "remote_write_labels = {";
  for (size_t i = 0; i < rw.labels.size(); ++i)
    o << (i ? ", " : " ") << rw.labels[i].first << " = " << toml_quoted(rw.labels[i].second);
  o << (rw.labels.empty() ? "}\n" : " }\n");
  // Header values may be secrets (Authorization): names only.
  o << "remote_write_headers = {";
  for (size_t i = 0; i < rw.headers.size(); ++i)
    o << (i ? ", " : " ") << toml_quoted(rw.headers[i].first) << " = \"(set)\"";
  o << (rw.headers.empty() ? "}\n" : " }\n")
    << "remote_write_max_samples = " << rw.max_samples_per_request << "\n"
    << "remote_write_flush_interval = " << toml_quoted(format_duration_ms(rw.flush_interval_ms))
    << "\n"
    << "remote_write_max_buffered = " << rw.max_buffered_samples << "\n"
    << "remote_write_timeout = " << toml_quoted(format_duration_ms(rw.timeout_ms)) << "\n"
    << "remote_write_min_backoff = " << toml_quoted(format_duration_ms(rw.min_backoff_ms)) << "\n"
    << "remote_write_max_backoff = " << toml_quoted(format_duration_ms(rw.max_backoff_ms)) << "\n";
  o << security_to_toml(c.security);
  return o.str();
}

}  // namespace tally::collector
