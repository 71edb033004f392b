#include "commands.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <ostream>
#include <random>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "collector_http.h"
#include "exit_codes.h"
#include "tally.pb.h"
#include "tally/client.h"
#include "tally/common/curve_keys.h"
#include "tally/common/wire.h"

namespace tally::cli {
namespace {

using nlohmann::json;
using Params = std::multimap<std::string, std::string>;

// One GET with the query's timeout; prints the failure to err.
int fetch(const GlobalOptions& g, const std::string& path, const Params& params, json& body,
          std::ostream& err) {
  return call_collector(g, false, path, params, g.timeout, &body, err);
}

// ISO-8601 UTC times become unix seconds; everything else ("now", "-1h", unix seconds) goes to
// the collector as typed, and the collector says what it does not understand.
std::string time_param(const std::string& text) {
  if (auto t = parse_time_utc(text)) return std::to_string(*t);
  return text;
}

void print(const GlobalOptions& g, const json& body, const TextTable& table, std::ostream& out) {
  switch (g.format) {
    case Format::kJson:
      out << body.dump() << '\n';
      break;
    case Format::kCsv:
      write_csv(table, out);
      break;
    case Format::kTable:
      write_table(table, out);
      break;
  }
}

}  // namespace

bool split_tag(const std::string& text, std::string& key, std::string& value) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  key = text.substr(0, eq);
  value = text.substr(eq + 1);
  return true;
}

int call_collector(const GlobalOptions& g, bool post, const std::string& path,
                   const std::multimap<std::string, std::string>& params,
                   std::chrono::milliseconds timeout, json* body, std::ostream& err) {
  auto target = parse_collector_url(g.collector);
  if (!target) {
    err << "tally: " << target.status().message() << '\n';
    return kExitUsage;
  }
  CollectorHttp http(*target, timeout);
  http.set_auth(g.token, g.ca_cert);
  HttpReply r = post ? http.post(path, params) : http.get(path, params);
  if (r.exit_code != kExitOk) {
    err << "tally: " << r.error << '\n';
    return r.exit_code;
  }
  *body = std::move(r.body);
  return kExitOk;
}

int run_query(const GlobalOptions& g, const QueryArgs& a, std::ostream& out, std::ostream& err) {
  Params params{{"metric", a.metric},
                {"from", time_param(a.from)},
                {"to", time_param(a.to)},
                {"step", a.step},
                {"fn", a.fn}};
  for (const auto& f : a.filters) params.emplace("filter", f);
  if (!a.group_by.empty()) {
    std::string joined;
    for (const auto& k : a.group_by) joined += (joined.empty() ? "" : ",") + k;
    params.emplace("group_by", joined);
  }
  json body;
  if (int rc = fetch(g, "/api/query", params, body, err); rc != kExitOk) return rc;
  if (g.format == Format::kTable) {
    out << "# " << body.value("metric", a.metric) << " (" << body.value("kind", "?") << ") "
        << body.value("fn", a.fn) << ", step " << body.value("step", 0) << "s, "
        << format_time_utc(body.value("from", int64_t{0})) << " .. "
        << format_time_utc(body.value("to", int64_t{0})) << '\n';
  }
  print(g, body,
        g.format == Format::kTable ? query_wide_table(body) : query_long_table(body, false), out);
  return kExitOk;
}

int run_metrics(const GlobalOptions& g, const MetricsArgs& a, std::ostream& out,
                std::ostream& err) {
  Params params;
  if (!a.search.empty()) params.emplace("search", a.search);
  json body;
  if (int rc = fetch(g, "/api/metrics", params, body, err); rc != kExitOk) return rc;
  print(g, body, metrics_table(body), out);
  return kExitOk;
}

int run_cardinality(const GlobalOptions& g, const CardinalityArgs& a, std::ostream& out,
                    std::ostream& err) {
  json body;
  if (int rc = fetch(g, "/api/cardinality", {{"limit", std::to_string(a.top)}}, body, err);
      rc != kExitOk)
    return rc;
  switch (g.format) {
    case Format::kJson:
      out << body.dump() << '\n';
      return kExitOk;
    case Format::kCsv:
      write_csv(a.show == "tags"      ? cardinality_tags_table(body)
                : a.show == "minutes" ? cardinality_minutes_table(body, false)
                                      : cardinality_metrics_table(body),
                out);
      return kExitOk;
    case Format::kTable:
      break;
  }
  const json limits = body.value("limits", json::object());
  out << "# " << body.value("series", uint64_t{0}) << " series in "
      << body.value("metrics", uint64_t{0}) << " metrics; "
      << body.value("overflow_total", uint64_t{0})
      << " new tag combinations folded into __overflow__ series; limits: "
      << limits.value("series_max_per_metric", int64_t{0}) << " series per metric, "
      << limits.value("series_max_total", int64_t{0}) << " in total, "
      << limits.value("series_max_new_per_minute", int64_t{0}) << " new per producer a minute\n";
  out << "\n# Metrics by series\n";
  write_table(cardinality_metrics_table(body), out);
  out << "\n# Tag keys by distinct values\n";
  write_table(cardinality_tags_table(body), out);
  // Only the minutes that created something; --format csv --show minutes has all sixty.
  TextTable minutes = cardinality_minutes_table(body, true);
  std::erase_if(minutes.rows, [](const auto& row) { return row[1] == "0"; });
  out << "\n# Series created per minute (last hour, minutes without any left out)\n";
  write_table(minutes, out);
  return kExitOk;
}

