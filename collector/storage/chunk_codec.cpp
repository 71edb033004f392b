#include "storage/chunk_codec.h"

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "storage/bit_io.h"
#include "storage/chunk_format.h"
#include "storage/rans.h"

namespace tally::collector {
namespace {

namespace cf = chunk_format;
using namespace codec;  // bytes, bits and rANS

// --- tokens: small values are themselves, larger ones a log bucket plus raw extra bits ---

inline uint32_t token_of(uint64_t u, int* nextra) {
  if (u < cf::kDirectTokens) {
    *nextra = 0;
    return static_cast<uint32_t>(u);
  }
  const int b = 63 - std::countl_zero(u);
  const auto sub =
      static_cast<uint32_t>((u >> (b - cf::kMantissaBits)) & ((1u << cf::kMantissaBits) - 1));
  *nextra = b - cf::kMantissaBits;
  return cf::kDirectTokens +
         static_cast<uint32_t>(b - cf::kDirectBits) * (1u << cf::kMantissaBits) + sub;
}

constexpr int extra_bits_of(uint32_t token) {
  if (token < cf::kDirectTokens) return 0;
  return static_cast<int>((token - cf::kDirectTokens) >> cf::kMantissaBits) + cf::kDirectBits -
         cf::kMantissaBits;
}

constexpr uint64_t value_of(uint32_t token, uint64_t extra) {
  if (token < cf::kDirectTokens) return token;
  const int nextra = extra_bits_of(token);
  const uint64_t top =
      (1u << cf::kMantissaBits) | ((token - cf::kDirectTokens) & ((1u << cf::kMantissaBits) - 1));
  return (top << nextra) | extra;
}

// Per token: the extra bits it takes and its value with those bits zero, so decoding a value is
// base[t] | next(nbits[t]) for every token alike (direct tokens take no bits).
struct TokenTables {
  uint8_t nbits[cf::kTokens];
  uint64_t base[cf::kTokens];
  constexpr TokenTables() : nbits(), base() {
    for (uint32_t t = 0; t < cf::kTokens; ++t) {
      nbits[t] = static_cast<uint8_t>(extra_bits_of(t));
      base[t] = value_of(t, 0);
    }
  }
};
constexpr TokenTables kTokenTables;

// --- columns ---

inline uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t unzigzag(uint64_t u) {
  return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
}

bool integral(double v) {
  return v == std::trunc(v) && std::fabs(v) <= cf::kMaxIntegral && !(v == 0 && std::signbit(v));
}

// Estimated bytes of a token stream: order-0 entropy, extra bits and about two bytes a table entry.
double estimate(const uint32_t* counts, size_t n, uint64_t extra_bits) {
  double bits = static_cast<double>(extra_bits);
  uint32_t ntok = 0;
  for (uint32_t t = 0; t < cf::kTokens; ++t) {
    if (!counts[t]) continue;
    ++ntok;
    bits -= counts[t] * std::log2(static_cast<double>(counts[t]) / static_cast<double>(n));
  }
  return bits / 8 + 2.0 * ntok;
}

void encode_int_column(const double* v, size_t n, std::string* out) {
  thread_local std::vector<uint64_t> raw, delta;
  thread_local std::vector<uint8_t> tokens;
  raw.resize(n);
  delta.resize(n);
  uint32_t raw_counts[cf::kTokens] = {}, delta_counts[cf::kTokens] = {};
  uint64_t raw_extra = 0, delta_extra = 0;
  bool negative = false;
  for (size_t i = 0; i < n; ++i) negative = negative || v[i] < 0;
  // Values as they are when none is negative (counts: 0..15 need no extra bits), else zigzag.
  int64_t prev = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto iv = static_cast<int64_t>(v[i]);
    int e;
    raw[i] = negative ? zigzag(iv) : static_cast<uint64_t>(iv);
    ++raw_counts[token_of(raw[i], &e)];
    raw_extra += static_cast<uint64_t>(e);
    delta[i] = zigzag(iv - prev);
    ++delta_counts[token_of(delta[i], &e)];
    delta_extra += static_cast<uint64_t>(e);
    prev = iv;
  }
  const bool use_delta =
      estimate(delta_counts, n, delta_extra) < estimate(raw_counts, n, raw_extra);
  const std::vector<uint64_t>& u = use_delta ? delta : raw;
  put_u8(out, static_cast<uint8_t>(use_delta  ? cf::ColumnEncoding::kIntDelta
                                   : negative ? cf::ColumnEncoding::kIntRaw
                                              : cf::ColumnEncoding::kIntUnsigned));
  tokens.resize(n);
  std::string extra;
  BitWriter bw{&extra};
  for (size_t i = 0; i < n; ++i) {
    int e;
    tokens[i] = static_cast<uint8_t>(token_of(u[i], &e));
    if (e) bw.put(u[i] & ((uint64_t{1} << e) - 1), e);
  }
  bw.finish();
  rans_encode(tokens.data(), n, use_delta ? delta_counts : raw_counts, out);
  put_varint(out, extra.size());
  out->append(extra);
}

void put_bytes_block(std::string* out, const uint8_t* data, size_t n) {
  thread_local std::string z;
  z.resize(ZSTD_compressBound(n));
  size_t zn = ZSTD_compress(z.data(), z.size(), data, n, cf::kZstdLevel);
  put_varint(out, n);
  if (!ZSTD_isError(zn) && zn < n) {
    put_u8(out, static_cast<uint8_t>(cf::BytesEncoding::kZstd));
    put_varint(out, zn);
    out->append(z.data(), zn);
  } else {
    put_u8(out, static_cast<uint8_t>(cf::BytesEncoding::kStored));
    out->append(reinterpret_cast<const char*>(data), n);
  }
}

// Reads a bytes block into *out; false when malformed or not of the expected length.
bool get_bytes_block(Reader& in, std::vector<uint8_t>* out, uint64_t max_len) {
  const uint64_t n = in.varint();
  const uint8_t enc = in.u8();
  if (!in.ok || n > max_len) return false;
  out->resize(n);
  if (enc == static_cast<uint8_t>(cf::BytesEncoding::kStored)) {
    const uint8_t* p = in.bytes(n);
    if (!in.ok) return false;
    if (n) std::memcpy(out->data(), p, n);
    return true;
  }
  if (enc != static_cast<uint8_t>(cf::BytesEncoding::kZstd)) return false;
  const uint64_t zn = in.varint();
  const uint8_t* p = in.bytes(zn);
  if (!in.ok) return false;
  size_t got = ZSTD_decompress(out->data(), n, p, zn);
  return !ZSTD_isError(got) && got == n;
}

void encode_float_column(const double* v, size_t n, std::string* out) {
  put_u8(out, static_cast<uint8_t>(cf::ColumnEncoding::kFloat));
  thread_local std::vector<uint8_t> planes;
  planes.resize(8 * n);
  uint64_t prev = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t bits = std::bit_cast<uint64_t>(v[i]);
    const uint64_t x = bits ^ prev;
    prev = bits;
    for (size_t b = 0; b < 8; ++b) planes[b * n + i] = static_cast<uint8_t>(x >> (8 * b));
  }
  put_bytes_block(out, planes.data(), planes.size());
}

