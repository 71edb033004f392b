// CurveZMQ keys (docs/SECURITY.md): key pairs as Z85 text (40 characters per 32-byte key), the
// key files `tally keygen` writes, and the client side shared by the SDK, the CLI and the
// dashboard: which keys a client uses (options first, then TALLY_CURVE_* environment variables)
// and how they are set on a ZeroMQ socket. Thread-safety: free functions, no shared state.
//
// A key file is text, one `name = "value"` per line, '#' starts a comment:
//
//   public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//   secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"   (only in the .key_secret file)
#pragma once

#include <string>
#include <string_view>

#include "tally/common/status.h"

namespace tally {

struct CurveKeyPair {
  std::string public_key;  // Z85
  std::string secret_key;  // Z85; empty when read from a public key file
};

// True for 40 characters of the Z85 alphabet that decode to 32 bytes.
bool is_z85_key(std::string_view key);
[[nodiscard]] Result<CurveKeyPair> generate_curve_key_pair();
// Reads public-key (required) and secret-key (optional) from a key file.
[[nodiscard]] Result<CurveKeyPair> read_curve_key_file(const std::string& path);
// Writes `<base>.key` (public key, mode 0644) and `<base>.key_secret` (both, mode 0600); refuses
// to overwrite an existing file.
[[nodiscard]] Status write_curve_key_files(const std::string& base, const CurveKeyPair& pair);

// What a client (SDK, CLI, dashboard) needs to connect with CURVE: the collector's public key and
// its own key pair. All empty = plain (no encryption, no authentication).
struct CurveClientKeys {
  std::string server_public_key;
  std::string public_key;
  std::string secret_key;
  bool enabled() const { return !server_public_key.empty(); }
};

// Fills the empty fields from the environment:
//   TALLY_CURVE_SERVER_KEY  the collector's public key (Z85), or
//   TALLY_CURVE_SERVER_KEY_FILE  a key file holding it
//   TALLY_CURVE_KEY_FILE    the client's secret key file (public + secret), or
//   TALLY_CURVE_PUBLIC_KEY / TALLY_CURVE_SECRET_KEY  the client's keys as Z85
// Then checks the result: either nothing, or all three keys, each a valid Z85 key.
[[nodiscard]] Result<CurveClientKeys> resolve_curve_client_keys(CurveClientKeys given);
// Sets the CURVE client options on a libzmq socket (before connect); nothing when !k.enabled().
[[nodiscard]] Status apply_curve_client(void* zmq_socket, const CurveClientKeys& k);

}  // namespace tally
