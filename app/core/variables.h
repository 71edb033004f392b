// Dashboard variables (dashboard.h, Variable) applied to a panel: what the panel queries and
// shows with the values chosen now. Panels refer to a variable as $name or ${name}:
//
//   filter value exactly "$name"   nothing chosen (All): the filter is left out, so the variable
//                                  does not narrow the panel;
//                                  one value v: key op v (=~ and !~ take v regex-quoted);
//                                  several, with = or =~: key =~ (?:v1|v2), each quoted;
//                                  several, with != or !~: on the collector one key != v per value,
//                                  on a Prometheus source key !~ (?:v1|v2);
//   inside a longer =~ / !~ value  $name becomes (?:v1|v2) quoted, or .* for All;
//   PromQL                          the same as inside a regex: write {region=~"$region"};
//   title                           the values joined by "+", or "All".
// A $name no variable has is left as written.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dashboard.h"

namespace tally::dash {

// v with every regex metacharacter escaped (RE2 and Prometheus read it as the literal text).
std::string quoteRegex(std::string_view v);

// The panel as it queries and is titled with the variables' current values.
PanelSpec applyVariables(const PanelSpec& panel, const std::vector<Variable>& vars);

// Whether the panel refers to any of the variables (a change of theirs re-queries it).
bool usesVariables(const PanelSpec& panel, const std::vector<Variable>& vars);

// A variable's own rules: a name of [A-Za-z_][A-Za-z0-9_]*, a metric and a tag key its source
// would take (the collector's rules, or a Prometheus source's), at most one current value unless
// multi. That a named source exists is validateDashboard()'s job.
Status validateVariable(const Variable& v, const std::string& where);

// "name=v1,v2" (the command line's --var): sets the variable's current values; "name=" or
// "name=All" chooses All. Fails for an unknown name, several values on a single-value variable,
// or All where it is not offered.
Status setVariableFromArg(std::vector<Variable>& vars, std::string_view arg);

}  // namespace tally::dash