void encode_packed_column(const double* v, size_t n, std::string* out) {
  int64_t lo = static_cast<int64_t>(v[0]), hi = lo;
  for (size_t i = 1; i < n; ++i) {
    lo = std::min(lo, static_cast<int64_t>(v[i]));
    hi = std::max(hi, static_cast<int64_t>(v[i]));
  }
  const int width = std::bit_width(static_cast<uint64_t>(hi - lo));
  put_u8(out, static_cast<uint8_t>(cf::ColumnEncoding::kIntPacked));
  put_varint(out, zigzag(lo));
  put_u8(out, static_cast<uint8_t>(width));
  BitWriter bw{out};
  for (size_t i = 0; i < n; ++i)
    bw.put(static_cast<uint64_t>(static_cast<int64_t>(v[i]) - lo), width);
  bw.finish();
}

void encode_column(const double* v, size_t n, std::string* out, bool packed) {
  if (n == 0) return;
  const uint64_t first = std::bit_cast<uint64_t>(v[0]);
  bool same = true, ints = true;
  for (size_t i = 0; i < n; ++i) {
    same = same && std::bit_cast<uint64_t>(v[i]) == first;
    ints = ints && integral(v[i]);
  }
  if (same) {
    put_u8(out, static_cast<uint8_t>(cf::ColumnEncoding::kConst));
    put_f64(out, v[0]);
  } else if (ints && packed) {
    encode_packed_column(v, n, out);
  } else if (ints) {
    encode_int_column(v, n, out);
  } else {
    encode_float_column(v, n, out);
  }
}

