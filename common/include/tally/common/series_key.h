// Metric names, tags, kinds and the canonical series key.
//
// Limits (docs/format/wire.md): metric `[A-Za-z_][A-Za-z0-9_.:-]*` up to 200 bytes; at most 32
// tags; tag key `[A-Za-z_][A-Za-z0-9_.-]*` up to 100 bytes; tag value UTF-8 without control
// characters, 1..200 bytes. The canonical series key is the metric followed by its tags sorted by
// key, each as "\x1f" key "=" value; \x1f cannot occur in a name, key or value, so the key is
// unambiguous. series_hash() is XXH3-64 of that key. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tally/common/status.h"

namespace tally {

inline constexpr size_t kMaxMetricBytes = 200;
inline constexpr size_t kMaxTags = 32;
inline constexpr size_t kMaxTagKeyBytes = 100;
inline constexpr size_t kMaxTagValueBytes = 200;
inline constexpr char kKeySeparator = '\x1f';

enum class Kind : int { kCounter = 1, kGauge = 2, kDistribution = 3 };

const char* kind_name(Kind kind);  // "counter", "gauge", "distribution"
std::optional<Kind> parse_kind(std::string_view name);

struct Tag {
  std::string key;
  std::string value;
  bool operator==(const Tag&) const = default;
  auto operator<=>(const Tag&) const = default;
};
using Tags = std::vector<Tag>;

Status validate_metric_name(std::string_view name);
Status validate_tag_key(std::string_view key);
Status validate_tag_value(std::string_view value);
// Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF); without
// controls_ok, C0, DEL and C1 control characters are refused too.
bool valid_utf8(std::string_view s, bool controls_ok);
// Decodes one UTF-8 code point at s[i] into cp; returns its length in bytes, 0 when the bytes
// there are not UTF-8 (the same rules as valid_utf8). Requires i < s.size().
size_t decode_utf8(std::string_view s, size_t i, uint32_t& cp);
// Validates every tag and the count; rejects a key that appears twice.
Status validate_tags(const Tags& tags);

// Sorts tags by key (stable for equal keys, which validate_tags rejects).
void canonicalize(Tags& tags);

// The canonical key of metric + tags; tags must already be canonical.
std::string series_key(std::string_view metric, const Tags& tags);
// Splits a canonical key back into metric and tags.
Result<std::pair<std::string, Tags>> parse_series_key(std::string_view key);

uint64_t series_hash(std::string_view canonical_key);

// "k=v,k2=v2" for logs and displays.
std::string tags_to_string(const Tags& tags);

}  // namespace tally
