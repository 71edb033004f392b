// The annotation store's file, annotations.sqlite in the data directory (docs/format/
// annotations.md): its format number and the bounds of one annotation's fields.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tally::collector::annotation_format {

// meta('annotations_format'): 1 = the tables of docs/format/annotations.md. A file of a higher
// number was written by a newer collector and is refused at start-up, never half read.
inline constexpr int64_t kFormat = 1;

inline constexpr size_t kMaxTitleBytes = 200;  // 1..200 bytes of UTF-8 without controls
inline constexpr size_t kMaxTextBytes = 4096;  // 0..4096 bytes of UTF-8 (newlines and tabs)
// Tags follow the series tags' rules (tally/common/series_key.h): at most kMaxTags pairs.

inline constexpr const char* kFileName = "annotations.sqlite";

}  // namespace tally::collector::annotation_format
