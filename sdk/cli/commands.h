// The `tally` tool's subcommands (docs/CLI.md). Each returns an exit code (exit_codes.h), writes
// its result to `out` and one-line problems to `err`. main.cpp parses the command line into these
// structs. Thread-safety: one command at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "output.h"

#include "tally/common/endpoints.h"

namespace tally::cli {

struct GlobalOptions {
  std::string collector = tally::kDefaultCollectorUrl;
  std::string ingest = tally::kDefaultIngestEndpoint;
  std::string live = tally::kDefaultLiveEndpoint;
  Format format = Format::kTable;
  std::chrono::milliseconds timeout{10'000};  // HTTP requests; emit's wait for the ack
  std::string token;                          // HTTP bearer token (TALLY_TOKEN); empty = none
  std::string ca_cert;  // PEM file to verify an https:// collector with (TALLY_CA_CERT)
};

struct KeygenArgs {
  std::string base;    // writes <base>.key and <base>.key_secret
  bool token = false;  // print a new HTTP token instead
};

struct QueryArgs {
  std::string metric;
  std::vector<std::string> filters;  // "k=v", "k!=v", "k=~re"
  std::vector<std::string> group_by;
  std::string from = "-1h";
  std::string to = "now";
  std::string step = "auto";
  std::string fn = "sum";
};

struct MetricsArgs {
  std::string search;
};

struct TagsArgs {
  std::string metric;
};

struct CardinalityArgs {
  int top = 20;                  // metrics and tag keys listed
  std::string show = "metrics";  // the one table of --format csv: metrics, tags or minutes
};

struct EmitArgs {
  std::string metric;
  double value = 1;
  std::string kind = "counter";   // counter, gauge, distribution
  std::vector<std::string> tags;  // "k=v"
};

struct TailArgs {
  std::vector<std::string> metrics;
  std::vector<std::string> filters;       // "k=v": only updates whose tag k equals v
  bool final_only = false;                // skip PARTIAL updates
  uint64_t count = 0;                     // stop after this many updates; 0 = never
  std::chrono::milliseconds duration{0};  // stop after this long; 0 = never
};

// One request to the collector --collector names, with --token and --ca-cert: a GET, or a POST
// with the parameters form-encoded. On failure writes "tally: <why>" to err and returns the exit
// code (exit_codes.h); on success fills *body and returns kExitOk.
int call_collector(const GlobalOptions& g, bool post, const std::string& path,
                   const std::multimap<std::string, std::string>& params,
                   std::chrono::milliseconds timeout, nlohmann::json* body, std::ostream& err);

// "k=v" -> key k, value v (the value may contain '='); false without a key or '='.
bool split_tag(const std::string& text, std::string& key, std::string& value);

int run_query(const GlobalOptions& g, const QueryArgs& a, std::ostream& out, std::ostream& err);
int run_metrics(const GlobalOptions& g, const MetricsArgs& a, std::ostream& out, std::ostream& err);
int run_tags(const GlobalOptions& g, const TagsArgs& a, std::ostream& out, std::ostream& err);
// GET /api/cardinality: top metrics by series (with what overflowed), top tag keys by distinct
// values, series created per minute.
int run_cardinality(const GlobalOptions& g, const CardinalityArgs& a, std::ostream& out,
                    std::ostream& err);
int run_emit(const GlobalOptions& g, const EmitArgs& a, std::ostream& out, std::ostream& err);
// Writes a CURVE key pair (or prints a random HTTP token); docs/SECURITY.md.
int run_keygen(const KeygenArgs& a, std::ostream& out, std::ostream& err);
// Runs until `stop` is set (SIGINT/SIGTERM), count updates were printed, or duration passed.
int run_tail(const GlobalOptions& g, const TailArgs& a, const std::atomic<bool>& stop,
             std::ostream& out, std::ostream& err);

}  // namespace tally::cli

// Annotations (annotation_commands.cpp; docs/CLI.md): deploys, incidents, DogStatsD events.
namespace tally::cli {

struct AnnotateArgs {
  std::string title;
  std::string text;
  std::vector<std::string> tags;  // "k=v"
  std::string time;               // unix seconds (fractions to ms), -1h, now or ISO; "" = now
  std::string end;                // the same forms; "" = a point in time
};

struct AnnotationsArgs {
  std::string from = "-1h";
  std::string to = "now";
  std::vector<std::string> tags;  // "k=v": all must match
  int limit = 1000;
};

// "now", "-<duration>", "2024-05-01T12:00:00Z" or unix seconds ("1700000000.25") -> unix seconds.
std::optional<double> annotation_time(const std::string& text, double now_s);
// POST /api/annotations; prints the new id.
int run_annotate(const GlobalOptions& g, const AnnotateArgs& a, std::ostream& out,
                 std::ostream& err);
// GET /api/annotations: a table, the collector's JSON, or CSV.
int run_annotations(const GlobalOptions& g, const AnnotationsArgs& a, std::ostream& out,
                    std::ostream& err);

}  // namespace tally::cli

// Backups (backup_commands.cpp; docs/OPERATIONS.md).
namespace tally::cli {

struct BackupArgs {
  std::string dir;  // on the collector's machine; a relative path is made absolute here
};
struct RestoreArgs {
  std::string backup;
  std::string data_dir;
};

// Asks the running collector to write a consistent backup into a.dir (ingest goes on).
int run_backup(const GlobalOptions& g, const BackupArgs& a, std::ostream& out, std::ostream& err);
// Asks the running collector to read its configuration file again (POST /api/admin/reload).
int run_reload(const GlobalOptions& g, std::ostream& out, std::ostream& err);
// Checks a backup against its manifest and copies it into a new or empty data directory.
int run_restore(const GlobalOptions& g, const RestoreArgs& a, std::ostream& out, std::ostream& err);

}  // namespace tally::cli