int run_tags(const GlobalOptions& g, const TagsArgs& a, std::ostream& out, std::ostream& err) {
  json body;
  if (int rc = fetch(g, "/api/tags", {{"metric", a.metric}}, body, err); rc != kExitOk) return rc;
  print(g, body, tags_table(body), out);
  return kExitOk;
}

int run_emit(const GlobalOptions& g, const EmitArgs& a, std::ostream& out, std::ostream& err) {
  auto kind = parse_kind(a.kind);
  if (!kind) {
    err << "tally: unknown kind '" << a.kind << "'; use counter, gauge or distribution\n";
    return kExitUsage;
  }
  if (!std::isfinite(a.value)) {
    err << "tally: the value must be a finite number\n";
    return kExitUsage;
  }
  Tags tags;
  for (const auto& t : a.tags) {
    Tag tag;
    if (!split_tag(t, tag.key, tag.value)) {
      err << "tally: tag '" << t << "' must be key=value\n";
      return kExitUsage;
    }
    tags.push_back(std::move(tag));
  }
  if (Status s = Client::validate(a.metric, tags); !s) {
    err << "tally: " << s.message() << '\n';
    return kExitUsage;
  }

  ClientOptions opts;
  opts.endpoint = g.ingest;
  opts.close_timeout = std::chrono::milliseconds(0);  // flush() below already waited
  Client client(opts);
  if (std::string e = client.last_error(); !e.empty()) {
    err << "tally: " << e << '\n';
    return kExitUsage;
  }
  switch (*kind) {
    case Kind::kCounter:
      client.count(a.metric, a.value, tags);
      break;
    case Kind::kGauge:
      client.set_gauge(a.metric, a.value, tags);
      break;
    case Kind::kDistribution:
      client.observe(a.metric, a.value, tags);
      break;
  }
  const bool flushed = client.flush(g.timeout);
  const ClientStats stats = client.stats();
  if (stats.invalid_values > 0) {
    err << "tally: " << client.last_error() << '\n';
    return kExitUsage;
  }
  if (stats.batches_rejected > 0) {
    err << "tally: " << client.last_error() << '\n';
    return kExitRejected;
  }
  if (!flushed || stats.batches_acked == 0) {
    err << "tally: no acknowledgement from " << g.ingest << " within " << g.timeout.count() / 1000.0
        << " s" << (client.last_error().empty() ? "" : " (" + client.last_error() + ")") << '\n';
    return kExitUnreachable;
  }

  canonicalize(tags);
  json jtags = json::object();
  for (const auto& t : tags) jtags[t.key] = t.value;
  json body = {{"acknowledged", true},
               {"metric", a.metric},
               {"kind", kind_name(*kind)},
               {"value", a.value},
               {"tags", jtags}};
  TextTable table;
  table.header = {"metric", "kind", "tags", "value", "acknowledged"};
  table.rows.push_back(
      {a.metric, kind_name(*kind), tags_to_string(tags), format_number(a.value), "true"});
  if (g.format == Format::kTable) {
    out << "acknowledged: " << kind_name(*kind) << ' ' << a.metric
        << (tags.empty() ? "" : "{" + tags_to_string(tags) + "}") << ' ' << format_number(a.value)
        << '\n';
  } else {
    print(g, body, table, out);
  }
  return kExitOk;
}