// Decodes a column of n values into out[0..n).
bool decode_column(Reader& in, size_t n, double* out) {
  if (n == 0) return true;
  const uint8_t enc = in.u8();
  if (!in.ok) return false;
  switch (static_cast<cf::ColumnEncoding>(enc)) {
    case cf::ColumnEncoding::kConst: {
      const double v = in.f64();
      std::fill(out, out + n, v);
      return in.ok;
    }
    case cf::ColumnEncoding::kIntUnsigned:
    case cf::ColumnEncoding::kIntRaw:
    case cf::ColumnEncoding::kIntDelta: {
      const auto e_kind = static_cast<cf::ColumnEncoding>(enc);
      DecTable table;  // on the stack, about 5 KiB
      thread_local std::vector<uint8_t> tokens;
      if (!read_table(in, &table)) return false;
      tokens.resize(n);
      if (table.ntok == 1) {
        std::memset(tokens.data(), table.single, n);
      } else {
        const uint64_t len = in.varint();
        const uint8_t* p = in.bytes(len);
        if (!in.ok || !rans_run(table, p, p + len, n, tokens.data())) return false;
      }
      const uint64_t elen = in.varint();
      const uint8_t* e = in.bytes(elen);
      if (!in.ok) return false;
      // Small tokens are their value: a table; larger ones take their extra bits.
      double direct[cf::kDirectTokens];
      for (uint32_t t = 0; t < cf::kDirectTokens; ++t)
        direct[t] = e_kind == cf::ColumnEncoding::kIntUnsigned ? static_cast<double>(t)
                                                               : static_cast<double>(unzigzag(t));
      const uint8_t* __restrict tk = tokens.data();
      if (elen == 0 && e_kind != cf::ColumnEncoding::kIntDelta) {
        // No token needed extra bits: every one is direct (checked, a damaged stream may lie).
        for (size_t i = 0; i < n; ++i) {
          if (tk[i] >= cf::kDirectTokens && extra_bits_of(tk[i]) > 0) return false;
          out[i] = tk[i] < cf::kDirectTokens ? direct[tk[i]] : 0.0;
        }
        return true;
      }
      BitReader br{e, e + elen};
      const uint8_t* __restrict nbits = kTokenTables.nbits;
      const uint64_t* __restrict base = kTokenTables.base;
      switch (e_kind) {
        case cf::ColumnEncoding::kIntUnsigned:
          for (size_t i = 0; i < n; ++i) {
            const uint32_t t = tk[i];
            out[i] =
                t < cf::kDirectTokens ? direct[t] : static_cast<double>(base[t] | br.get(nbits[t]));
          }
          break;
        case cf::ColumnEncoding::kIntRaw:
          for (size_t i = 0; i < n; ++i) {
            const uint32_t t = tk[i];
            out[i] = t < cf::kDirectTokens
                         ? direct[t]
                         : static_cast<double>(unzigzag(base[t] | br.get(nbits[t])));
          }
          break;
        default: {
          uint64_t acc = 0;  // unsigned: a damaged stream may overflow, which must not be UB
          for (size_t i = 0; i < n; ++i) {
            acc += static_cast<uint64_t>(unzigzag(base[tk[i]] | br.get(nbits[tk[i]])));
            out[i] = static_cast<double>(static_cast<int64_t>(acc));
          }
        }
      }
      return br.ok;
    }
    case cf::ColumnEncoding::kIntPacked: {
      const auto lo = static_cast<uint64_t>(unzigzag(in.varint()));
      const int width = in.u8();
      const uint64_t bytes = (static_cast<uint64_t>(width) * n + 7) / 8;
      const uint8_t* p = in.bytes(bytes);
      if (!in.ok || width > 56) return false;  // integral columns span at most 2^54
      // Every value's bits are inside the block (its length was checked): no bounds checks below.
      const uint64_t mask = width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
      uint64_t acc = 0;
      int have = 0;
      for (size_t i = 0; i < n; ++i) {
        while (have < width) {
          acc |= uint64_t{*p++} << have;
          have += 8;
        }
        out[i] = static_cast<double>(static_cast<int64_t>(lo + (acc & mask)));
        acc = width == 0 ? acc : acc >> width;
        have -= width;
      }
      return true;
    }
    case cf::ColumnEncoding::kFloat: {
      thread_local std::vector<uint8_t> planes;
      if (!get_bytes_block(in, &planes, 8 * static_cast<uint64_t>(n)) || planes.size() != 8 * n)
        return false;
      uint64_t prev = 0;
      for (size_t i = 0; i < n; ++i) {
        uint64_t x = 0;
        for (size_t b = 0; b < 8; ++b) x |= uint64_t{planes[b * n + i]} << (8 * b);
        prev ^= x;
        out[i] = std::bit_cast<double>(prev);
      }
      return true;
    }
  }
  return false;
}

