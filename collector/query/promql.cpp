#include "query/promql.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace tally::collector::promql {
namespace {

// ---------------------------------------------------------------------------------------------
// Lexer

enum class Tok {
  kEnd,
  kIdent,
  kNumber,
  kDuration,
  kString,
  kLParen,
  kRParen,
  kLBrace,
  kRBrace,
  kLBracket,
  kRBracket,
  kComma,
  kColon,
  kAt,
  kAssign,  // =
  kEqlRegex,
  kNeqRegex,  // =~ !~
  kEql,
  kNeq,
  kLss,
  kGtr,
  kLte,
  kGte,  // == != < > <= >=
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kPow,
};

struct Token {
  Tok type = Tok::kEnd;
  size_t pos = 0;
  std::string text;   // identifier, raw source of numbers and durations, decoded string
  double number = 0;  // kNumber
  int64_t ms = 0;     // kDuration
};

struct ParseError {
  size_t pos;
  std::string what;
};

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* tok_name(Tok t) {
  switch (t) {
    case Tok::kEnd:
      return "end of input";
    case Tok::kIdent:
      return "identifier";
    case Tok::kNumber:
      return "number";
    case Tok::kDuration:
      return "duration";
    case Tok::kString:
      return "string";
    case Tok::kLParen:
      return "\"(\"";
    case Tok::kRParen:
      return "\")\"";
    case Tok::kLBrace:
      return "\"{\"";
    case Tok::kRBrace:
      return "\"}\"";
    case Tok::kLBracket:
      return "\"[\"";
    case Tok::kRBracket:
      return "\"]\"";
    case Tok::kComma:
      return "\",\"";
    case Tok::kColon:
      return "\":\"";
    case Tok::kAt:
      return "\"@\"";
    case Tok::kAssign:
      return "\"=\"";
    case Tok::kEqlRegex:
      return "\"=~\"";
    case Tok::kNeqRegex:
      return "\"!~\"";
    case Tok::kEql:
      return "\"==\"";
    case Tok::kNeq:
      return "\"!=\"";
    case Tok::kLss:
      return "\"<\"";
    case Tok::kGtr:
      return "\">\"";
    case Tok::kLte:
      return "\"<=\"";
    case Tok::kGte:
      return "\">=\"";
    case Tok::kAdd:
      return "\"+\"";
    case Tok::kSub:
      return "\"-\"";
    case Tok::kMul:
      return "\"*\"";
    case Tok::kDiv:
      return "\"/\"";
    case Tok::kMod:
      return "\"%\"";
    case Tok::kPow:
      return "\"^\"";
  }
  return "?";
}

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::kIdent:
      return "identifier \"" + t.text + "\"";
    case Tok::kNumber:
      return "number \"" + t.text + "\"";
    case Tok::kDuration:
      return "duration \"" + t.text + "\"";
    case Tok::kString:
      return "string";
    default:
      return tok_name(t.type);
  }
}

