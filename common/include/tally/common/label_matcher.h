// LabelMatcher: one label (tag) condition, `name op value`, as Prometheus defines it.
//
//   endpoint=/login   status!=200   status=~5..   path!~/(health|ready)
//
// `=~` and `!~` take an RE2 regex (the syntax Prometheus and Go use) that must match the WHOLE
// value, as Prometheus anchors it (`^(?s:re)$`: `.` also matches a newline). The regex is
// compiled once, by make(); matching runs in time linear in the value (RE2 never backtracks).
// A bad regex is an invalid_argument Status from make(), never an exception.
//
// matches() takes a label's value; a caller passes "" for a label the series does not have (as
// Prometheus does). Whether `name=""` may match an absent label is the caller's rule.
// Thread-safety: immutable after make(); copies share the compiled regex; matches() may be
// called from any number of threads at once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tally/common/status.h"

namespace re2 {
class RE2;
}

namespace tally {

class LabelMatcher {
 public:
  enum class Op { kEq, kNe, kRe, kNre };  // =  !=  =~  !~

  // Compiles the regex of kRe / kNre; invalid_argument "bad regex `...`: <reason>" if it fails.
  static Result<LabelMatcher> make(std::string name, Op op, std::string value);

  // Parses "name=value", "name!=value", "name=~re" or "name!~re": the name runs to the first
  // '=' or '!'; everything after the operator is the value (it may contain '=' or be empty).
  // The name is not validated here (the caller knows its naming rules). Errors quote the text:
  // "'k=~(': bad regex ...", "'novalue' must be key=value, ...".
  static Result<LabelMatcher> parse(std::string_view text);

  const std::string& name() const { return name_; }
  Op op() const { return op_; }
  const std::string& value() const { return value_; }
  bool is_regex() const { return op_ == Op::kRe || op_ == Op::kNre; }

  // True when a label with this value satisfies the matcher.
  bool matches(std::string_view label_value) const;

  std::string to_string() const;  // "status!=200"

  // Same name, operator and value (the compiled regex follows from them).
  bool operator==(const LabelMatcher& o) const {
    return name_ == o.name_ && op_ == o.op_ && value_ == o.value_;
  }

 private:
  LabelMatcher(std::string name, Op op, std::string value)
      : name_(std::move(name)), op_(op), value_(std::move(value)) {}

  std::string name_;
  Op op_ = Op::kEq;
  std::string value_;
  std::shared_ptr<const re2::RE2> re_;  // kRe, kNre only
};

const char* matcher_op_text(LabelMatcher::Op op);  // "=", "!=", "=~", "!~"
std::optional<LabelMatcher::Op> parse_matcher_op(std::string_view text);

}  // namespace tally