// --- presence ---

void encode_presence(uint32_t nslots, const std::vector<ChunkSlot>& slots, std::string* out) {
  std::vector<uint32_t> runs;
  uint32_t pos = 0;
  size_t i = 0;
  while (i < slots.size()) {
    runs.push_back(slots[i].index - pos);  // absent
    size_t j = i + 1;
    while (j < slots.size() && slots[j].index == slots[j - 1].index + 1) ++j;
    runs.push_back(static_cast<uint32_t>(j - i));  // present
    pos = slots[j - 1].index + 1;
    i = j;
  }
  if (pos < nslots) runs.push_back(nslots - pos);
  put_varint(out, runs.size());
  for (uint32_t r : runs) put_varint(out, r);
}

// Present runs as [begin, end) pairs; false when the runs do not add up to nslots.
bool decode_presence(Reader& in, uint32_t nslots,
                     std::vector<std::pair<uint32_t, uint32_t>>* present, size_t* npresent) {
  present->clear();
  *npresent = 0;
  const uint64_t nruns = in.varint();
  if (!in.ok || nruns > uint64_t{nslots} + 1) return false;
  uint64_t pos = 0;
  for (uint64_t r = 0; r < nruns; ++r) {
    const uint64_t len = in.varint();
    if (!in.ok || len > nslots - pos) return false;
    if (r % 2 == 1 && len > 0) {
      present->emplace_back(static_cast<uint32_t>(pos), static_cast<uint32_t>(pos + len));
      *npresent += len;
    }
    pos += len;
  }
  return pos == nslots;
}

// --- sketch bins (distributions) ---

void put_bins(std::string* out, const std::vector<Sketch::KeyCount>& bins, int32_t* first_prev) {
  put_varint(out, bins.size());
  if (bins.empty()) return;
  put_varint(out, zigzag(int64_t{bins[0].key} - *first_prev));
  *first_prev = bins[0].key;
  put_varint(out, bins[0].count);
  for (size_t i = 1; i < bins.size(); ++i) {
    put_varint(out, static_cast<uint64_t>(int64_t{bins[i].key} - bins[i - 1].key - 1));
    put_varint(out, bins[i].count);
  }
}