// Reads "5m", "1h30m", "500ms" at s[i]: one or more <digits><unit> with units in decreasing
// order, each at most once (Prometheus's model.ParseDuration).
bool lex_duration(std::string_view s, size_t* i, int64_t* ms) {
  static const std::pair<std::string_view, int64_t> kUnits[] = {{"y", 365LL * 86400000},
                                                                {"w", 7LL * 86400000},
                                                                {"d", 86400000},
                                                                {"h", 3600000},
                                                                {"ms", 1},
                                                                {"m", 60000},
                                                                {"s", 1000}};
  // The order units must appear in: y w d h m s ms.
  auto rank = [](std::string_view u) {
    static const std::string_view kOrder[] = {"y", "w", "d", "h", "m", "s", "ms"};
    for (int r = 0; r < 7; ++r)
      if (kOrder[r] == u) return r;
    return 99;
  };
  size_t p = *i;
  int64_t total = 0;
  int last_rank = -1;
  bool any = false;
  while (p < s.size() && is_digit(s[p])) {
    size_t d = p;
    while (p < s.size() && is_digit(s[p])) ++p;
    std::string_view unit;
    for (const auto& [u, _] : kUnits) {
      if (s.substr(p, u.size()) == u) {
        unit = u;
        break;
      }
    }
    if (unit.empty()) return false;
    int r = rank(unit);
    if (r <= last_rank) return false;
    last_rank = r;
    int64_t n = 0;
    auto [end, ec] = std::from_chars(s.data() + d, s.data() + p, n);
    if (ec != std::errc() || end != s.data() + p) return false;
    int64_t mult = 0;
    for (const auto& [u, m] : kUnits)
      if (u == unit) mult = m;
    if (n > std::numeric_limits<int64_t>::max() / mult) return false;
    total += n * mult;
    p += unit.size();
    any = true;
  }
  if (!any || (p < s.size() && is_alnum(s[p]))) return false;
  *i = p;
  *ms = total;
  return true;
}

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  // Tokenises the whole input; bracket depth decides whether ':' is a token or part of a name.
  bool run(std::vector<Token>* out, ParseError* err) {
    int brackets = 0;
    while (true) {
      skip_space();
      Token t;
      t.pos = i_;
      if (i_ >= s_.size()) {
        t.type = Tok::kEnd;
        out->push_back(t);
        return true;
      }
      char c = s_[i_];
      // After the first character is consumed: is the next one `next`?
      auto two = [&](char next) { return i_ < s_.size() && s_[i_] == next; };
      if (is_alpha(c) || (c == ':' && brackets == 0)) {
        size_t b = i_;
        while (i_ < s_.size() && (is_alnum(s_[i_]) || s_[i_] == ':')) ++i_;
        t.text = std::string(s_.substr(b, i_ - b));
        std::string l = lower(t.text);
        if (l == "inf" || l == "nan") {
          t.type = Tok::kNumber;
          t.number = l == "inf" ? std::numeric_limits<double>::infinity()
                                : std::numeric_limits<double>::quiet_NaN();
        } else {
          t.type = Tok::kIdent;
        }
      } else if (is_digit(c) || (c == '.' && i_ + 1 < s_.size() && is_digit(s_[i_ + 1]))) {
        if (!lex_number(&t, err)) return false;
      } else if (c == '"' || c == '\'' || c == '`') {
        if (!lex_string(&t, err)) return false;
      } else {
        ++i_;
        switch (c) {
          case '(':
            t.type = Tok::kLParen;
            break;
          case ')':
            t.type = Tok::kRParen;
            break;
          case '{':
            t.type = Tok::kLBrace;
            break;
          case '}':
            t.type = Tok::kRBrace;
            break;
          case '[':
            t.type = Tok::kLBracket;
            ++brackets;
            break;
          case ']':
            t.type = Tok::kRBracket;
            --brackets;
            break;
          case ',':
            t.type = Tok::kComma;
            break;
          case ':':
            t.type = Tok::kColon;
            break;
          case '@':
            t.type = Tok::kAt;
            break;
          case '+':
            t.type = Tok::kAdd;
            break;
          case '-':
            t.type = Tok::kSub;
            break;
          case '*':
            t.type = Tok::kMul;
            break;
          case '/':
            t.type = Tok::kDiv;
            break;
          case '%':
            t.type = Tok::kMod;
            break;
          case '^':
            t.type = Tok::kPow;
            break;
          case '=':
            if (two('=')) {
              t.type = Tok::kEql;
              ++i_;
            } else if (two('~')) {
              t.type = Tok::kEqlRegex;
              ++i_;
            } else
              t.type = Tok::kAssign;
            break;
          case '!':
            if (two('=')) {
              t.type = Tok::kNeq;
              ++i_;
            } else if (two('~')) {
              t.type = Tok::kNeqRegex;
              ++i_;
            } else {
              *err = {t.pos, "unexpected character after '!': " + quote_char(i_)};
              return false;
            }
            break;
          case '<':
            if (two('=')) {
              t.type = Tok::kLte;
              ++i_;
            } else
              t.type = Tok::kLss;
            break;
          case '>':
            if (two('=')) {
              t.type = Tok::kGte;
              ++i_;
            } else
              t.type = Tok::kGtr;
            break;
          default:
            *err = {t.pos, "unexpected character: '" + std::string(1, c) + "'"};
            return false;
        }
      }
      out->push_back(std::move(t));
    }
  }

 private:
  void skip_space() {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i_;
      } else if (c == '#') {  // a comment runs to the end of the line
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  std::string quote_char(size_t i) const {
    return i < s_.size() ? "'" + std::string(1, s_[i]) + "'" : "end of input";
  }

  bool lex_number(Token* t, ParseError* err) {
    size_t b = i_;
    // A duration: digits followed directly by a unit letter.
    size_t p = i_;
    while (p < s_.size() && is_digit(s_[p])) ++p;
    if (p < s_.size() && p > b &&
        std::string_view("smhdwy").find(s_[p]) != std::string_view::npos) {
      size_t q = i_;
      int64_t ms = 0;
      if (!lex_duration(s_, &q, &ms)) {
        size_t e = q;
        while (e < s_.size() && is_alnum(s_[e])) ++e;
        *err = {b, "bad duration \"" + std::string(s_.substr(b, e - b)) + "\""};
        return false;
      }
      t->type = Tok::kDuration;
      t->ms = ms;
      t->text = std::string(s_.substr(b, q - b));
      i_ = q;
      return true;
    }
    if (s_.substr(i_, 2) == "0x" || s_.substr(i_, 2) == "0X") {
      p = i_ + 2;
      while (p < s_.size() && std::isxdigit(static_cast<unsigned char>(s_[p]))) ++p;
      uint64_t v = 0;
      auto [end, ec] = std::from_chars(s_.data() + i_ + 2, s_.data() + p, v, 16);
      if (ec != std::errc() || p == i_ + 2) {
        *err = {b, "bad number \"" + std::string(s_.substr(b, p - b)) + "\""};
        return false;
      }
      t->number = static_cast<double>(v);
    } else {
      p = i_;
      while (p < s_.size() && is_digit(s_[p])) ++p;
      if (p < s_.size() && s_[p] == '.') {
        ++p;
        while (p < s_.size() && is_digit(s_[p])) ++p;
      }
      if (p < s_.size() && (s_[p] == 'e' || s_[p] == 'E')) {
        size_t e = p + 1;
        if (e < s_.size() && (s_[e] == '+' || s_[e] == '-')) ++e;
        if (e < s_.size() && is_digit(s_[e])) {
          p = e;
          while (p < s_.size() && is_digit(s_[p])) ++p;
        }
      }
      double v = 0;
      auto [end, ec] = std::from_chars(s_.data() + i_, s_.data() + p, v);
      if (ec != std::errc() || end != s_.data() + p) {
        *err = {b, "bad number \"" + std::string(s_.substr(b, p - b)) + "\""};
        return false;
      }
      t->number = v;
    }
    if (p < s_.size() && (is_alpha(s_[p]) || s_[p] == '.')) {
      size_t e = p;
      while (e < s_.size() && (is_alnum(s_[e]) || s_[e] == '.')) ++e;
      *err = {b, "bad number or duration syntax: \"" + std::string(s_.substr(b, e - b)) + "\""};
      return false;
    }
    t->type = Tok::kNumber;
    t->text = std::string(s_.substr(b, p - b));
    i_ = p;
    return true;
  }

  // "..." and '...' with Go escapes; `...` raw.
  bool lex_string(Token* t, ParseError* err) {
    const char q = s_[i_];
    const size_t b = i_++;
    std::string out;
    while (true) {
      if (i_ >= s_.size() || (q != '`' && s_[i_] == '\n')) {
        *err = {b, "unterminated quoted string"};
        return false;
      }
      char c = s_[i_++];
      if (c == q) break;
      if (c != '\\' || q == '`') {
        out.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) {
        *err = {b, "unterminated quoted string"};
        return false;
      }
      char e = s_[i_++];
      switch (e) {
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '"':
        case '\'':
          out.push_back(e);
          break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          auto [end, ec] =
              std::from_chars(s_.data() + i_, s_.data() + std::min(s_.size(), i_ + n), cp, 16);
          if (ec != std::errc() || end != s_.data() + i_ + n) {
            *err = {i_ - 2, "invalid escape sequence in string"};
            return false;
          }
          i_ += n;
          if (e == 'x') {
            out.push_back(static_cast<char>(cp));
          } else if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          } else {
            out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          }
          break;
        }
        default:
          if (e >= '0' && e <= '7') {  // \ooo
            if (i_ + 1 >= s_.size() || s_[i_] < '0' || s_[i_] > '7' || s_[i_ + 1] < '0' ||
                s_[i_ + 1] > '7') {
              *err = {i_ - 2, "invalid escape sequence in string"};
              return false;
            }
            out.push_back(
                static_cast<char>(((e - '0') << 6) | ((s_[i_] - '0') << 3) | (s_[i_ + 1] - '0')));
            i_ += 2;
            break;
          }
          *err = {i_ - 2, std::string("unknown escape sequence '\\") + e + "' in string"};
          return false;
      }
    }
    t->type = Tok::kString;
    t->text = std::move(out);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Parser

