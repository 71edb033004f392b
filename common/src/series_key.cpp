#include "tally/common/series_key.h"

#include <xxhash.h>

#include <algorithm>

namespace tally {
namespace {

bool is_alpha_(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

size_t decode_utf8(std::string_view s, size_t i, uint32_t& cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t len = 0;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if ((c & 0xe0) == 0xc0) {
    len = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3f);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

bool valid_utf8(std::string_view s, bool controls_ok) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t len = decode_utf8(s, i, cp);
    if (len == 0) return false;
    // C0, DEL and C1 controls.
    if (!controls_ok && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))) return false;
    i += len;
  }
  return true;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kCounter:
      return "counter";
    case Kind::kGauge:
      return "gauge";
    case Kind::kDistribution:
      return "distribution";
  }
  return "unknown";
}

std::optional<Kind> parse_kind(std::string_view name) {
  if (name == "counter") return Kind::kCounter;
  if (name == "gauge") return Kind::kGauge;
  if (name == "distribution") return Kind::kDistribution;
  return std::nullopt;
}

Status validate_metric_name(std::string_view name) {
  if (name.empty()) return Status::invalid_argument("metric name is empty");
  if (name.size() > kMaxMetricBytes)
    return Status::invalid_argument("metric name is " + std::to_string(name.size()) +
                                    " bytes, the limit is " + std::to_string(kMaxMetricBytes));
  if (!is_alpha_(name[0]))
    return Status::invalid_argument("metric name must start with a letter or '_'");
  for (char c : name) {
    if (!(is_alpha_(c) || is_digit(c) || c == '.' || c == ':' || c == '-'))
      return Status::invalid_argument(
          "metric name has an invalid character; allowed: [A-Za-z0-9_.:-]");
  }
  return Status::ok();
}

Status validate_tag_key(std::string_view key) {
  if (key.empty()) return Status::invalid_argument("tag key is empty");
  if (key.size() > kMaxTagKeyBytes)
    return Status::invalid_argument("tag key is " + std::to_string(key.size()) +
                                    " bytes, the limit is " + std::to_string(kMaxTagKeyBytes));
  if (!is_alpha_(key[0]))
    return Status::invalid_argument("tag key must start with a letter or '_'");
  for (char c : key) {
    if (!(is_alpha_(c) || is_digit(c) || c == '.' || c == '-'))
      return Status::invalid_argument("tag key has an invalid character; allowed: [A-Za-z0-9_.-]");
  }
  return Status::ok();
}

Status validate_tag_value(std::string_view value) {
  if (value.empty()) return Status::invalid_argument("tag value is empty");
  if (value.size() > kMaxTagValueBytes)
    return Status::invalid_argument("tag value is " + std::to_string(value.size()) +
                                    " bytes, the limit is " + std::to_string(kMaxTagValueBytes));
  if (!valid_utf8(value, false))
    return Status::invalid_argument("tag value must be UTF-8 without control characters");
  return Status::ok();
}

Status validate_tags(const Tags& tags) {
  if (tags.size() > kMaxTags)
    return Status::invalid_argument(std::to_string(tags.size()) + " tags, the limit is " +
                                    std::to_string(kMaxTags));
  for (size_t i = 0; i < tags.size(); ++i) {
    if (auto s = validate_tag_key(tags[i].key); !s) return s;
    if (auto s = validate_tag_value(tags[i].value); !s)
      return Status::invalid_argument(s.message() + " (key '" + tags[i].key + "')");
    for (size_t j = 0; j < i; ++j) {
      if (tags[j].key == tags[i].key)
        return Status::invalid_argument("tag key '" + tags[i].key + "' appears twice");
    }
  }
  return Status::ok();
}

void canonicalize(Tags& tags) {
  std::stable_sort(tags.begin(), tags.end(),
                   [](const Tag& a, const Tag& b) { return a.key < b.key; });
}

std::string series_key(std::string_view metric, const Tags& tags) {
  size_t n = metric.size();
  for (const auto& t : tags) n += t.key.size() + t.value.size() + 2;
  std::string key;
  key.reserve(n);
  key.append(metric);
  for (const auto& t : tags) {
    key.push_back(kKeySeparator);
    key.append(t.key);
    key.push_back('=');
    key.append(t.value);
  }
  return key;
}

Result<std::pair<std::string, Tags>> parse_series_key(std::string_view key) {
  size_t pos = key.find(kKeySeparator);
  std::pair<std::string, Tags> out;
  out.first = std::string(key.substr(0, pos));
  while (pos != std::string_view::npos) {
    size_t next = key.find(kKeySeparator, pos + 1);
    std::string_view part =
        key.substr(pos + 1, next == std::string_view::npos ? next : next - pos - 1);
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) return Status::corruption("series key part without '='");
    out.second.push_back(Tag{std::string(part.substr(0, eq)), std::string(part.substr(eq + 1))});
    pos = next;
  }
  return out;
}

uint64_t series_hash(std::string_view canonical_key) {
  return XXH3_64bits(canonical_key.data(), canonical_key.size());
}

std::string tags_to_string(const Tags& tags) {
  std::string s;
  for (const auto& t : tags) {
    if (!s.empty()) s.push_back(',');
    s += t.key;
    s.push_back('=');
    s += t.value;
  }
  return s;
}

}  // namespace tally
