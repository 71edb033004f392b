// rANS over byte tokens with a static order-0 model: the entropy coder of the chunk codec's
// integral columns (docs/format/chunk.md, constants in chunk_format.h). kRansStates interleaved
// states; the encoder writes the table then the stream, the decoder reads them back and checks
// that the stream ends where every state is back at its initial value.
// Thread-safety: pure functions (the encoder's scratch buffer is thread-local).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "storage/bit_io.h"
#include "storage/chunk_format.h"

namespace tally::collector::codec {

// Table: ntok - 1 (u8); one token: its value; else P (u8) then per token (ascending) the gap from
// the previous token and freq - 1, as varints. Then the stream: varint length, bytes.
void rans_encode(const uint8_t* tokens, size_t n, const uint32_t* counts, std::string* out);

// A decoding table: slot -> token, and each token's frequency and start. (One packed 32-bit
// entry per slot saves two loads a value but costs more to build than it saves at 360 values.)
struct DecTable {
  int prob_bits = 0;
  uint32_t ntok = 0;
  uint8_t single = 0;  // the token when ntok == 1
  uint16_t freq[chunk_format::kTokens];
  uint16_t start[chunk_format::kTokens];
  uint8_t sym[1u << chunk_format::kRansMaxProbBits];
};

// Reads the table written by rans_encode; false when malformed.
bool read_table(Reader& in, DecTable* t);

// Decodes n tokens from the stream [p, end). The states live in registers (nothing takes their
// address), so the byte stores cannot force them to memory. False when the stream is malformed:
// a well-formed one ends exactly where every state is back at its initial value.
bool rans_run(const DecTable& t, const uint8_t* p, const uint8_t* const end, size_t n,
              uint8_t* __restrict tokens);

}  // namespace tally::collector::codec