bool get_bins(Reader& in, std::vector<Sketch::KeyCount>* bins, int32_t* first_prev) {
  bins->clear();
  const uint64_t n = in.varint();
  if (!in.ok || n > static_cast<uint64_t>(2 * kMaxSketchKey + 1)) return false;
  int64_t key = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (i == 0) {
      key = *first_prev + unzigzag(in.varint());
      *first_prev = static_cast<int32_t>(std::clamp<int64_t>(key, -kMaxSketchKey, kMaxSketchKey));
    } else {
      key += static_cast<int64_t>(std::min<uint64_t>(in.varint(), 1u << 20)) + 1;
    }
    const uint64_t count = in.varint();
    if (!in.ok || key < -kMaxSketchKey || key > kMaxSketchKey) return false;
    bins->push_back({static_cast<int32_t>(key), count});
  }
  return true;
}

// --- hot rows ---

// One entry: varint id gap (from the previous id, 0 before the first), tag, value.
void put_hot_entry(std::string* out, uint64_t prev_id, const HotEntry& e) {
  put_varint(out, e.series_id - prev_id);
  const BucketAgg& a = e.agg;
  switch (e.kind) {
    case Kind::kCounter:
      if (integral(a.sum)) {
        put_u8(out, static_cast<uint8_t>(e.kind) | cf::kHotVarint);
        put_varint(out, zigzag(static_cast<int64_t>(a.sum)));
      } else {
        put_u8(out, static_cast<uint8_t>(e.kind));
        put_f64(out, a.sum);
      }
      break;
    case Kind::kGauge:
      put_u8(out, static_cast<uint8_t>(e.kind));
      put_varint(out, a.count);
      put_f64(out, a.sum);
      put_f64(out, a.min);
      put_f64(out, a.max);
      put_f64(out, a.last);
      break;
    case Kind::kDistribution: {
      put_u8(out, static_cast<uint8_t>(e.kind));
      int32_t first_pos = 0, first_neg = 0;
      put_varint(out, a.sketch ? a.sketch->zero_count() : 0);
      put_bins(out, a.sketch ? a.sketch->positive_bins() : std::vector<Sketch::KeyCount>{},
               &first_pos);
      put_bins(out, a.sketch ? a.sketch->negative_bins() : std::vector<Sketch::KeyCount>{},
               &first_neg);
      put_f64(out, a.sketch ? a.sketch->sum() : a.sum);
      put_f64(out, a.sketch ? a.sketch->min() : a.min);
      put_f64(out, a.sketch ? a.sketch->max() : a.max);
      break;
    }
  }
}

// Reads one entry after prev_id; with skip set only advances past it.
bool get_hot_entry(Reader& in, uint64_t prev_id, HotEntry* e, bool skip) {
  const uint64_t gap = in.varint();
  const uint8_t tag = in.u8();
  if (!in.ok || (prev_id > 0 && gap == 0) || gap > UINT64_MAX - prev_id) return false;
  e->series_id = prev_id + gap;
  const uint8_t k = tag & cf::kHotKindMask;
  if (k != static_cast<uint8_t>(Kind::kCounter) && k != static_cast<uint8_t>(Kind::kGauge) &&
      k != static_cast<uint8_t>(Kind::kDistribution))
    return false;
  e->kind = static_cast<Kind>(k);
  BucketAgg& a = e->agg;
  switch (e->kind) {
    case Kind::kCounter:
      if (tag & cf::kHotVarint) {
        const uint64_t u = in.varint();
        if (!skip) a.sum = static_cast<double>(unzigzag(u));
      } else {
        const double v = in.f64();
        if (!skip) a.sum = v;
      }
      return in.ok;
    case Kind::kGauge: {
      const uint64_t count = in.varint();
      const double sum = in.f64(), min = in.f64(), max = in.f64(), last = in.f64();
      if (!skip) {
        a.count = count;
        a.sum = sum;
        a.min = min;
        a.max = max;
        a.last = last;
      }
      return in.ok;
    }
    case Kind::kDistribution: {
      const uint64_t zero = in.varint();
      std::vector<Sketch::KeyCount> pos, neg;
      int32_t first_pos = 0, first_neg = 0;
      if (!get_bins(in, &pos, &first_pos) || !get_bins(in, &neg, &first_neg)) return false;
      const double sum = in.f64(), min = in.f64(), max = in.f64();
      if (!in.ok) return false;
      if (skip) return true;
      uint64_t count = zero;
      for (const auto* bs : {&pos, &neg})
        for (const auto& kc : *bs) {
          if (count + kc.count < count) return false;
          count += kc.count;
        }
      a.sum = sum;
      a.min = min;
      a.max = max;
      a.count = count;
      if (count == 0) return true;
      auto sk = Sketch::from_parts(count, sum, min, max, zero, pos, neg);
      if (!sk) return false;
      a.sketch = std::make_unique<Sketch>(std::move(*sk));
      return true;
    }
  }
  return false;
}

