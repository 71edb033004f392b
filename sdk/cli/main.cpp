// tally: the command-line tool for terminals and scripts (docs/CLI.md).
//
//   tally query api.errors --filter region=eu --group-by status --from -1h --fn sum
//   tally metrics --search api.
//   tally tags api.errors
//   tally cardinality --top 10
//   tally emit deploys 1 --tag service=web
//   tally annotate "Deploy web 1.4" --tag service=web --time -5m
//   tally annotations --from -1d --tag service=web
//   tally tail api.errors api.latency_ms --format json
//
// Exit codes (exit_codes.h): 0 ok, 1 usage, 2 collector unreachable, 3 rejected, 4 not found.
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <iostream>

#include "commands.h"
#include "exit_codes.h"
#include "tally/common/time_bucket.h"
#include "tally/common/version.h"

using namespace tally;
using namespace tally::cli;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop.store(true);
}

// CLI11 validator for "10s", "5m", "2h" (tally::parse_duration).
struct DurationValidator : public CLI::Validator {
  DurationValidator() {
    name_ = "DURATION";
    func_ = [](const std::string& s) -> std::string {
      auto d = parse_duration(s);
      if (!d) return d.status().message();
      if (*d <= 0) return "must be positive";
      return {};
    };
  }
};

std::chrono::milliseconds seconds_of(const std::string& s) {
  return std::chrono::milliseconds(parse_duration(s).value() * 1000);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tally: query, emit and follow the metrics of a Tally collector.\n"
      "Exit codes: 0 ok, 1 usage, 2 collector unreachable, 3 rejected by the collector,\n"
      "4 not found.",
      "tally"};
  app.set_version_flag("--version", std::string("tally ") + tally::kVersion);
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand
  app.get_formatter()->column_width(30);
  const DurationValidator duration;

  GlobalOptions g;
  std::string format = "table";
  std::string timeout = "10s";
  app.add_option("--collector", g.collector, "Collector HTTP API")
      ->envname("TALLY_COLLECTOR")
      ->capture_default_str();
  app.add_option("--ingest", g.ingest, "Collector ingest endpoint (emit)")
      ->envname("TALLY_INGEST")
      ->capture_default_str();
  app.add_option("--live", g.live, "Collector live endpoint (tail)")
      ->envname("TALLY_LIVE")
      ->capture_default_str();
  app.add_option("--token", g.token, "HTTP bearer token (the collector's http_read_tokens)")
      ->envname("TALLY_TOKEN");
  app.add_option("--ca-cert", g.ca_cert, "PEM file to verify an https:// collector with")
      ->envname("TALLY_CA_CERT");
  app.add_option("--format", format, "Output: table, json or csv")
      ->check(CLI::IsMember({"table", "json", "csv"}))
      ->capture_default_str();
  app.add_option("--timeout", timeout, "HTTP request timeout; how long emit waits for the ack")
      ->check(duration)
      ->capture_default_str();
  // Scripts and aliases add flags after the defaults: the last one given wins.
  for (const char* name : {"--collector", "--ingest", "--live", "--format", "--timeout"})
    app.get_option(name)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  QueryArgs qa;
  auto* query = app.add_subcommand("query", "Range query: one value per step bucket per group");
  query->add_option("metric", qa.metric, "Metric name")->required();
  query
      ->add_option("--filter", qa.filters, "Tag filter k=v, k!=v, k=~regex or k!~regex; repeatable")
      ->allow_extra_args(false);
  query->add_option("--group-by", qa.group_by, "Tag keys to group by, comma-separated")
      ->delimiter(',')
      ->allow_extra_args(false);
  query->add_option("--from", qa.from, "Start: unix seconds, -1h, now or 2024-05-01T12:00:00Z")
      ->capture_default_str();
  query->add_option("--to", qa.to, "End (exclusive), same forms as --from")->capture_default_str();
  query->add_option("--step", qa.step, "Bucket width (10s, 1m) or auto")->capture_default_str();
  query->add_option("--fn", qa.fn, "sum, rate, avg, min, max, count, p50, p90, p99")
      ->capture_default_str();

  MetricsArgs ma;
  auto* metrics = app.add_subcommand("metrics", "List metrics with their kind and series count");
  metrics->add_option("--search", ma.search, "Only names containing this");

  TagsArgs ta;
  auto* tags = app.add_subcommand("tags", "List the tag keys and values of a metric");
  tags->add_option("metric", ta.metric, "Metric name")->required();

  CardinalityArgs ca;
  auto* cardinality = app.add_subcommand(
      "cardinality",
      "Which metrics and tag keys hold the series, series created per minute, and what the "
      "cardinality limits folded into __overflow__ series");
  cardinality->add_option("--top", ca.top, "Metrics and tag keys listed")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cardinality
      ->add_option("--show", ca.show, "The table --format csv prints: metrics, tags or minutes")
      ->check(CLI::IsMember({"metrics", "tags", "minutes"}))
      ->capture_default_str();

  EmitArgs ea;
  auto* emit =
      app.add_subcommand("emit", "Send one count, gauge value or observation; waits for the ack");
  emit->add_option("metric", ea.metric, "Metric name")->required();
  emit->add_option("value", ea.value, "The value: a count, a gauge value or an observation")
      ->required();
  emit->add_option("--kind", ea.kind, "counter, gauge or distribution")
      ->check(CLI::IsMember({"counter", "gauge", "distribution"}))
      ->capture_default_str();
  emit->add_option("--tag", ea.tags, "Tag k=v; repeatable")->allow_extra_args(false);

  AnnotateArgs aa;
  auto* annotate = app.add_subcommand(
      "annotate", "Write an annotation (a deploy, an incident) and print its id");
  annotate->add_option("title", aa.title, "One line, 1..200 bytes")->required();
  annotate->add_option("--text", aa.text, "Longer text, up to 4096 bytes");
  annotate->add_option("--tag", aa.tags, "Tag k=v; repeatable")->allow_extra_args(false);
  annotate->add_option("--time", aa.time,
                       "When: unix seconds (1700000000.25), -10m, now or 2024-05-01T12:00:00Z "
                       "(default now)");
  annotate->add_option("--end", aa.end, "When it ended, same forms (default: a point in time)");

  AnnotationsArgs na;
  auto* annotations =
      app.add_subcommand("annotations", "List the annotations that overlap a time range, by time");
  annotations
      ->add_option("--from", na.from, "Start: unix seconds, -1h, now or 2024-05-01T12:00:00Z")
      ->capture_default_str();
  annotations->add_option("--to", na.to, "End (exclusive), same forms as --from")
      ->capture_default_str();
  annotations->add_option("--tag", na.tags, "Only annotations with tag k=v; repeatable")
      ->allow_extra_args(false);
  annotations->add_option("--limit", na.limit, "At most this many (1..10000)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();

  TailArgs la;
  std::string tail_duration;
  auto* tail = app.add_subcommand("tail", "Follow live updates of metrics until Ctrl-C");
  tail->add_option("metrics", la.metrics, "Metric names")->required();
  tail->add_option("--filter", la.filters, "Only series with tag k=v; repeatable")
      ->allow_extra_args(false);
  tail->add_flag("--final", la.final_only,
                 "Only final buckets and corrections, no partial updates");
  tail->add_option("--count", la.count, "Stop after this many updates");
  tail->add_option("--duration", tail_duration, "Stop after this long")->check(duration);

  BackupArgs ba;
  auto* backup = app.add_subcommand(
      "backup",
      "Write a consistent backup of the running collector's data into DIR (on its machine)");
  backup->add_option("dir", ba.dir, "A new or empty directory")->required();

  auto* reload = app.add_subcommand(
      "reload", "Make the running collector read its configuration file again (as SIGHUP)");

  RestoreArgs ra;
  auto* restore = app.add_subcommand(
      "restore", "Check a backup and copy it into a new or empty data directory (offline)");
  restore->add_option("backup", ra.backup, "The backup directory")->required();
  restore->add_option("data_dir", ra.data_dir, "The data directory to create")->required();
  KeygenArgs ka;
  auto* keygen = app.add_subcommand(
      "keygen", "Write a CurveZMQ key pair: NAME.key (public) and NAME.key_secret (0600)");
  keygen->add_option("name", ka.base, "File name without extension, e.g. /etc/tally/collector");
  keygen->add_flag("--token", ka.token, "Print a random HTTP bearer token instead");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  g.format = format == "json" ? Format::kJson : format == "csv" ? Format::kCsv : Format::kTable;
  g.timeout = seconds_of(timeout);
  if (!tail_duration.empty()) la.duration = seconds_of(tail_duration);

  try {
    if (query->parsed()) return run_query(g, qa, std::cout, std::cerr);
    if (metrics->parsed()) return run_metrics(g, ma, std::cout, std::cerr);
    if (tags->parsed()) return run_tags(g, ta, std::cout, std::cerr);
    if (cardinality->parsed()) return run_cardinality(g, ca, std::cout, std::cerr);
    if (emit->parsed()) return run_emit(g, ea, std::cout, std::cerr);
    if (annotate->parsed()) return run_annotate(g, aa, std::cout, std::cerr);
    if (annotations->parsed()) return run_annotations(g, na, std::cout, std::cerr);
    if (backup->parsed()) return run_backup(g, ba, std::cout, std::cerr);
    if (restore->parsed()) return run_restore(g, ra, std::cout, std::cerr);
    if (reload->parsed()) return run_reload(g, std::cout, std::cerr);
    if (keygen->parsed()) return run_keygen(ka, std::cout, std::cerr);
    if (tail->parsed()) {
      std::signal(SIGINT, on_signal);
      std::signal(SIGTERM, on_signal);
      return run_tail(g, la, g_stop, std::cout, std::cerr);
    }
  } catch (const std::exception& e) {
    std::cerr << "tally: " << e.what() << '\n';
    return kExitRejected;
  }
  return kExitUsage;
}
