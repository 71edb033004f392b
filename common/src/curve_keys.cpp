#include "tally/common/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tally {

namespace {

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

Status write_file(const std::string& path, const std::string& text, mode_t mode) {
  // O_EXCL: an existing key is never replaced by accident (rotation writes a new name).
  FILE* f = nullptr;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  if (fd >= 0) f = ::fdopen(fd, "w");
  if (!f)
    return Status::io_error("cannot create " + path + ": " + std::strerror(errno) +
                            (errno == EEXIST ? " (choose another name)" : ""));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok)
    return Status::io_error("cannot write " + path + ": " + std::strerror(errno));
  ::chmod(path.c_str(), mode);  // not narrowed by the umask
  return Status::ok();
}

}  // namespace

bool is_z85_key(std::string_view key) {
  if (key.size() != 40) return false;
  uint8_t out[32];
  const std::string z(key);
  return zmq_z85_decode(out, z.c_str()) != nullptr;
}

Result<CurveKeyPair> generate_curve_key_pair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0)
    return Status::internal(std::string("cannot make a CURVE key pair: ") +
                            zmq_strerror(zmq_errno()) + " (libzmq built without CURVE?)");
  return CurveKeyPair{pub, sec};
}

Result<CurveKeyPair> read_curve_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::io_error("cannot read key file " + path);
  CurveKeyPair pair;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const size_t eq = t.find('=');
    const size_t q1 = t.find('"');
    const size_t q2 = t.rfind('"');
    if (eq == std::string::npos || q1 == std::string::npos || q2 <= q1 || q1 < eq)
      return Status::invalid_argument(path + ":" + std::to_string(n) +
                                      ": expected name = \"value\"");
    const std::string name = trim(std::string_view(t).substr(0, eq));
    const std::string value = t.substr(q1 + 1, q2 - q1 - 1);
    if (name != "public-key" && name != "secret-key") continue;  // room for metadata
    if (!is_z85_key(value))
      return Status::invalid_argument(path + ":" + std::to_string(n) + ": " + name +
                                      " is not a 40-character Z85 key");
    (name == "public-key" ? pair.public_key : pair.secret_key) = value;
  }
  if (pair.public_key.empty())
    return Status::invalid_argument(path + ": no public-key line (not a tally keygen file?)");
  if (!pair.secret_key.empty()) {
    char derived[41];
    if (zmq_curve_public(derived, pair.secret_key.c_str()) != 0 || pair.public_key != derived)
      return Status::invalid_argument(path + ": the public key does not belong to the secret key");
  }
  return pair;
}

Status write_curve_key_files(const std::string& base, const CurveKeyPair& pair) {
  const std::string header =
      "# Tally CurveZMQ key (tally keygen). docs/SECURITY.md says where each file goes.\n";
  if (auto s = write_file(base + ".key_secret",
                          header + "# SECRET: keep this file readable only by its owner.\n" +
                              "public-key = \"" + pair.public_key + "\"\nsecret-key = \"" +
                              pair.secret_key + "\"\n",
                          0600);
      !s)
    return s;
  return write_file(base + ".key", header + "public-key = \"" + pair.public_key + "\"\n", 0644);
}

Result<CurveClientKeys> resolve_curve_client_keys(CurveClientKeys k) {
  if (k.server_public_key.empty()) k.server_public_key = env("TALLY_CURVE_SERVER_KEY");
  if (k.server_public_key.empty()) {
    if (std::string f = env("TALLY_CURVE_SERVER_KEY_FILE"); !f.empty()) {
      auto pair = read_curve_key_file(f);
      if (!pair)
        return Status::invalid_argument("TALLY_CURVE_SERVER_KEY_FILE: " + pair.status().message());
      k.server_public_key = pair->public_key;
    }
  }
  if (k.public_key.empty() && k.secret_key.empty()) {
    if (std::string f = env("TALLY_CURVE_KEY_FILE"); !f.empty()) {
      auto pair = read_curve_key_file(f);
      if (!pair)
        return Status::invalid_argument("TALLY_CURVE_KEY_FILE: " + pair.status().message());
      if (pair->secret_key.empty())
        return Status::invalid_argument("TALLY_CURVE_KEY_FILE: " + f +
                                        " holds no secret-key (use the .key_secret file)");
      k.public_key = pair->public_key;
      k.secret_key = pair->secret_key;
    } else {
      k.public_key = env("TALLY_CURVE_PUBLIC_KEY");
      k.secret_key = env("TALLY_CURVE_SECRET_KEY");
    }
  }
  const bool any = !k.server_public_key.empty() || !k.public_key.empty() || !k.secret_key.empty();
  if (!any) return k;
  if (k.server_public_key.empty() || k.public_key.empty() || k.secret_key.empty())
    return Status::invalid_argument(
        "CURVE needs the collector's public key and this client's public and secret keys "
        "(ClientOptions or TALLY_CURVE_SERVER_KEY and TALLY_CURVE_KEY_FILE); some are missing");
  for (const auto* key : {&k.server_public_key, &k.public_key, &k.secret_key})
    if (!is_z85_key(*key))
      return Status::invalid_argument("a CURVE key is not a 40-character Z85 key");
  char derived[41];
  if (zmq_curve_public(derived, k.secret_key.c_str()) != 0 || k.public_key != derived)
    return Status::invalid_argument("the CURVE public key does not belong to the secret key");
  return k;
}

Status apply_curve_client(void* socket, const CurveClientKeys& k) {
  if (!k.enabled()) return Status::ok();
  if (zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, k.server_public_key.c_str(), 40) != 0 ||
      zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, k.public_key.c_str(), 40) != 0 ||
      zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, k.secret_key.c_str(), 40) != 0)
    return Status::internal(std::string("cannot set CURVE keys: ") + zmq_strerror(zmq_errno()));
  return Status::ok();
}

}  // namespace tally
