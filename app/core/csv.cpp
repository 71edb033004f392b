#include "csv.h"

#include <ctime>
#include <set>

namespace tally::dash {

std::string formatIsoUtc(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string seriesToCsv(const std::string& metric, const std::string& fn,
                        const std::vector<Series>& series, int64_t from, int64_t to) {
  std::set<std::string> keys;
  for (const auto& s : series)
    for (const auto& t : s.tags) keys.insert(t.key);
  std::string out = "timestamp,time,metric,fn";
  for (const auto& k : keys) out += "," + csvField(k);
  out += ",value\n";
  for (const auto& s : series) {
    std::string tagCols;
    for (const auto& k : keys) {
      std::string v;
      for (const auto& t : s.tags)
        if (t.key == k) v = t.value;
      tagCols += "," + csvField(v);
    }
    std::string prefix = "," + csvField(metric) + "," + csvField(fn) + tagCols + ",";
    for (const auto& p : s.points) {
      if (p.t < from || p.t >= to) continue;
      out += std::to_string(p.t) + "," + formatIsoUtc(p.t) + prefix + csv_number(p.v) + "\n";
    }
  }
  return out;
}

std::string histogramToCsv(const HistogramResult& h) {
  std::string out = "lower,upper,count\n";
  for (const auto& b : h.buckets)
    out += csv_number(b.lower) + "," + csv_number(b.upper) + "," + std::to_string(b.count) + "\n";
  return out;
}

std::string heatmapToCsv(const HeatmapResult& h, int64_t from, int64_t to) {
  std::string out = "timestamp,time,count,p50,p90,p99,lower,upper,bin_count\n";
  for (const auto& c : h.columns) {
    if (c.time < from || c.time >= to) continue;
    std::string prefix = std::to_string(c.time) + "," + formatIsoUtc(c.time) + "," +
                         std::to_string(c.count) + "," + csv_number(c.p50) + "," +
                         csv_number(c.p90) + "," + csv_number(c.p99) + ",";
    for (const auto& b : c.buckets)
      out += prefix + csv_number(b.lower) + "," + csv_number(b.upper) + "," +
             std::to_string(b.count) + "\n";
  }
  return out;
}

std::vector<std::vector<std::string>> parseCsv(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
      continue;
    }
    any = true;
    if (c == '"')
      quoted = true;
    else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      any = false;
    } else if (c != '\r') {
      field += c;
    }
  }
  if (any || !field.empty() || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace tally::dash