// Every aggregation operator PromQL has (so they parse), and which take a parameter.
struct AggregationOp {
  std::string_view name;
  bool param;
  bool supported;
};
constexpr AggregationOp kAggregations[] = {
    {"sum", false, true},           {"avg", false, true},
    {"min", false, true},           {"max", false, true},
    {"count", false, true},         {"group", false, true},
    {"stddev", false, true},        {"stdvar", false, true},
    {"topk", true, true},           {"bottomk", true, true},
    {"quantile", true, true},       {"count_values", true, true},
    {"limitk", true, false},        {"limit_ratio", true, false},
    {"tally_quantile", true, true},  // Tally's: quantile of the merged distribution of each group
};

const AggregationOp* aggregation(std::string_view name) {
  for (const auto& a : kAggregations)
    if (a.name == name) return &a;
  return nullptr;
}

// Every PromQL function (Prometheus 2.x and 3.x), so an unsupported one is named as such rather
// than reported as unknown.
constexpr std::string_view kKnownFunctions[] = {"abs",
                                                "absent",
                                                "absent_over_time",
                                                "acos",
                                                "acosh",
                                                "asin",
                                                "asinh",
                                                "atan",
                                                "atanh",
                                                "avg_over_time",
                                                "ceil",
                                                "changes",
                                                "clamp",
                                                "clamp_max",
                                                "clamp_min",
                                                "cos",
                                                "cosh",
                                                "count_over_time",
                                                "day_of_month",
                                                "day_of_week",
                                                "day_of_year",
                                                "days_in_month",
                                                "deg",
                                                "delta",
                                                "deriv",
                                                "double_exponential_smoothing",
                                                "exp",
                                                "floor",
                                                "histogram_avg",
                                                "histogram_count",
                                                "histogram_fraction",
                                                "histogram_quantile",
                                                "histogram_stddev",
                                                "histogram_stdvar",
                                                "histogram_sum",
                                                "holt_winters",
                                                "hour",
                                                "idelta",
                                                "increase",
                                                "info",
                                                "irate",
                                                "label_join",
                                                "label_replace",
                                                "last_over_time",
                                                "ln",
                                                "log10",
                                                "log2",
                                                "mad_over_time",
                                                "max_over_time",
                                                "min_over_time",
                                                "minute",
                                                "month",
                                                "pi",
                                                "predict_linear",
                                                "present_over_time",
                                                "quantile_over_time",
                                                "rad",
                                                "rate",
                                                "resets",
                                                "round",
                                                "scalar",
                                                "sgn",
                                                "sin",
                                                "sinh",
                                                "sort",
                                                "sort_by_label",
                                                "sort_by_label_desc",
                                                "sort_desc",
                                                "sqrt",
                                                "stddev_over_time",
                                                "stdvar_over_time",
                                                "sum_over_time",
                                                "tan",
                                                "tanh",
                                                "time",
                                                "timestamp",
                                                "vector",
                                                "year"};

