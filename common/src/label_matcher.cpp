#include "tally/common/label_matcher.h"

#include <re2/re2.h>

namespace tally {

namespace {
Status syntax_error(std::string_view text) {
  return Status::invalid_argument("'" + std::string(text) +
                                  "' must be key=value, key!=value, key=~regex or key!~regex");
}
}  // namespace

Result<LabelMatcher> LabelMatcher::make(std::string name, Op op, std::string value) {
  LabelMatcher m(std::move(name), op, std::move(value));
  if (m.is_regex()) {
    // dot_nl: Prometheus compiles `^(?s:re)$`; FullMatch supplies the anchors. Setting the flag
    // instead of wrapping the text keeps "a)|(b" a bad regex rather than a different one.
    RE2::Options options;
    options.set_dot_nl(true);
    options.set_never_capture(true);
    options.set_log_errors(false);
    auto re = std::make_shared<const RE2>(m.value_, options);
    if (!re->ok()) return Status::invalid_argument("bad regex `" + m.value_ + "`: " + re->error());
    m.re_ = std::move(re);
  }
  return m;
}

Result<LabelMatcher> LabelMatcher::parse(std::string_view text) {
  const size_t pos = text.find_first_of("=!");
  if (pos == std::string_view::npos || pos == 0) return syntax_error(text);
  const std::string_view rest = text.substr(pos);
  // Two-character operators first, so "=~" is not read as "=" followed by "~...".
  for (std::string_view op_str : {"!=", "=~", "!~", "="}) {
    if (rest.starts_with(op_str)) {
      auto m = make(std::string(text.substr(0, pos)), *parse_matcher_op(op_str),
                    std::string(rest.substr(op_str.size())));
      if (!m)
        return Status::invalid_argument("'" + std::string(text) + "': " + m.status().message());
      return m;
    }
  }
  return syntax_error(text);
}

bool LabelMatcher::matches(std::string_view label_value) const {
  switch (op_) {
    case Op::kEq:
      return label_value == value_;
    case Op::kNe:
      return label_value != value_;
    case Op::kRe:
      return RE2::FullMatch(label_value, *re_);
    case Op::kNre:
      return !RE2::FullMatch(label_value, *re_);
  }
  return false;
}

std::string LabelMatcher::to_string() const {
  return name_ + matcher_op_text(op_) + value_;
}

const char* matcher_op_text(LabelMatcher::Op op) {
  switch (op) {
    case LabelMatcher::Op::kEq:
      return "=";
    case LabelMatcher::Op::kNe:
      return "!=";
    case LabelMatcher::Op::kRe:
      return "=~";
    case LabelMatcher::Op::kNre:
      return "!~";
  }
  return "?";
}

std::optional<LabelMatcher::Op> parse_matcher_op(std::string_view text) {
  if (text == "=") return LabelMatcher::Op::kEq;
  if (text == "!=") return LabelMatcher::Op::kNe;
  if (text == "=~") return LabelMatcher::Op::kRe;
  if (text == "!~") return LabelMatcher::Op::kNre;
  return std::nullopt;
}

}  // namespace tally