int run_tail(const GlobalOptions& g, const TailArgs& a, const std::atomic<bool>& stop,
             std::ostream& out, std::ostream& err) {
  std::vector<std::pair<std::string, std::string>> filters;
  for (const auto& f : a.filters) {
    std::string k, v;
    if (!split_tag(f, k, v)) {
      err << "tally: filter '" << f << "' must be key=value\n";
      return kExitUsage;
    }
    filters.emplace_back(k, v);
  }
  const std::set<std::string> wanted(a.metrics.begin(), a.metrics.end());

  zmq::context_t ctx(1);
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  // Connection events tell "not connected yet" apart from "connected, nothing happening".
  const std::string monitor_endpoint = "inproc://tally-tail-monitor";
  if (zmq_socket_monitor(sub.handle(), monitor_endpoint.c_str(),
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0) {
    err << "tally: zmq_socket_monitor: " << zmq_strerror(zmq_errno()) << '\n';
    return kExitUsage;
  }
  zmq::socket_t monitor(ctx, zmq::socket_type::pair);
  monitor.set(zmq::sockopt::linger, 0);
  monitor.connect(monitor_endpoint);
  // CURVE keys from the environment, as the SDK takes them (TALLY_CURVE_*).
  auto keys = resolve_curve_client_keys({});
  if (!keys) {
    err << "tally: " << keys.status().message() << '\n';
    return kExitUsage;
  }
  if (auto st = apply_curve_client(sub.handle(), *keys); !st) {
    err << "tally: " << st.message() << '\n';
    return kExitUsage;
  }
  try {
    for (const auto& m : wanted) sub.set(zmq::sockopt::subscribe, m);
    sub.connect(g.live);
  } catch (const zmq::error_t& e) {
    err << "tally: cannot connect to " << g.live << ": " << e.what() << '\n';
    return kExitUsage;
  }

  if (g.format == Format::kCsv) {
    TextTable header;
    header.header = live_update_header();
    write_csv(header, out);
    out.flush();
  }

  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  bool connected = false;
  bool ever_connected = false;
  bool warned = false;
  uint64_t printed = 0;
  wire::LiveBatch batch;
  while (!stop.load()) {
    const auto now = Clock::now();
    if (a.duration.count() > 0 && now - started >= a.duration) break;
    if (!connected && !warned && now - started >= g.timeout) {
      err << "tally: not connected to " << g.live << " yet; still trying\n";
      warned = true;
    }
    zmq::pollitem_t items[] = {{sub.handle(), 0, ZMQ_POLLIN, 0},
                               {monitor.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(100));
    } catch (const zmq::error_t& e) {
      // SIGINT / SIGTERM while waiting: the loop sees `stop` and ends as --duration would.
      if (e.num() == EINTR) continue;
      throw;
    }
    if (items[1].revents & ZMQ_POLLIN) {
      zmq::message_t event, endpoint;
      if (monitor.recv(event, zmq::recv_flags::dontwait) && event.size() >= 2) {
        uint16_t id = 0;
        std::memcpy(&id, event.data(), sizeof id);
        if (event.more()) (void)monitor.recv(endpoint, zmq::recv_flags::dontwait);
        if (id == ZMQ_EVENT_CONNECTED) {
          connected = true;
          ever_connected = true;
          if (warned) err << "tally: connected to " << g.live << '\n';
        }
        if (id == ZMQ_EVENT_DISCONNECTED) connected = false;
      }
    }
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    zmq::message_t topic, payload;
    if (!sub.recv(topic, zmq::recv_flags::dontwait)) continue;
    if (!topic.more()) continue;
    (void)sub.recv(payload, zmq::recv_flags::dontwait);
    while (payload.more()) {  // unexpected extra frames: drain them
      zmq::message_t extra;
      (void)sub.recv(extra, zmq::recv_flags::dontwait);
      if (!extra.more()) break;
    }
    // Subscriptions are prefix matches: "api.errors" also receives "api.errors_total".
    if (!wanted.contains(std::string(static_cast<const char*>(topic.data()), topic.size())))
      continue;
    if (!batch.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      err << "tally: undecodable live update on topic " << topic.to_string() << '\n';
      continue;
    }
    for (const auto& u : batch.updates()) {
      if (a.final_only && u.state() == wire::LiveUpdate::PARTIAL) continue;
      bool match = true;
      for (const auto& [k, v] : filters) {
        bool found = false;
        for (const auto& t : u.tags()) found = found || (t.key() == k && t.value() == v);
        match = match && found;
      }
      if (!match) continue;
      switch (g.format) {
        case Format::kJson:
          out << live_update_json(u).dump() << '\n';
          break;
        case Format::kCsv: {
          TextTable row;
          row.rows.push_back(live_update_row(u, false));
          for (size_t i = 0; i < row.rows[0].size(); ++i)
            out << (i ? "," : "") << csv_field(row.rows[0][i]);
          out << '\n';
          break;
        }
        case Format::kTable:
          out << live_update_line(u) << '\n';
          break;
      }
      out.flush();
      if (a.count > 0 && ++printed >= a.count) return kExitOk;
    }
  }
  if (!ever_connected && a.duration.count() > 0 && !stop.load()) {
    err << "tally: never connected to " << g.live << '\n';
    return kExitUnreachable;
  }
  return kExitOk;
}

int run_keygen(const KeygenArgs& a, std::ostream& out, std::ostream& err) {
  if (a.token) {
    // 32 random bytes as hex: a bearer token for http_read_tokens / http_admin_tokens.
    std::random_device rd;  // /dev/urandom on Linux
    static const char kHex[] = "0123456789abcdef";
    std::string t;
    for (int i = 0; i < 32; ++i) {
      const auto b = static_cast<unsigned>(rd()) & 0xff;
      t += kHex[b >> 4];
      t += kHex[b & 15];
    }
    out << t << '\n';
    return kExitOk;
  }
  if (a.base.empty()) {
    err << "tally: keygen needs a file name (writes NAME.key and NAME.key_secret) or --token\n";
    return kExitUsage;
  }
  auto pair = generate_curve_key_pair();
  if (!pair) {
    err << "tally: " << pair.status().message() << '\n';
    return kExitRejected;
  }
  if (auto st = write_curve_key_files(a.base, *pair); !st) {
    err << "tally: " << st.message() << '\n';
    return kExitRejected;
  }
  out << "public-key = \"" << pair->public_key << "\"\n"
      << "wrote " << a.base << ".key (public) and " << a.base << ".key_secret (secret, 0600)\n";
  return kExitOk;
}

}  // namespace tally::cli