Status corrupt(const char* what) {
  return Status::corruption(std::string("chunk: ") + what);
}

// Checks version, kind, slot count and checksum; leaves `in` at the presence runs.
Status open_chunk(std::string_view blob, Kind kind, uint32_t nslots, Reader* in) {
  if (blob.size() < 2 + 1 + 4) return corrupt("too short");
  const auto* b = reinterpret_cast<const uint8_t*>(blob.data());
  const size_t body = blob.size() - 4;
  if (XXH32(b, body, cf::kChecksumSeed) != get_le32(b + body)) return corrupt("checksum mismatch");
  *in = Reader{b, b + body};
  if (in->u8() != cf::kChunkVersion) return corrupt("unknown version");
  if (in->u8() != static_cast<uint8_t>(kind)) return corrupt("wrong kind");
  if (in->varint() != nslots || !in->ok) return corrupt("wrong slot count");
  return Status::ok();
}

}  // namespace

std::string encode_chunk(Kind kind, uint32_t nslots, const std::vector<ChunkSlot>& slots) {
  std::string out;
  put_u8(&out, cf::kChunkVersion);
  put_u8(&out, static_cast<uint8_t>(kind));
  put_varint(&out, nslots);
  encode_presence(nslots, slots, &out);
  const size_t n = slots.size();
  thread_local std::vector<double> col;
  col.resize(n);
  const bool packed = nslots <= cf::kSegmentSlots;
  auto column = [&](auto&& get) {
    for (size_t i = 0; i < n; ++i) col[i] = get(slots[i].agg);
    encode_column(col.data(), n, &out, packed);
  };
  switch (kind) {
    case Kind::kCounter:
      column([](const BucketAgg& a) { return a.sum; });
      break;
    case Kind::kGauge:
      column([](const BucketAgg& a) { return static_cast<double>(a.count); });
      column([](const BucketAgg& a) { return a.sum; });
      column([](const BucketAgg& a) { return a.min; });
      column([](const BucketAgg& a) { return a.max; });
      column([](const BucketAgg& a) { return a.last; });
      break;
    case Kind::kDistribution: {
      column([](const BucketAgg& a) {
        return a.sketch ? static_cast<double>(a.sketch->zero_count()) : 0.0;
      });
      std::string bins;
      int32_t first_pos = 0, first_neg = 0;
      for (const auto& s : slots) {
        put_bins(&bins,
                 s.agg.sketch ? s.agg.sketch->positive_bins() : std::vector<Sketch::KeyCount>{},
                 &first_pos);
        put_bins(&bins,
                 s.agg.sketch ? s.agg.sketch->negative_bins() : std::vector<Sketch::KeyCount>{},
                 &first_neg);
      }
      if (n) put_bytes_block(&out, reinterpret_cast<const uint8_t*>(bins.data()), bins.size());
      column([](const BucketAgg& a) { return a.sketch ? a.sketch->sum() : a.sum; });
      column([](const BucketAgg& a) { return a.sketch ? a.sketch->min() : a.min; });
      column([](const BucketAgg& a) { return a.sketch ? a.sketch->max() : a.max; });
      break;
    }
  }
  put_u32(&out, XXH32(out.data(), out.size(), cf::kChecksumSeed));
  return out;
}

