// SecurityConfig: who may reach which listener (docs/SECURITY.md). CurveZMQ keys for ingest and
// the live stream, bearer tokens, the Host and Origin allowlists and TLS for HTTP, a source
// allowlist for StatsD, and per-listener allow_insecure. A listener on a non-loopback address
// without authentication is refused unless its own allow_insecure is set (never one switch for
// all: StatsD cannot authenticate, ZeroMQ and HTTP can).
// Thread-safety: a value type; free functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tally/common/status.h"

namespace tally::collector {

struct SecurityConfig {
  // CurveZMQ (ingest ROUTER and live PUB): the collector's key file (tally keygen's .key_secret);
  // empty = plain ZeroMQ. Clients are allowed by public key: listed here, or one per *.key file
  // in the directory. Both are read again on SIGHUP and POST /api/admin/reload.
  std::string curve_secret_key_file;
  std::vector<std::string> curve_allowed_keys;  // Z85 public keys
  std::string curve_allowed_keys_dir;
  // HTTP: with any token set, every request but /healthz needs "Authorization: Bearer <token>";
  // a read token reads, an admin token also changes state (/api/admin/*, non-read methods).
  std::vector<std::string> http_read_tokens;
  std::vector<std::string> http_admin_tokens;
  // Host header values accepted (without port; "*" = any). Empty = localhost, 127.0.0.1, ::1,
  // the listen address and this machine's host name: a DNS-rebinding page is refused.
  std::vector<std::string> http_allowed_hosts;
  // Origin header values accepted ("https://grafana.example:3000"). A request carrying any other
  // Origin (or a cross-site Sec-Fetch-Site) is refused: a browser page cannot read or post.
  std::vector<std::string> http_allowed_origins;
  std::string http_tls_cert_file;  // PEM; both set = HTTPS only
  std::string http_tls_key_file;
  // StatsD: source addresses accepted ("10.0.0.0/8", "192.168.1.7"); empty = any.
  std::vector<std::string> statsd_allowed_sources;
  // Per listener: accept a non-loopback address without authentication (warned at each start).
  bool ingest_allow_insecure = false;
  bool live_allow_insecure = false;
  bool http_allow_insecure = false;
  bool statsd_allow_insecure = false;
  // The TOML file the collector was started with (set by main, not read from the file): what a
  // reload reads the keys and tokens from.
  std::string config_file;

  bool curve() const { return !curve_secret_key_file.empty(); }
  bool http_tokens() const { return !http_read_tokens.empty() || !http_admin_tokens.empty(); }
  bool tls() const { return !http_tls_cert_file.empty(); }
};

// The addresses each listener binds, as the config spells them.
struct ListenerAddresses {
  std::string ingest;  // ZeroMQ endpoint
  std::string live;    // ZeroMQ endpoint or "off"
  std::string http;    // host:port
  std::string statsd;  // host:port or "off"
};

// True for 127.0.0.0/8, ::1 and "localhost" (brackets allowed).
bool is_loopback_host(std::string_view host);
// A ZeroMQ endpoint reachable only from this machine: tcp:// on a loopback host, ipc://, inproc://.
bool is_local_zmq_endpoint(std::string_view endpoint);
// The host of "host:port" / "[v6]:port".
std::string host_of(std::string_view host_port);

// Checks the settings and the listener rule above; the error names the listener and the fix.
[[nodiscard]] Status validate_security(const SecurityConfig& s, const ListenerAddresses& a);
// Logs event=insecure_listener for each non-loopback listener let through by allow_insecure.
void warn_insecure_listeners(const SecurityConfig& s, const ListenerAddresses& a);

// The TOML keys of SecurityConfig (config.cpp reads them with load_security, security_toml.h).
bool is_security_key(std::string_view key);
// The settings as TOML lines; tokens as "(set)", never their values.
std::string security_to_toml(const SecurityConfig& s);

// A TOML basic string: quotes, backslashes and control characters escaped, so what
// config_to_toml and security_to_toml print loads back (fuzz_config found "\r" in a data_dir, then
// in a TLS key path).
std::string toml_quoted(std::string_view v);

}  // namespace tally::collector
