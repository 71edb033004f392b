#include "storage/rans.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

namespace tally::collector::codec {

namespace cf = chunk_format;

namespace {

struct Model {
  int prob_bits = 0;
  uint32_t ntok = 0;
  uint32_t freq[cf::kTokens] = {};
  uint32_t start[cf::kTokens] = {};
};

int ceil_log2(uint64_t v) {
  return v <= 1 ? 0 : 64 - std::countl_zero(v - 1);
}

// Quantises counts (adding up to n) to frequencies adding up to 2^P, each present token >= 1.
void normalise(const uint32_t* counts, size_t n, Model* m) {
  m->ntok = 0;
  for (uint32_t t = 0; t < cf::kTokens; ++t) m->ntok += counts[t] ? 1 : 0;
  m->prob_bits = std::clamp(std::max(ceil_log2(n), ceil_log2(m->ntok) + 1), cf::kRansMinProbBits,
                            cf::kRansMaxProbBits);
  const uint32_t total = 1u << m->prob_bits;
  int64_t sum = 0;
  for (uint32_t t = 0; t < cf::kTokens; ++t) {
    if (!counts[t]) {
      m->freq[t] = 0;
      continue;
    }
    auto f = static_cast<uint32_t>(
        std::llround(static_cast<double>(counts[t]) * total / static_cast<double>(n)));
    m->freq[t] = std::max<uint32_t>(1, f);
    sum += m->freq[t];
  }
  // Fix the rounding where it costs least: take from the token losing the fewest bits per unit
  // (count / freq smallest), give to the one gaining most (count / freq largest).
  while (sum != total) {
    int best = -1;
    double best_ratio = 0;
    for (uint32_t t = 0; t < cf::kTokens; ++t) {
      if (!counts[t] || (sum > total && m->freq[t] <= 1)) continue;
      double ratio = static_cast<double>(counts[t]) / m->freq[t];
      if (best < 0 || (sum > total ? ratio < best_ratio : ratio > best_ratio)) {
        best = static_cast<int>(t);
        best_ratio = ratio;
      }
    }
    if (sum > total) {
      --m->freq[best];
      --sum;
    } else {
      ++m->freq[best];
      ++sum;
    }
  }
  uint32_t acc = 0;
  for (uint32_t t = 0; t < cf::kTokens; ++t) {
    m->start[t] = acc;
    acc += m->freq[t];
  }
}

}  // namespace

// Table: ntok - 1 (u8); one token: its value; else P (u8) then per token (ascending) the gap from
// the previous token and freq - 1, as varints. Then the stream: varint length, bytes.
void rans_encode(const uint8_t* tokens, size_t n, const uint32_t* counts, std::string* out) {
  Model m;
  normalise(counts, n, &m);
  put_u8(out, static_cast<uint8_t>(m.ntok - 1));
  if (m.ntok == 1) {
    put_u8(out, tokens[0]);
    return;
  }
  put_u8(out, static_cast<uint8_t>(m.prob_bits));
  int prev = -1;
  for (uint32_t t = 0; t < cf::kTokens; ++t) {
    if (!m.freq[t]) continue;
    put_varint(out, static_cast<uint64_t>(static_cast<int>(t) - prev - 1));
    put_varint(out, m.freq[t] - 1);
    prev = static_cast<int>(t);
  }
  thread_local std::vector<uint8_t> buf;
  buf.resize(2 * n + 4 * cf::kRansStates + 8);
  uint8_t* const end = buf.data() + buf.size();
  uint8_t* ptr = end;
  uint32_t x[cf::kRansStates];
  std::fill(x, x + cf::kRansStates, cf::kRansLow);
  const int P = m.prob_bits;
  // Encode backwards so the decoder reads forwards; symbol i uses state i % kRansStates.
  for (size_t i = n; i-- > 0;) {
    const uint32_t s = tokens[i];
    const uint32_t f = m.freq[s];
    uint32_t& st = x[i % cf::kRansStates];
    const uint32_t xmax = ((cf::kRansLow >> P) << 8) * f;
    while (st >= xmax) {
      *--ptr = static_cast<uint8_t>(st & 0xff);
      st >>= 8;
    }
    st = ((st / f) << P) + (st % f) + m.start[s];
  }
  for (int k = cf::kRansStates; k-- > 0;) {  // state 0 first in the stream
    ptr -= 4;
    put_le32(ptr, x[k]);
  }
  const auto len = static_cast<size_t>(end - ptr);
  put_varint(out, len);
  out->append(reinterpret_cast<const char*>(ptr), len);
}

// Reads the table written by rans_encode; false when malformed.
bool read_table(Reader& in, DecTable* t) {
  t->ntok = in.u8() + 1u;
  if (!in.ok) return false;
  if (t->ntok == 1) {
    t->single = in.u8();
    return in.ok;
  }
  const int P = in.u8();
  if (P < cf::kRansMinProbBits || P > cf::kRansMaxProbBits) return false;
  t->prob_bits = P;
  const uint32_t total = 1u << P;
  uint32_t acc = 0;
  int prev = -1;
  for (uint32_t k = 0; k < t->ntok; ++k) {
    const uint64_t gap = in.varint();
    const uint64_t f = in.varint() + 1;
    if (!in.ok || gap >= cf::kTokens || prev + 1 + gap >= cf::kTokens || f > total - acc)
      return false;
    const auto tok = static_cast<uint32_t>(prev + 1 + static_cast<int>(gap));
    t->freq[tok] = static_cast<uint16_t>(f);
    t->start[tok] = static_cast<uint16_t>(acc);
    std::memset(t->sym + acc, static_cast<int>(tok), f);
    acc += static_cast<uint32_t>(f);
    prev = static_cast<int>(tok);
  }
  return acc == total;
}

// Decodes n tokens from the stream [p, end). The states live in registers (nothing takes their
// address), so the byte stores cannot force them to memory. False when the stream is malformed:
// a well-formed one ends exactly where every state is back at its initial value.
bool rans_run(const DecTable& t, const uint8_t* p, const uint8_t* const end, size_t n,
              uint8_t* __restrict tokens) {
  static_assert(cf::kRansStates == 4);
  if (end - p < 16) return false;
  uint32_t x0 = get_le32(p), x1 = get_le32(p + 4), x2 = get_le32(p + 8), x3 = get_le32(p + 12);
  p += 16;
  const int P = t.prob_bits;
  const uint32_t mask = (1u << P) - 1;
  const uint8_t* __restrict sym = t.sym;
  const uint16_t* __restrict freq = t.freq;
  const uint16_t* __restrict start = t.start;
  auto renorm = [&p, end](uint32_t x) {
    while (x < cf::kRansLow && p != end) x = (x << 8) | *p++;
    return x;
  };
  size_t i = 0;
  for (; i + 3 < n; i += 4) {
    const uint32_t s0 = sym[x0 & mask], s1 = sym[x1 & mask], s2 = sym[x2 & mask],
                   s3 = sym[x3 & mask];
    x0 = freq[s0] * (x0 >> P) + (x0 & mask) - start[s0];
    x1 = freq[s1] * (x1 >> P) + (x1 & mask) - start[s1];
    x2 = freq[s2] * (x2 >> P) + (x2 & mask) - start[s2];
    x3 = freq[s3] * (x3 >> P) + (x3 & mask) - start[s3];
    x0 = renorm(x0);  // in state order: the order the encoder wrote them, reversed
    x1 = renorm(x1);
    x2 = renorm(x2);
    x3 = renorm(x3);
    tokens[i] = static_cast<uint8_t>(s0);
    tokens[i + 1] = static_cast<uint8_t>(s1);
    tokens[i + 2] = static_cast<uint8_t>(s2);
    tokens[i + 3] = static_cast<uint8_t>(s3);
  }
  uint32_t* const xs[4] = {&x0, &x1, &x2, &x3};  // the tail, at most three values
  for (size_t k = 0; i < n; ++i, ++k) {
    uint32_t x = *xs[k];
    const uint32_t s0 = sym[x & mask];
    x = renorm(freq[s0] * (x >> P) + (x & mask) - start[s0]);
    *xs[k] = x;
    tokens[i] = static_cast<uint8_t>(s0);
  }
  return x0 == cf::kRansLow && x1 == cf::kRansLow && x2 == cf::kRansLow && x3 == cf::kRansLow &&
         p == end;
}

}  // namespace tally::collector::codec