Status decode_chunk(std::string_view blob, Kind kind, uint32_t nslots,
                    std::vector<ChunkSlot>* out) {
  out->clear();
  Reader in{nullptr, nullptr};
  if (auto s = open_chunk(blob, kind, nslots, &in); !s) return s;
  thread_local std::vector<std::pair<uint32_t, uint32_t>> present;
  size_t n = 0;
  if (!decode_presence(in, nslots, &present, &n)) return corrupt("bad presence runs");
  out->resize(n);
  size_t k = 0;
  for (auto [b, e] : present)
    for (uint32_t i = b; i < e; ++i) (*out)[k++].index = i;
  thread_local std::vector<double> col;
  col.resize(n);
  auto column = [&](auto&& set) {
    if (!decode_column(in, n, col.data())) return false;
    for (size_t i = 0; i < n; ++i) set((*out)[i].agg, col[i]);
    return true;
  };
  switch (kind) {
    case Kind::kCounter:
      if (!column([](BucketAgg& a, double v) { a.sum = v; })) return corrupt("bad sum column");
      break;
    case Kind::kGauge:
      if (!column([](BucketAgg& a, double v) {
            a.count = v >= 0 && v <= cf::kMaxIntegral ? static_cast<uint64_t>(v) : 0;
          }) ||
          !column([](BucketAgg& a, double v) { a.sum = v; }) ||
          !column([](BucketAgg& a, double v) { a.min = v; }) ||
          !column([](BucketAgg& a, double v) { a.max = v; }) ||
          !column([](BucketAgg& a, double v) { a.last = v; }))
        return corrupt("bad gauge column");
      break;
    case Kind::kDistribution: {
      thread_local std::vector<double> zero;
      zero.resize(n);
      if (!decode_column(in, n, zero.data())) return corrupt("bad zero-count column");
      thread_local std::vector<uint8_t> bins;
      if (n && !get_bytes_block(in, &bins, uint64_t{1} << 30)) return corrupt("bad sketch bins");
      if (!column([](BucketAgg& a, double v) { a.sum = v; }) ||
          !column([](BucketAgg& a, double v) { a.min = v; }) ||
          !column([](BucketAgg& a, double v) { a.max = v; }))
        return corrupt("bad distribution column");
      Reader bin_in{bins.data(), bins.data() + bins.size()};
      std::vector<Sketch::KeyCount> pos, neg;
      int32_t first_pos = 0, first_neg = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!get_bins(bin_in, &pos, &first_pos) || !get_bins(bin_in, &neg, &first_neg))
          return corrupt("bad sketch bins");
        BucketAgg& a = (*out)[i].agg;
        if (!(zero[i] >= 0 && zero[i] <= cf::kMaxIntegral)) return corrupt("bad zero count");
        uint64_t count = static_cast<uint64_t>(zero[i]);
        for (const auto* bs : {&pos, &neg})
          for (const auto& kc : *bs) {
            if (count + kc.count < count) return corrupt("sketch count overflows");
            count += kc.count;
          }
        a.count = count;
        if (count == 0) continue;  // a bucket without samples has no sketch
        auto sk = Sketch::from_parts(count, a.sum, a.min, a.max, static_cast<uint64_t>(zero[i]),
                                     pos, neg);
        if (!sk) return corrupt("bad sketch");
        a.sketch = std::make_unique<Sketch>(std::move(*sk));
      }
      if (bin_in.p != bin_in.end) return corrupt("trailing sketch bytes");
      break;
    }
  }
  if (in.p != in.end) return corrupt("trailing bytes");
  return Status::ok();
}

std::string encode_hot_row(const std::vector<HotEntry>& entries) {
  std::string out;
  out.reserve(4 + entries.size() * 3);
  put_varint(&out, entries.size());
  uint64_t prev = 0;
  for (const auto& e : entries) {
    put_hot_entry(&out, prev, e);
    prev = e.series_id;
  }
  return out;
}