// The functions Tally evaluates, with their argument types ('s' scalar, 'v' instant vector,
// 'm' range vector, 'S' string) and result type ('s' or 'v').
struct FunctionSig {
  std::string_view name;
  std::string_view args;
  size_t min_args;
  bool variadic;  // the last argument repeats
  char ret;
};
constexpr FunctionSig kFunctions[] = {
    {"rate", "m", 1, false, 'v'},
    {"increase", "m", 1, false, 'v'},
    {"abs", "v", 1, false, 'v'},
    {"ceil", "v", 1, false, 'v'},
    {"floor", "v", 1, false, 'v'},
    {"exp", "v", 1, false, 'v'},
    {"ln", "v", 1, false, 'v'},
    {"log2", "v", 1, false, 'v'},
    {"log10", "v", 1, false, 'v'},
    {"sqrt", "v", 1, false, 'v'},
    {"sgn", "v", 1, false, 'v'},
    {"acos", "v", 1, false, 'v'},
    {"acosh", "v", 1, false, 'v'},
    {"asin", "v", 1, false, 'v'},
    {"asinh", "v", 1, false, 'v'},
    {"atan", "v", 1, false, 'v'},
    {"atanh", "v", 1, false, 'v'},
    {"cos", "v", 1, false, 'v'},
    {"cosh", "v", 1, false, 'v'},
    {"sin", "v", 1, false, 'v'},
    {"sinh", "v", 1, false, 'v'},
    {"tan", "v", 1, false, 'v'},
    {"tanh", "v", 1, false, 'v'},
    {"deg", "v", 1, false, 'v'},
    {"rad", "v", 1, false, 'v'},
    {"round", "vs", 1, false, 'v'},
    {"clamp", "vss", 3, false, 'v'},
    {"clamp_min", "vs", 2, false, 'v'},
    {"clamp_max", "vs", 2, false, 'v'},
    {"time", "", 0, false, 's'},
    {"pi", "", 0, false, 's'},
    {"vector", "s", 1, false, 'v'},
    {"scalar", "v", 1, false, 's'},
    {"sort", "v", 1, false, 'v'},
    {"sort_desc", "v", 1, false, 'v'},
    {"label_replace", "vSSSS", 5, false, 'v'},
    {"label_join", "vSSS", 3, true, 'v'},
    {"absent", "v", 1, false, 'v'},
    {"minute", "v", 0, false, 'v'},
    {"hour", "v", 0, false, 'v'},
    {"day_of_week", "v", 0, false, 'v'},
    {"day_of_month", "v", 0, false, 'v'},
    {"day_of_year", "v", 0, false, 'v'},
    {"days_in_month", "v", 0, false, 'v'},
    {"month", "v", 0, false, 'v'},
    {"year", "v", 0, false, 'v'},
    {"timestamp", "v", 1, false, 'v'},
    {"histogram_quantile", "sv", 2, false, 'v'},
    // Range functions (query/promql_range.h).
    {"irate", "m", 1, false, 'v'},
    {"idelta", "m", 1, false, 'v'},
    {"delta", "m", 1, false, 'v'},
    {"deriv", "m", 1, false, 'v'},
    {"predict_linear", "ms", 2, false, 'v'},
    {"changes", "m", 1, false, 'v'},
    {"resets", "m", 1, false, 'v'},
    {"avg_over_time", "m", 1, false, 'v'},
    {"min_over_time", "m", 1, false, 'v'},
    {"max_over_time", "m", 1, false, 'v'},
    {"sum_over_time", "m", 1, false, 'v'},
    {"count_over_time", "m", 1, false, 'v'},
    {"last_over_time", "m", 1, false, 'v'},
    {"stddev_over_time", "m", 1, false, 'v'},
    {"stdvar_over_time", "m", 1, false, 'v'},
    {"quantile_over_time", "sm", 2, false, 'v'},
    {"mad_over_time", "m", 1, false, 'v'},
    {"present_over_time", "m", 1, false, 'v'},
    {"absent_over_time", "m", 1, false, 'v'},
    {"holt_winters", "mss", 3, false, 'v'},
    {"double_exponential_smoothing", "mss", 3, false, 'v'},
};

const FunctionSig* function_sig(std::string_view name) {
  for (const auto& f : kFunctions)
    if (f.name == name) return &f;
  return nullptr;
}

std::string_view unsupported_function_reason(std::string_view name) {
  if (name.starts_with("histogram_"))
    return "Tally has no native histograms (a distribution is a sketch, shown as a summary); "
           "use x{quantile=\"0.99\"} or tally_quantile(0.99, x), or histogram_quantile() over "
           "le-labelled counters";
  if (name == "info") return "Tally has no info metrics";
  return "not implemented yet (docs/PROMETHEUS.md lists what is)";
}

bool known_function(std::string_view name) {
  return std::find(std::begin(kKnownFunctions), std::end(kKnownFunctions), name) !=
         std::end(kKnownFunctions);
}

bool is_keyword(std::string_view s) {
  static const std::string_view kKeywords[] = {"by",         "without",     "on",     "ignoring",
                                               "group_left", "group_right", "bool",   "offset",
                                               "and",        "or",          "unless", "atan2"};
  return std::find(std::begin(kKeywords), std::end(kKeywords), s) != std::end(kKeywords);
}

bool valid_label_name(std::string_view s) {
  if (s.empty() || !is_alpha(s[0])) return false;
  for (char c : s)
    if (!is_alnum(c)) return false;
  return true;
}

std::string too_deep(size_t max_depth) {
  return "query is nested more than " + std::to_string(max_depth) +
         " levels deep (the collector's promql_max_depth)";
}

// The depth of a syntax tree: a chain of binary operators counts one level per operator.
size_t tree_depth(const Node& n) {
  size_t d = 0;
  for (const auto& a : n.args) d = std::max(d, tree_depth(*a));
  return d + 1;
}

class Parser {
 public:
  Parser(std::string_view query, std::vector<Token> toks, size_t max_depth)
      : query_(query), t_(std::move(toks)), max_depth_(max_depth) {}

  NodePtr parse_all(ParseError* err) {
    err_ = err;
    NodePtr root = expr(0);
    if (!root) return nullptr;
    if (peek().type != Tok::kEnd) {
      if (peek().type == Tok::kRParen) return fail(peek().pos, "unexpected right parenthesis ')'");
      return fail(peek().pos, "unexpected " + describe(peek()));
    }
    return root;
  }

 private:
  const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& next() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool peek_ident(std::string_view word) const {
    return peek().type == Tok::kIdent && peek().text == word;
  }

  NodePtr fail(size_t pos, std::string what) {
    if (err_->what.empty()) *err_ = {pos, std::move(what)};
    return nullptr;
  }
  NodePtr unexpected(std::string_view context) {
    const Token& t = peek();
    if (t.type == Tok::kEnd) return fail(t.pos, "unexpected end of input" + std::string(context));
    return fail(t.pos, "unexpected " + describe(t) + std::string(context));
  }
  bool expect(Tok type, std::string_view context) {
    if (peek().type == type) {
      ++i_;
      return true;
    }
    unexpected(std::string(context));
    return false;
  }

  static NodePtr make(Node::Type type, size_t pos) {
    auto n = std::make_unique<Node>();
    n->type = type;
    n->pos = pos;
    return n;
  }

  // Binary operators by precedence, lowest first; '^' is handled in power() (right associative,
  // binds tighter than unary minus).
  static int precedence(const Token& t) {
    switch (t.type) {
      case Tok::kEql:
      case Tok::kNeq:
      case Tok::kLss:
      case Tok::kGtr:
      case Tok::kLte:
      case Tok::kGte:
        return 3;
      case Tok::kAdd:
      case Tok::kSub:
        return 4;
      case Tok::kMul:
      case Tok::kDiv:
      case Tok::kMod:
        return 5;
      case Tok::kIdent:
        if (t.text == "or") return 1;
        if (t.text == "and" || t.text == "unless") return 2;
        if (t.text == "atan2") return 5;
        return 0;
      default:
        return 0;
    }
  }
  static std::string op_string(const Token& t) {
    if (t.type == Tok::kIdent) return t.text;
    std::string s = tok_name(t.type);
    return s.substr(1, s.size() - 2);  // strip the quotes
  }

