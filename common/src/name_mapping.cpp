#include "tally/common/name_mapping.h"

#include "tally/common/series_key.h"

#include <cstdint>

namespace tally {
namespace {

constexpr std::string_view kMarker = "U__";

bool is_alpha_(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
bool allowed(unsigned char c, bool first, NameAlphabet a) {
  if (is_alpha_(c)) return true;
  if (first) return false;
  return is_digit(c) || c == '.' || c == '-' || (c == ':' && a == NameAlphabet::kMetric);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

}  // namespace

bool name_needs_no_mapping(std::string_view name, NameAlphabet alphabet) {
  if (name.empty() || name.starts_with(kMarker)) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!allowed(static_cast<unsigned char>(name[i]), i == 0, alphabet)) return false;
  }
  return true;
}

std::optional<std::string> map_name(std::string_view name, NameAlphabet alphabet) {
  if (name_needs_no_mapping(name, alphabet)) return std::string(name);
  std::string out(kMarker);
  out.reserve(kMarker.size() + name.size() + 8);
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < name.size();) {
    uint32_t cp = 0;
    const size_t len = decode_utf8(name, i, cp);
    if (len == 0) return std::nullopt;
    if (cp == '_') {
      out.append("__");
    } else if (cp < 0x80 && allowed(static_cast<unsigned char>(cp), i == 0, alphabet)) {
      out.push_back(static_cast<char>(cp));
    } else {
      out.push_back('_');
      char buf[8];
      int n = 0;
      uint32_t v = cp;
      do {
        buf[n++] = kHex[v & 0xf];
        v >>= 4;
      } while (v);
      while (n) out.push_back(buf[--n]);
      out.push_back('_');
    }
    i += len;
  }
  return out;
}

std::optional<std::string> unmap_name(std::string_view stored) {
  if (!stored.starts_with(kMarker)) return std::string(stored);
  std::string out;
  std::string_view s = stored.substr(kMarker.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '_') {
      out.push_back(s[i++]);
      continue;
    }
    if (i + 1 < s.size() && s[i + 1] == '_') {
      out.push_back('_');
      i += 2;
      continue;
    }
    // "_" hex "_"
    size_t j = i + 1;
    uint32_t cp = 0;
    while (j < s.size() && s[j] != '_') {
      const char c = s[j];
      uint32_t d = 0;
      if (c >= '0' && c <= '9')
        d = static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        d = static_cast<uint32_t>(c - 'a' + 10);
      else
        return std::nullopt;
      if (j - i > 6) return std::nullopt;
      cp = cp * 16 + d;
      ++j;
    }
    if (j >= s.size() || j == i + 1 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return std::nullopt;
    append_utf8(out, cp);
    i = j + 1;
  }
  return out;
}

}  // namespace tally
