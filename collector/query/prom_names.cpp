#include "query/prom_names.h"

#include <algorithm>
#include <charconv>
#include <iterator>

namespace tally::collector {
namespace {

bool label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

std::string prom_metric_name(std::string_view tally_metric) {
  std::string out(tally_metric);
  for (char& c : out)
    if (!label_char(c) && c != ':') c = '_';
  return out;
}

std::string prom_label_name(std::string_view tally_key) {
  std::string out(tally_key);
  for (char& c : out)
    if (!label_char(c)) c = '_';
  return out;
}

namespace prom {

using promql::Matcher;
using promql::Node;

bool valid_label_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), label_char);
}

NameTable::NameTable(const SeriesCatalog& catalog) {
  const auto metrics = catalog.metrics();
  for (int pass = 0; pass < 3; ++pass) {
    for (const auto& m : metrics) {
      const std::string base = prom_metric_name(m.name);
      if (pass == 0 && base == m.name) add(base, m, Variant::kValue);
      if (pass == 1 && base != m.name) add(base, m, Variant::kValue);
      if (pass == 2 && m.kind == Kind::kDistribution) {
        add(base + "_count", m, Variant::kCount);
        add(base + "_sum", m, Variant::kSum);
      }
    }
  }
  for (const auto& m : metrics) kinds_.emplace(m.name, m.kind);
}

std::vector<Exposed> NameTable::select(const Node& sel) const {
  auto name_ok = [&](const std::string& n) {
    for (const auto& m : sel.matchers)
      if (m.name == "__name__" && !m.matches(n)) return false;
    return true;
  };
  std::vector<Exposed> out;
  if (!sel.metric.empty()) {
    if (auto it = by_name_.find(sel.metric); it != by_name_.end()) {
      if (name_ok(it->first)) out.push_back(it->second);
    } else if (auto k = kinds_.find(sel.metric); k != kinds_.end()) {
      Exposed e{prom_metric_name(sel.metric), sel.metric, k->second, Variant::kValue};
      if (name_ok(e.name)) out.push_back(std::move(e));
    }
    return out;
  }
  for (const auto& [name, e] : by_name_)
    if (name_ok(name)) out.push_back(e);
  return out;
}

void NameTable::add(const std::string& name, const MetricSummary& m, Variant v) {
  by_name_.emplace(name, Exposed{name, m.name, m.kind, v});
}

namespace {

Labels labels_of(const SeriesInfo& s, const std::string& name) {
  Labels l;
  l["__name__"] = name;
  for (const auto& t : s.tags()) {
    std::string k = prom_label_name(t.key);
    if (k.starts_with("__")) continue;  // reserved for Prometheus's own labels
    l.emplace(std::move(k),
              std::string(t.value));  // mapped-key collisions: the first tag in key order wins
  }
  return l;
}

// A matcher's label: the Prometheus label, else a Tally tag key given quoted
// ({"http.method"="GET"}).
std::string label_value(const Labels& l, const SeriesInfo& s, const std::string& name) {
  if (auto it = l.find(name); it != l.end()) return it->second;
  for (const auto& t : s.tags())
    if (t.key == name) return std::string(t.value);
  return {};
}

}  // namespace

MaybeError select_leaf(const QueryEngine& engine, int64_t from_s, const Node& sel, const Exposed& e,
                       bool quantile_label, Leaf* out) {
  out->exposed = e;
  const bool summary = e.summary() && quantile_label;
  if (summary) {
    std::vector<std::string> candidates;
    for (const auto& m : sel.matchers)
      if (m.name == "quantile" && m.op == Matcher::Op::kEq) {
        candidates = {m.value};
        break;
      }
    if (candidates.empty())
      candidates.assign(std::begin(kDefaultQuantiles), std::end(kDefaultQuantiles));
    for (const auto& c : candidates) {
      bool ok = true;
      for (const auto& m : sel.matchers)
        if (m.name == "quantile" && !m.matches(c)) ok = false;
      if (!ok) continue;
      double q = -1;
      auto [p, ec] = std::from_chars(c.data(), c.data() + c.size(), q);
      if (ec != std::errc() || p != c.data() + c.size() || !(q >= 0 && q <= 1))
        return bad_data("quantile=\"" + c + "\" of distribution '" + e.name +
                        "' is not a number between 0 and 1");
      out->quantiles.push_back(c);
    }
    if (out->quantiles.empty()) return std::nullopt;
  }
  auto set = engine.series_of(e.metric, from_s);
  if (!set) return from_status(set.status());
  out->keep = *set;
  for (const SeriesInfo* s : (*set)->series) {
    Labels l = labels_of(*s, e.name);
    if (e.summary()) l.erase("quantile");  // the summary's own label shadows a tag of that name
    bool ok = true;
    for (const auto& m : sel.matchers) {
      if (m.name == "__name__" || (summary && m.name == "quantile")) continue;
      if (!m.matches(label_value(l, *s, m.name))) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    out->series.push_back(s);
    out->labels.push_back(std::move(l));
  }
  return std::nullopt;
}

MaybeError series_of(const QueryEngine& engine, const NameTable& names, const Node& sel,
                     std::set<Labels>* out, TimeNarrowing* narrow) {
  for (const Exposed& e : names.select(sel)) {
    Leaf leaf;
    if (auto err =
            select_leaf(engine, narrow ? narrow->from_s : kMinQueryTime, sel, e, true, &leaf))
      return err;
    std::vector<char> has_data(leaf.series.size(), 1);
    if (narrow && narrow->engine && narrow->read + leaf.series.size() <= narrow->max_series) {
      narrow->read += leaf.series.size();
      const auto& res = narrow->engine->resolutions();
      const size_t r = res.size() - 1;
      const int64_t step = res[r].step_s;
      std::vector<std::vector<StoredBucket>> buckets;
      const int64_t from = narrow->from_s - (narrow->from_s % step + step) % step;
      if (auto s = narrow->engine->read_buckets(leaf.series, r, from, narrow->to_s + 1, &buckets);
          !s)
        return from_status(s);
      for (size_t i = 0; i < buckets.size(); ++i) has_data[i] = !buckets[i].empty();
    }
    for (size_t i = 0; i < leaf.labels.size(); ++i) {
      if (!has_data[i]) continue;
      auto& l = leaf.labels[i];
      if (!e.summary()) {
        out->insert(l);
        continue;
      }
      for (const auto& q : leaf.quantiles) {
        Labels with = l;
        with["quantile"] = q;
        out->insert(std::move(with));
      }
    }
  }
  return std::nullopt;
}

}  // namespace prom
}  // namespace tally::collector