  // Counts the parser's own nesting, so a deep query is refused before it can use up the stack.
  struct Nest {
    explicit Nest(size_t* d) : d_(d) { ++*d_; }
    ~Nest() { --*d_; }
    size_t* d_;
  };

  NodePtr expr(int min_prec) {
    Nest nest(&depth_);
    if (depth_ > max_depth_) return fail(peek().pos, too_deep(max_depth_));
    NodePtr lhs = unary();
    if (!lhs) return nullptr;
    while (true) {
      const Token& op = peek();
      int prec = precedence(op);
      if (prec == 0 || prec < min_prec) break;
      ++i_;
      auto bin = make(Node::Type::kBinary, op.pos);
      bin->text = op_string(op);
      if (!modifiers(bin.get())) return nullptr;
      NodePtr rhs = expr(prec + 1);
      if (!rhs) return nullptr;
      bin->args.push_back(std::move(lhs));
      bin->args.push_back(std::move(rhs));
      lhs = std::move(bin);
    }
    return lhs;
  }

  // bool, on(...)/ignoring(...), group_left(...)/group_right(...)
  bool modifiers(Node* bin) {
    if (peek_ident("bool")) {
      ++i_;
      bin->bool_modifier = true;
    }
    if (peek_ident("on") || peek_ident("ignoring")) {
      bin->matching = next().text;
      if (!label_list(&bin->grouping)) return false;
      if (peek_ident("group_left") || peek_ident("group_right")) {
        bin->group = next().text;
        if (peek().type == Tok::kLParen && !label_list(&bin->include)) return false;
      }
    }
    return true;
  }

  NodePtr unary() {
    if (peek().type == Tok::kSub || peek().type == Tok::kAdd) {
      Nest nest(&depth_);  // "- - - x" recurses here
      if (depth_ > max_depth_) return fail(peek().pos, too_deep(max_depth_));
      const Token& op = next();
      NodePtr operand = unary();
      if (!operand) return nullptr;
      if (op.type == Tok::kAdd) return operand;
      if (operand->type == Node::Type::kNumber) {  // fold "-1" into a literal
        operand->number = -operand->number;
        operand->pos = op.pos;
        return operand;
      }
      auto n = make(Node::Type::kUnary, op.pos);
      n->text = "-";
      n->args.push_back(std::move(operand));
      return n;
    }
    return power();
  }

  NodePtr power() {
    NodePtr base = postfix();
    if (!base) return nullptr;
    if (peek().type != Tok::kPow) return base;
    const Token& op = next();
    auto bin = make(Node::Type::kBinary, op.pos);
    bin->text = "^";
    if (!modifiers(bin.get())) return nullptr;
    NodePtr exp = unary();  // right associative: 2 ^ 3 ^ 2 = 2 ^ (3 ^ 2)
    if (!exp) return nullptr;
    bin->args.push_back(std::move(base));
    bin->args.push_back(std::move(exp));
    return bin;
  }

  NodePtr postfix() {
    NodePtr n = primary();
    while (n) {
      if (peek().type == Tok::kLBracket) {
        size_t pos = next().pos;
        if (peek().type != Tok::kDuration) return unexpected(" in range, expected duration");
        int64_t range = next().ms;
        if (peek().type == Tok::kColon) {
          ++i_;
          int64_t step = 0;
          if (peek().type == Tok::kDuration) step = next().ms;
          if (!expect(Tok::kRBracket, " in subquery")) return nullptr;
          auto sq = make(Node::Type::kSubquery, n->pos);
          sq->range_ms = range;
          sq->step_ms = step;
          sq->args.push_back(std::move(n));
          n = std::move(sq);
          continue;
        }
        if (!expect(Tok::kRBracket, " in range, expected \"]\"")) return nullptr;
        if (n->type != Node::Type::kSelector || n->range_ms || n->offset_ms || n->has_at)
          return fail(pos, "ranges only allowed for vector selectors");
        if (range <= 0) return fail(pos, "range duration must be greater than 0");
        n->range_ms = range;
      } else if (peek_ident("offset")) {
        size_t pos = next().pos;
        int sign = 1;
        if (peek().type == Tok::kSub) {
          ++i_;
          sign = -1;
        }
        if (peek().type != Tok::kDuration) return unexpected(" in offset, expected duration");
        int64_t d = next().ms * sign;
        Node* target = n.get();
        if (target->type != Node::Type::kSelector && target->type != Node::Type::kSubquery)
          return fail(pos,
                      "offset modifier must be preceded by an instant vector selector or range "
                      "vector selector or a subquery");
        if (target->offset_ms) return fail(pos, "offset may not be set multiple times");
        target->offset_ms = d;
      } else if (peek().type == Tok::kAt) {
        size_t pos = next().pos;
        Node::At at = Node::At::kTime;
        int64_t at_ms = 0;
        if (peek().type == Tok::kNumber || peek().type == Tok::kSub || peek().type == Tok::kAdd) {
          const bool negative = peek().type == Tok::kSub;
          if (peek().type != Tok::kNumber) ++i_;
          if (peek().type != Tok::kNumber) return unexpected(" in @, expected timestamp");
          const double v = next().number;
          if (!std::isfinite(v) || std::abs(v) > 9.2e12)
            return fail(pos, "timestamp out of bounds for @ modifier");
          at_ms = std::llround((negative ? -v : v) * 1000);
        } else if (peek_ident("start") || peek_ident("end")) {
          at = peek_ident("start") ? Node::At::kStart : Node::At::kEnd;
          ++i_;
          if (!expect(Tok::kLParen, " after @ start/end") ||
              !expect(Tok::kRParen, " after @ start/end"))
            return nullptr;
        } else {
          return unexpected(" in @, expected timestamp");
        }
        if (n->type != Node::Type::kSelector && n->type != Node::Type::kSubquery)
          return fail(pos,
                      "@ modifier must be preceded by an instant vector selector or range vector "
                      "selector or a subquery");
        if (n->has_at) return fail(pos, "@ <timestamp> may not be set multiple times");
        n->has_at = true;
        n->at = at;
        n->at_ms = at_ms;
      } else {
        break;
      }
    }
    return n;
  }

