// PromQL: a parser for the Prometheus query language and the check that an expression stays
// inside the subset Tally answers (docs/PROMETHEUS.md).
//
// parse() reads the whole language (selectors, range and subquery brackets, offset and @,
// function calls, aggregations with by/without and a parameter, binary operators with
// bool/on/ignoring/group_left/group_right, number and string literals) so that check() can name
// precisely what is outside the subset instead of failing with a syntax error:
//
//   sum by (endpoint) (rate(api_errors{status=~"5.."}[5m]))    parses, checks
//   irate(api_errors[5m])                                      parses; check: unsupported irate()
//   sum(api_errors                                             parse error (bad_data)
//
// Syntax errors read like Prometheus's: "1:16: parse error: unclosed left parenthesis" (line:
// column, 1-based). Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "tally/common/status.h"

namespace tally::collector::promql {

struct Matcher {
  enum class Op { kEq, kNe, kRe, kNre };
  std::string name;
  Op op = Op::kEq;
  std::string value;
  std::shared_ptr<const std::regex> re;      // kRe, kNre: compiled, anchored
  bool matches(const std::string& v) const;  // an absent label is ""
};
const char* op_text(Matcher::Op op);

// Compiles a Prometheus regex (RE2 syntax, fully anchored) as an ECMAScript std::regex: a
// leading "(?i)" becomes the icase flag; other RE2-only syntax (\pL, (?P<name>..), (?s)) is a
// compile error. Throws nothing: a bad regex is an invalid_argument status.
Result<std::shared_ptr<const std::regex>> compile_regex(const std::string& re2);

enum class ValueType { kScalar, kVector, kMatrix, kString };
const char* value_type_name(ValueType t);  // "scalar", "instant vector", "range vector", "string"

struct Node;
using NodePtr = std::unique_ptr<Node>;

// One node of the syntax tree. A tagged struct: `type` says which fields mean something.
struct Node {
  enum class Type {
    kNumber,
    kString,
    kSelector,
    kCall,
    kAggregate,
    kBinary,
    kUnary,
    kParen,
    kSubquery
  };
  Type type = Type::kNumber;
  size_t pos = 0;  // byte offset of the node's first token in the query

  double number = 0;  // kNumber
  std::string
      text;  // kString: the value; kCall, kAggregate: the name; kBinary, kUnary: the operator

  // kSelector: metric name (may be empty) and every other matcher; `[range]` makes it a range
  // selector. offset and @ apply to selectors and subqueries.
  std::string metric;
  std::vector<Matcher> matchers;
  std::optional<int64_t> range_ms;  // kSelector with [..], kSubquery's range
  std::optional<int64_t> step_ms;   // kSubquery's resolution (0 when omitted)
  std::optional<int64_t> offset_ms;
  bool has_at = false;
  enum class At { kTime, kStart, kEnd };
  At at = At::kTime;
  int64_t at_ms = 0;  // has_at with At::kTime

  // kCall: the arguments. kAggregate: optional parameter then the expression (args.back()).
  // kBinary: lhs, rhs. kUnary, kParen, kSubquery: the operand.
  std::vector<NodePtr> args;

  // kAggregate: by (...) / without (...).
  bool has_grouping = false;
  bool without = false;
  std::vector<std::string> grouping;

  // kBinary: the modifiers; on(...)/ignoring(...) labels are in `grouping`.
  bool bool_modifier = false;
  std::string matching;              // "on", "ignoring", or empty
  std::string group;                 // "group_left", "group_right", or empty
  std::vector<std::string> include;  // group_left(...)/group_right(...) labels

  const Node& arg(size_t i) const { return *args[i]; }
};

struct Expr {
  NodePtr root;
  std::string query;
};

// Parses a whole query; on a syntax error the status is invalid_argument with
// "<line>:<col>: parse error: <what>".
Result<Expr> parse(std::string_view query);

// Parses one series selector (the match[] parameter of /api/v1/series and friends).
Result<Expr> parse_selector(std::string_view text);

// What check() found wrong: a type error (bad_data, HTTP 400, as Prometheus reports it) or a
// construct outside Tally's subset (HTTP 422, naming it).
struct Problem {
  enum class Kind { kBadData, kUnsupported };
  Kind kind = Kind::kBadData;
  std::string message;
};

// Checks types (rate() needs a range vector, ...) and the subset, depth first; the first
// problem wins. On success *type receives the expression's type.
std::optional<Problem> check(const Node& root, ValueType* type);

// Prometheus durations: "5m", "1h30m", "90s", "500ms", "2d", "1w", "1y" (365 d) -> milliseconds.
Result<int64_t> parse_prom_duration(std::string_view text);

// The supported aggregation operators and range functions, for messages and docs.
inline constexpr std::string_view kSupportedAggregations =
    "sum, avg, min, max, count, group, stddev, stdvar, topk, bottomk, quantile, count_values, "
    "tally_quantile";

}  // namespace tally::collector::promql
