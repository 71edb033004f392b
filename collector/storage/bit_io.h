// Byte and bit I/O for the chunk codec: little-endian and varint writers, a bounds-checked byte
// Reader (a read past the end sets ok = false and returns zeros, never reads out of bounds), and
// LSB-first bit writer and reader for the extra bits of tokens (docs/format/chunk.md).
// Header-only so the per-value calls inline. Thread-safety: plain values.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

namespace tally::collector::codec {

inline void put_u8(std::string* out, uint8_t v) {
  out->push_back(static_cast<char>(v));
}
inline void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
inline void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void put_u32(std::string* out, uint32_t v) {
  uint8_t b[4];
  put_le32(b, v);
  out->append(reinterpret_cast<const char*>(b), 4);
}
inline void put_f64(std::string* out, double v) {
  uint64_t bits = std::bit_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(bits >> (8 * i)));
}
inline uint32_t get_le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// A bounds-checked reader: any read past the end sets ok = false and returns zeros.
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;

  size_t left() const { return static_cast<size_t>(end - p); }
  uint8_t u8() {
    if (p == end) return fail(), 0;
    return *p++;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p == end) return fail(), 0;
      uint8_t b = *p++;
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    return fail(), 0;
  }
  double f64() {
    if (left() < 8) return fail(), 0.0;
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits |= uint64_t{p[i]} << (8 * i);
    p += 8;
    return std::bit_cast<double>(bits);
  }
  const uint8_t* bytes(size_t n) {
    if (left() < n) return fail(), nullptr;
    const uint8_t* r = p;
    p += n;
    return r;
  }
  void fail() {
    ok = false;
    p = end;
  }
};

struct BitWriter {
  std::string* out;
  uint64_t acc = 0;
  int n = 0;
  void put(uint64_t v, int bits) {
    while (bits > 32) {
      put32(v & 0xffffffffu, 32);
      v >>= 32;
      bits -= 32;
    }
    put32(v, bits);
  }
  void put32(uint64_t v, int bits) {
    acc |= v << n;
    n += bits;
    while (n >= 8) {
      out->push_back(static_cast<char>(acc & 0xff));
      acc >>= 8;
      n -= 8;
    }
  }
  void finish() {
    if (n > 0) out->push_back(static_cast<char>(acc & 0xff));
    acc = 0;
    n = 0;
  }
};

struct BitReader {
  const uint8_t* p;
  const uint8_t* end;
  uint64_t acc = 0;
  int n = 0;
  bool ok = true;
  uint64_t get(int bits) {
    if (bits <= n) {  // the common case: the buffer holds them
      const uint64_t v = acc & ((uint64_t{1} << bits) - 1);
      acc >>= bits;
      n -= bits;
      return v;
    }
    uint64_t v = 0;
    int shift = 0;
    while (bits > 32) {
      v |= get32(32) << shift;
      shift += 32;
      bits -= 32;
    }
    return v | (get32(bits) << shift);
  }
  uint64_t get32(int bits) {
    if (n < bits && end - p >= 8) {
      // Fast refill: as many whole bytes as fit in the 64-bit buffer.
      uint64_t word;
      std::memcpy(&word, p, 8);
      const int take = (63 - n) >> 3;
      acc |= (take == 8 ? word : word & ((uint64_t{1} << (8 * take)) - 1)) << n;
      p += take;
      n += 8 * take;
    }
    while (n < bits) {
      if (p == end) {
        ok = false;
        return 0;
      }
      acc |= uint64_t{*p++} << n;
      n += 8;
    }
    uint64_t v = acc & ((uint64_t{1} << bits) - 1);
    acc >>= bits;
    n -= bits;
    return v;
  }
};

}  // namespace tally::collector::codec