  NodePtr primary() {
    const Token& t = peek();
    switch (t.type) {
      case Tok::kNumber: {
        ++i_;
        auto n = make(Node::Type::kNumber, t.pos);
        n->number = t.number;
        return n;
      }
      case Tok::kString: {
        ++i_;
        auto n = make(Node::Type::kString, t.pos);
        n->text = t.text;
        return n;
      }
      case Tok::kLParen: {
        ++i_;
        NodePtr inner = expr(0);
        if (!inner) return nullptr;
        if (peek().type != Tok::kRParen) {
          if (peek().type == Tok::kEnd) return fail(t.pos, "unclosed left parenthesis");
          return unexpected(", expected \")\"");
        }
        ++i_;
        auto n = make(Node::Type::kParen, t.pos);
        n->args.push_back(std::move(inner));
        return n;
      }
      case Tok::kLBrace: {
        auto n = make(Node::Type::kSelector, t.pos);
        if (!matchers(n.get())) return nullptr;
        return finish_selector(std::move(n));
      }
      case Tok::kIdent: {
        if (const AggregationOp* agg = aggregation(t.text)) return aggregate(*agg);
        if (peek(1).type == Tok::kLParen && !is_keyword(t.text)) return call();
        if (is_keyword(t.text)) return unexpected("");
        ++i_;
        auto n = make(Node::Type::kSelector, t.pos);
        n->metric = t.text;
        if (peek().type == Tok::kLBrace && !matchers(n.get())) return nullptr;
        return finish_selector(std::move(n));
      }
      case Tok::kEnd:
        return fail(t.pos, "unexpected end of input");
      case Tok::kRParen:
        return fail(t.pos, "unexpected right parenthesis ')'");
      default:
        return unexpected("");
    }
  }

  // The name set twice, or no matcher that excludes the empty label set.
  NodePtr finish_selector(NodePtr n) {
    for (auto it = n->matchers.begin(); it != n->matchers.end();) {
      if (it->name == "__name__" && it->op == Matcher::Op::kEq && n->metric.empty()) {
        n->metric = it->value;
        it = n->matchers.erase(it);
      } else if (it->name == "__name__" && it->op == Matcher::Op::kEq) {
        return fail(n->pos, "metric name must not be set twice: \"" + n->metric + "\" or \"" +
                                it->value + "\"");
      } else {
        ++it;
      }
    }
    if (n->metric.empty()) {
      bool any = false;
      for (const auto& m : n->matchers) any = any || !m.matches("");
      if (!any) return fail(n->pos, "vector selector must contain at least one non-empty matcher");
    }
    return n;
  }

  // { name op "value", ... } and, as in Prometheus 3, a bare "quoted metric name".
  bool matchers(Node* sel) {
    size_t open = next().pos;
    while (peek().type != Tok::kRBrace) {
      const Token& name = peek();
      if (name.type == Tok::kEnd) {
        fail(open, "unexpected end of input inside braces");
        return false;
      }
      Matcher m;
      if (name.type == Tok::kString &&
          (peek(1).type == Tok::kComma || peek(1).type == Tok::kRBrace)) {
        ++i_;
        if (!sel->metric.empty()) {
          fail(name.pos, "metric name must not be set twice: \"" + sel->metric + "\" or \"" +
                             name.text + "\"");
          return false;
        }
        sel->metric = name.text;
      } else {
        if (name.type == Tok::kIdent && valid_label_name(name.text)) {
          m.name = name.text;
        } else if (name.type == Tok::kString) {
          m.name = name.text;
        } else {
          unexpected(" in label matching, expected label");
          return false;
        }
        ++i_;
        switch (peek().type) {
          case Tok::kAssign:
            m.op = Matcher::Op::kEq;
            break;
          case Tok::kNeq:
            m.op = Matcher::Op::kNe;
            break;
          case Tok::kEqlRegex:
            m.op = Matcher::Op::kRe;
            break;
          case Tok::kNeqRegex:
            m.op = Matcher::Op::kNre;
            break;
          case Tok::kEql:
            fail(peek().pos,
                 "unexpected \"==\" in label matching, expected one of \"=\", \"!=\", \"=~\" or "
                 "\"!~\"");
            return false;
          default:
            unexpected(" in label matching, expected one of \"=\", \"!=\", \"=~\" or \"!~\"");
            return false;
        }
        ++i_;
        if (peek().type != Tok::kString) {
          unexpected(" in label matching, expected string");
          return false;
        }
        const Token& value = next();
        m.value = value.text;
        auto compiled = LabelMatcher::make(m.name, static_cast<LabelMatcher::Op>(m.op), m.value);
        if (!compiled) {
          fail(value.pos,
               "invalid regular expression \"" + m.value + "\": " + compiled.status().message());
          return false;
        }
        m.compiled = std::make_shared<const LabelMatcher>(std::move(*compiled));
        sel->matchers.push_back(std::move(m));
      }
      if (peek().type == Tok::kComma) {
        ++i_;
      } else if (peek().type != Tok::kRBrace) {
        if (peek().type == Tok::kEnd) {
          fail(open, "unexpected end of input inside braces");
          return false;
        }
        unexpected(" in label matching, expected \",\" or \"}\"");
        return false;
      }
    }
    ++i_;
    return true;
  }