Status decode_hot_row(std::string_view blob, std::vector<HotEntry>* out) {
  out->clear();
  const auto* b = reinterpret_cast<const uint8_t*>(blob.data());
  Reader in{b, b + blob.size()};
  const uint64_t n = in.varint();
  if (!in.ok || n > blob.size()) return corrupt("bad hot row");
  out->resize(n);
  uint64_t prev = 0;
  for (auto& e : *out) {
    if (!get_hot_entry(in, prev, &e, false)) return corrupt("bad hot row entry");
    prev = e.series_id;
  }
  if (in.p != in.end) return corrupt("trailing hot row bytes");
  return Status::ok();
}

Status find_in_hot_row(std::string_view blob, uint64_t series_id, HotEntry* out, bool* found) {
  *found = false;
  const auto* b = reinterpret_cast<const uint8_t*>(blob.data());
  Reader in{b, b + blob.size()};
  const uint64_t n = in.varint();
  if (!in.ok || n > blob.size()) return corrupt("bad hot row");
  uint64_t prev = 0;
  HotEntry scratch;
  for (uint64_t i = 0; i < n; ++i) {
    // Peek at the id; decode the values only of the one wanted.
    Reader peek = in;
    const uint64_t id = prev + peek.varint();
    const bool want = id == series_id;
    if (want) *out = HotEntry{};
    if (!get_hot_entry(in, prev, want ? out : &scratch, !want)) return corrupt("bad hot row entry");
    if (want) {
      *found = true;
      return Status::ok();
    }
    if (id > series_id) return Status::ok();  // sorted: not there
    prev = id;
  }
  return Status::ok();
}

Result<Kind> chunk_kind(std::string_view blob) {
  if (blob.size() < 2 || static_cast<uint8_t>(blob[0]) != cf::kChunkVersion)
    return corrupt("unknown version");
  const auto k = static_cast<uint8_t>(blob[1]);
  if (k != static_cast<uint8_t>(Kind::kCounter) && k != static_cast<uint8_t>(Kind::kGauge) &&
      k != static_cast<uint8_t>(Kind::kDistribution))
    return corrupt("unknown kind");
  return static_cast<Kind>(k);
}

Status decode_counter_runs(std::string_view blob, uint32_t nslots, std::vector<SlotRun>* runs,
                           std::vector<double>* values) {
  Reader in{nullptr, nullptr};
  if (auto s = open_chunk(blob, Kind::kCounter, nslots, &in); !s) return s;
  thread_local std::vector<std::pair<uint32_t, uint32_t>> present;
  size_t n = 0;
  if (!decode_presence(in, nslots, &present, &n)) return corrupt("bad presence runs");
  runs->clear();
  uint32_t first = 0;
  for (auto [b, e] : present) {
    runs->push_back({b, e, first});
    first += e - b;
  }
  values->resize(n);
  if (!decode_column(in, n, values->data())) return corrupt("bad sum column");
  if (in.p != in.end) return corrupt("trailing bytes");
  return Status::ok();
}

Status decode_counter_sums(std::string_view blob, uint32_t nslots, double* dense) {
  Reader in{nullptr, nullptr};
  if (auto s = open_chunk(blob, Kind::kCounter, nslots, &in); !s) return s;
  thread_local std::vector<std::pair<uint32_t, uint32_t>> present;
  size_t n = 0;
  if (!decode_presence(in, nslots, &present, &n)) return corrupt("bad presence runs");
  if (n == nslots) {
    if (!decode_column(in, n, dense)) return corrupt("bad sum column");
  } else {
    thread_local std::vector<double> col;
    col.resize(n);
    if (!decode_column(in, n, col.data())) return corrupt("bad sum column");
    std::fill(dense, dense + nslots, 0.0);
    size_t k = 0;
    for (auto [b, e] : present)
      for (uint32_t i = b; i < e; ++i) dense[i] = col[k++];
  }
  if (in.p != in.end) return corrupt("trailing bytes");
  return Status::ok();
}

}  // namespace tally::collector
