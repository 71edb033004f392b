#include "variables.h"

#include <algorithm>

namespace tally::dash {
namespace {

bool isIdentStart(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool isIdent(char c) {
  return isIdentStart(c) || (c >= '0' && c <= '9');
}

const Variable* find(const std::vector<Variable>& vars, std::string_view name) {
  for (const auto& v : vars)
    if (v.name == name) return &v;
  return nullptr;
}

// The variable a whole value names ("$name" or "${name}"), or null.
const Variable* wholeReference(std::string_view value, const std::vector<Variable>& vars) {
  if (value.size() > 3 && value.starts_with("${") && value.back() == '}')
    return find(vars, value.substr(2, value.size() - 3));
  if (value.size() > 1 && value[0] == '$') {
    std::string_view name = value.substr(1);
    if (std::all_of(name.begin(), name.end(), isIdent)) return find(vars, name);
  }
  return nullptr;
}

// Replaces every $name / ${name} of a known variable in `text` with what `render` makes of it.
template <typename Render>
std::string substitute(std::string_view text, const std::vector<Variable>& vars, Render&& render) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '$') {
      out.push_back(text[i++]);
      continue;
    }
    size_t start = i + 1, end = start;
    bool braced = start < text.size() && text[start] == '{';
    if (braced) {
      end = text.find('}', start);
      if (end == std::string_view::npos) {
        out.append(text.substr(i));
        break;
      }
      const Variable* v = find(vars, text.substr(start + 1, end - start - 1));
      if (v) {
        out += render(*v);
        i = end + 1;
        continue;
      }
    } else {
      while (end < text.size() && isIdent(text[end])) ++end;
      const Variable* v = end > start ? find(vars, text.substr(start, end - start)) : nullptr;
      if (v) {
        out += render(*v);
        i = end;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

std::string alternation(const Variable& v) {
  if (v.current.empty()) return ".*";
  if (v.current.size() == 1) return quoteRegex(v.current[0]);
  std::string out = "(?:";
  for (size_t i = 0; i < v.current.size(); ++i) {
    if (i) out += "|";
    out += quoteRegex(v.current[i]);
  }
  return out + ")";
}

std::string joined(const Variable& v) {
  if (v.current.empty()) return "All";
  std::string out;
  for (size_t i = 0; i < v.current.size(); ++i) out += (i ? "+" : "") + v.current[i];
  return out;
}

}  // namespace

std::string quoteRegex(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (std::string_view("\\.+*?()|[]{}^$").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

PanelSpec applyVariables(const PanelSpec& panel, const std::vector<Variable>& vars) {
  if (vars.empty()) return panel;
  PanelSpec out = panel;
  out.filters.clear();
  for (const TagFilter& f : panel.filters) {
    const Variable* v = wholeReference(f.value, vars);
    const bool regex = f.op == FilterOp::Regex || f.op == FilterOp::NotRegex;
    if (!v) {
      TagFilter g = f;
      if (regex) g.value = substitute(f.value, vars, alternation);
      out.filters.push_back(std::move(g));
      continue;
    }
    if (v->current.empty()) continue;  // All: no narrowing
    const bool negated = f.op == FilterOp::NotEq || f.op == FilterOp::NotRegex;
    if (v->current.size() == 1) {
      out.filters.push_back({f.key, f.op, regex ? quoteRegex(v->current[0]) : v->current[0]});
    } else if (!negated) {
      out.filters.push_back({f.key, FilterOp::Regex, alternation(*v)});
    } else if (panel.onCollector()) {
      for (const auto& value : v->current) out.filters.push_back({f.key, FilterOp::NotEq, value});
    } else {
      out.filters.push_back({f.key, FilterOp::NotRegex, alternation(*v)});
    }
  }
  if (!panel.promql.empty()) out.promql = substitute(panel.promql, vars, alternation);
  if (!panel.title.empty()) out.title = substitute(panel.title, vars, joined);
  return out;
}

bool usesVariables(const PanelSpec& panel, const std::vector<Variable>& vars) {
  bool used = false;
  auto mark = [&](const Variable&) {
    used = true;
    return std::string();
  };
  for (const auto& f : panel.filters) (void)substitute(f.value, vars, mark);
  (void)substitute(panel.promql, vars, mark);
  (void)substitute(panel.title, vars, mark);
  return used;
}

Status validateVariable(const Variable& v, const std::string& where) {
  if (v.name.empty() || !isIdentStart(v.name[0]) ||
      !std::all_of(v.name.begin(), v.name.end(), isIdent))
    return Status::invalid_argument(where + ".name: '" + v.name +
                                    "' must be letters, digits and _ (not starting with a digit)");
  const bool prom = !v.source.empty();
  if (auto s = prom ? validatePromName(v.metric, "metric name") : validate_metric_name(v.metric);
      !s)
    return Status::invalid_argument(where + ".metric: " + s.message());
  if (auto s = prom ? validatePromName(v.tag, "label name") : validate_tag_key(v.tag); !s)
    return Status::invalid_argument(where + ".tag: " + s.message());
  if (!v.multi && v.current.size() > 1)
    return Status::invalid_argument(where + ".current: '" + v.name +
                                    "' takes one value (\"multi\" is false)");
  return Status::ok();
}

Status setVariableFromArg(std::vector<Variable>& vars, std::string_view arg) {
  const size_t eq = arg.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return Status::invalid_argument("--var '" + std::string(arg) +
                                    "': expected name=value[,value]");
  const std::string name(arg.substr(0, eq));
  auto it =
      std::find_if(vars.begin(), vars.end(), [&](const Variable& v) { return v.name == name; });
  if (it == vars.end()) {
    std::string known;
    for (const auto& v : vars) known += (known.empty() ? "" : ", ") + v.name;
    return Status::invalid_argument(
        "--var: the dashboard has no variable '" + name + "'" +
        (known.empty() ? " (it has none)" : " (it has: " + known + ")"));
  }
  std::vector<std::string> values;
  std::string_view rest = arg.substr(eq + 1);
  if (!rest.empty() && rest != "All") {
    while (true) {
      const size_t comma = rest.find(',');
      std::string_view one = rest.substr(0, comma);
      if (!one.empty()) values.emplace_back(one);
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
  }
  if (values.empty() && !it->includeAll)
    return Status::invalid_argument("--var " + name + ": 'All' is not offered; name a value");
  if (values.size() > 1 && !it->multi)
    return Status::invalid_argument("--var " + name + ": takes one value (it is not multi-value)");
  it->current = std::move(values);
  return Status::ok();
}

}  // namespace tally::dash