  bool label_list(std::vector<std::string>* out) {
    if (!expect(Tok::kLParen, " in grouping, expected \"(\"")) return false;
    while (peek().type != Tok::kRParen) {
      const Token& t = peek();
      if ((t.type == Tok::kIdent && valid_label_name(t.text)) || t.type == Tok::kString) {
        out->push_back(t.text);
        ++i_;
      } else {
        unexpected(" in grouping opts, expected label");
        return false;
      }
      if (peek().type == Tok::kComma)
        ++i_;
      else if (peek().type != Tok::kRParen) {
        unexpected(" in grouping opts, expected \",\" or \")\"");
        return false;
      }
    }
    ++i_;
    return true;
  }

  bool grouping(Node* n) {
    if (n->has_grouping) {
      fail(peek().pos, "grouping may be given only once (before or after the expression)");
      return false;
    }
    n->has_grouping = true;
    n->without = next().text == "without";
    return label_list(&n->grouping);
  }

  NodePtr aggregate(const AggregationOp& op) {
    const Token& name = next();
    auto n = make(Node::Type::kAggregate, name.pos);
    n->text = name.text;
    if ((peek_ident("by") || peek_ident("without")) && !grouping(n.get())) return nullptr;
    if (peek().type != Tok::kLParen) return unexpected(" in aggregation, expected \"(\"");
    size_t open = next().pos;
    while (peek().type != Tok::kRParen) {
      NodePtr arg = expr(0);
      if (!arg) return nullptr;
      n->args.push_back(std::move(arg));
      if (peek().type == Tok::kComma)
        ++i_;
      else if (peek().type == Tok::kEnd)
        return fail(open, "unclosed left parenthesis");
      else if (peek().type != Tok::kRParen)
        return unexpected(" in aggregation, expected \",\" or \")\"");
    }
    ++i_;
    const size_t want = op.param ? 2 : 1;
    if (n->args.size() != want)
      return fail(name.pos,
                  "wrong number of arguments for aggregate expression provided, expected " +
                      std::to_string(want) + ", got " + std::to_string(n->args.size()));
    if ((peek_ident("by") || peek_ident("without")) && !grouping(n.get())) return nullptr;
    return n;
  }

  NodePtr call() {
    const Token& name = next();
    auto n = make(Node::Type::kCall, name.pos);
    n->text = name.text;
    size_t open = next().pos;  // '('
    while (peek().type != Tok::kRParen) {
      NodePtr arg = expr(0);
      if (!arg) return nullptr;
      n->args.push_back(std::move(arg));
      if (peek().type == Tok::kComma)
        ++i_;
      else if (peek().type == Tok::kEnd)
        return fail(open, "unclosed left parenthesis");
      else if (peek().type != Tok::kRParen)
        return unexpected(" in call, expected \",\" or \")\"");
    }
    ++i_;
    return n;
  }

  std::string_view query_;
  std::vector<Token> t_;
  size_t i_ = 0;
  ParseError* err_ = nullptr;
  size_t max_depth_;
  size_t depth_ = 0;
};

std::string position(std::string_view q, size_t pos) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < pos && i < q.size(); ++i) {
    if (q[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return std::to_string(line) + ":" + std::to_string(col);
}

Status parse_error(std::string_view q, const ParseError& e) {
  return Status::invalid_argument(position(q, e.pos) + ": parse error: " + e.what);
}

// ---------------------------------------------------------------------------------------------
// Checker

Problem bad(std::string msg) {
  return {Problem::Kind::kBadData, std::move(msg)};
}
Problem unsupported(std::string msg) {
  return {Problem::Kind::kUnsupported, std::move(msg)};
}

std::optional<Problem> check_node(const Node& n, ValueType* type);

std::optional<Problem> check_args(const Node& n, std::vector<ValueType>* types) {
  for (const auto& a : n.args) {
    ValueType t;
    if (auto p = check_node(*a, &t)) return p;
    types->push_back(t);
  }
  return std::nullopt;
}

// Strips parentheses: (((x))) -> x.
const Node& unparen(const Node& n) {
  const Node* p = &n;
  while (p->type == Node::Type::kParen) p = p->args[0].get();
  return *p;
}

std::optional<Problem> check_node(const Node& n, ValueType* type) {
  std::vector<ValueType> types;
  switch (n.type) {
    case Node::Type::kNumber:
      *type = ValueType::kScalar;
      return std::nullopt;
    case Node::Type::kString:
      *type = ValueType::kString;
      return std::nullopt;
    case Node::Type::kSelector:
      if (n.range_ms && *n.range_ms % 1000 != 0)
        return unsupported("range [" + std::to_string(*n.range_ms) +
                           "ms] is not a whole number of seconds; Tally stores 1 s buckets");
      *type = n.range_ms ? ValueType::kMatrix : ValueType::kVector;
      return std::nullopt;
    case Node::Type::kParen:
      return check_node(n.arg(0), type);
    case Node::Type::kSubquery:
      if (auto p = check_args(n, &types)) return p;
      if (types[0] != ValueType::kVector)
        return bad("subquery is only allowed on instant vector, got " +
                   std::string(value_type_name(types[0])) + " instead");
      *type = ValueType::kMatrix;
      return std::nullopt;
    case Node::Type::kUnary:
      if (auto p = check_args(n, &types)) return p;
      if (types[0] != ValueType::kScalar && types[0] != ValueType::kVector)
        return bad(
            "unary expression only allowed on expressions of type scalar or instant vector, got "
            "\"" +
            std::string(value_type_name(types[0])) + "\"");
      *type = types[0];
      return std::nullopt;
    case Node::Type::kCall: {
      if (!known_function(n.text)) return bad("unknown function with name \"" + n.text + "\"");
      const FunctionSig* sig = function_sig(n.text);
      if (!sig)
        return unsupported("function " + n.text + "() is not supported: " +
                           std::string(unsupported_function_reason(n.text)));
      if (auto p = check_args(n, &types)) return p;
      const size_t want = sig->args.size();
      if (types.size() < sig->min_args || (!sig->variadic && types.size() > want))
        return bad("expected " + std::to_string(want) + " argument(s) in call to \"" + n.text +
                   "\", got " + std::to_string(types.size()));
      for (size_t i = 0; i < types.size(); ++i) {
        const char c = sig->args[std::min(i, want - 1)];
        const ValueType expect = c == 's'   ? ValueType::kScalar
                                 : c == 'v' ? ValueType::kVector
                                 : c == 'm' ? ValueType::kMatrix
                                            : ValueType::kString;
        if (types[i] != expect)
          return bad("expected type " + std::string(value_type_name(expect)) +
                     " in call to function \"" + n.text + "\", got " + value_type_name(types[i]));
      }
      *type = sig->ret == 's' ? ValueType::kScalar : ValueType::kVector;
      return std::nullopt;
    }
    case Node::Type::kAggregate: {
      const AggregationOp* op = aggregation(n.text);
      if (!op->supported)
        return unsupported("aggregation " + n.text + " is not supported; Tally supports " +
                           std::string(kSupportedAggregations));
      if (auto p = check_args(n, &types)) return p;
      if (types.back() != ValueType::kVector)
        return bad("expected type instant vector in aggregation expression, got " +
                   std::string(value_type_name(types.back())));
      if (op->param && n.text == "count_values" && types[0] != ValueType::kString)
        return bad("expected type string in aggregation parameter, got " +
                   std::string(value_type_name(types[0])));
      if (op->param && n.text != "count_values" && n.text != "tally_quantile" &&
          types[0] != ValueType::kScalar)
        return bad("expected type scalar in aggregation parameter, got " +
                   std::string(value_type_name(types[0])));
      if (n.text == "tally_quantile") {  // tally_quantile(φ, distribution)
        const Node& phi = unparen(n.arg(0));
        if (phi.type != Node::Type::kNumber)
          return unsupported(n.text +
                             "'s first argument must be a number literal (the quantile, 0..1)");
        if (!(phi.number >= 0 && phi.number <= 1))
          return bad(n.text + ": quantile must be between 0 and 1, got " +
                     std::to_string(phi.number));
        const Node& sel = unparen(n.arg(1));
        if (sel.type != Node::Type::kSelector)
          return unsupported(n.text +
                             " needs a distribution selector as its second argument, e.g. " +
                             n.text + "(0.99, api_latency_ms)");
      }
      *type = ValueType::kVector;
      return std::nullopt;
    }
    case Node::Type::kBinary: {
      const std::string& op = n.text;
      const bool set_op = op == "and" || op == "or" || op == "unless";
      const bool comparison =
          op == "==" || op == "!=" || op == "<" || op == ">" || op == "<=" || op == ">=";
      if (auto p = check_args(n, &types)) return p;
      for (ValueType t : types) {
        if (t != ValueType::kScalar && t != ValueType::kVector)
          return bad("binary expression must contain only scalar and instant vector types");
      }
      const bool both_vectors = types[0] == ValueType::kVector && types[1] == ValueType::kVector;
      if (n.bool_modifier && !comparison)
        return bad("bool modifier can only be used on comparison operators");
      if (comparison && !n.bool_modifier && types[0] == ValueType::kScalar &&
          types[1] == ValueType::kScalar)
        return bad("comparisons between scalars must use BOOL modifier");
      if (set_op && !both_vectors)
        return bad("set operator \"" + op + "\" not allowed in binary scalar expression");
      if ((!n.matching.empty() || !n.group.empty()) && !both_vectors)
        return bad("vector matching only allowed between instant vectors");
      if (set_op && !n.group.empty())
        return bad("no grouping allowed for \"" + op + "\" operation");
      *type = types[0] == ValueType::kScalar && types[1] == ValueType::kScalar ? ValueType::kScalar
                                                                               : ValueType::kVector;
      return std::nullopt;
    }
  }
  return bad("unknown expression");
}

}  // namespace

const char* op_text(Matcher::Op op) {
  switch (op) {
    case Matcher::Op::kEq:
      return "=";
    case Matcher::Op::kNe:
      return "!=";
    case Matcher::Op::kRe:
      return "=~";
    case Matcher::Op::kNre:
      return "!~";
  }
  return "?";
}

bool Matcher::matches(const std::string& v) const {
  return compiled->matches(v);
}

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kScalar:
      return "scalar";
    case ValueType::kVector:
      return "instant vector";
    case ValueType::kMatrix:
      return "range vector";
    case ValueType::kString:
      return "string";
  }
  return "?";
}

Result<int64_t> parse_prom_duration(std::string_view text) {
  size_t i = 0;
  int64_t ms = 0;
  if (!lex_duration(text, &i, &ms) || i != text.size())
    return Status::invalid_argument("bad duration \"" + std::string(text) + "\"");
  return ms;
}

Result<Expr> parse(std::string_view query, const Limits& limits) {
  if (query.size() > limits.max_length)
    return Status::invalid_argument(
        "query is " + std::to_string(query.size()) + " bytes long; the limit is " +
        std::to_string(limits.max_length) + " (the collector's promql_max_length)");
  std::vector<Token> toks;
  ParseError err{0, {}};
  Lexer lexer(query);
  if (!lexer.run(&toks, &err)) return parse_error(query, err);
  if (toks.size() == 1) return parse_error(query, {0, "no expression found in input"});
  Parser p(query, std::move(toks), limits.max_depth);
  NodePtr root = p.parse_all(&err);
  if (!root) return parse_error(query, err);
  if (tree_depth(*root) > limits.max_depth)
    return Status::invalid_argument(too_deep(limits.max_depth));
  return Expr{std::move(root), std::string(query)};
}

Result<Expr> parse_selector(std::string_view text) {
  auto e = parse(text);
  if (!e) return e;
  if (e->root->type != Node::Type::kSelector || e->root->range_ms || e->root->offset_ms ||
      e->root->has_at)
    return Status::invalid_argument(
        "1:1: parse error: expected a series selector such as api_errors{status=\"500\"}");
  return e;
}

std::optional<Problem> check(const Node& root, ValueType* type) {
  return check_node(root, type);
}

}  // namespace tally::collector::promql
