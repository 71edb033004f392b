#include "auth/security_config.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "auth/cidr.h"
#include "auth/security_toml.h"
#include "tally/common/curve_keys.h"

namespace tally::collector {

namespace {

constexpr const char* kStringKeys[] = {"curve_secret_key_file", "curve_allowed_keys_dir",
                                       "http_tls_cert_file", "http_tls_key_file"};
constexpr const char* kListKeys[] = {"curve_allowed_keys",   "http_read_tokens",
                                     "http_admin_tokens",    "http_allowed_hosts",
                                     "http_allowed_origins", "statsd_allowed_sources"};
constexpr const char* kBoolKeys[] = {"ingest_allow_insecure", "live_allow_insecure",
                                     "http_allow_insecure", "statsd_allow_insecure"};

std::string* string_field(SecurityConfig& s, std::string_view key) {
  if (key == "curve_secret_key_file") return &s.curve_secret_key_file;
  if (key == "curve_allowed_keys_dir") return &s.curve_allowed_keys_dir;
  if (key == "http_tls_cert_file") return &s.http_tls_cert_file;
  if (key == "http_tls_key_file") return &s.http_tls_key_file;
  return nullptr;
}
std::vector<std::string>* list_field(SecurityConfig& s, std::string_view key) {
  if (key == "curve_allowed_keys") return &s.curve_allowed_keys;
  if (key == "http_read_tokens") return &s.http_read_tokens;
  if (key == "http_admin_tokens") return &s.http_admin_tokens;
  if (key == "http_allowed_hosts") return &s.http_allowed_hosts;
  if (key == "http_allowed_origins") return &s.http_allowed_origins;
  if (key == "statsd_allowed_sources") return &s.statsd_allowed_sources;
  return nullptr;
}
bool* bool_field(SecurityConfig& s, std::string_view key) {
  if (key == "ingest_allow_insecure") return &s.ingest_allow_insecure;
  if (key == "live_allow_insecure") return &s.live_allow_insecure;
  if (key == "http_allow_insecure") return &s.http_allow_insecure;
  if (key == "statsd_allow_insecure") return &s.statsd_allow_insecure;
  return nullptr;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// One non-loopback listener: what authenticates it, whether allow_insecure lets it through.
struct Exposure {
  const char* listener;
  std::string address;
  bool exposed;        // bound beyond loopback
  bool authenticated;  // CURVE, tokens, or (StatsD) a source allowlist
  bool allow_insecure;
  const char* fix;
};

std::vector<Exposure> exposures(const SecurityConfig& s, const ListenerAddresses& a) {
  std::vector<Exposure> out;
  out.push_back({"ingest", a.ingest, !is_local_zmq_endpoint(a.ingest), s.curve(),
                 s.ingest_allow_insecure,
                 "set curve_secret_key_file and curve_allowed_keys (tally keygen), or "
                 "ingest_allow_insecure = true"});
  if (a.live != "off")
    out.push_back({"live", a.live, !is_local_zmq_endpoint(a.live), s.curve(), s.live_allow_insecure,
                   "set curve_secret_key_file and curve_allowed_keys (tally keygen), or "
                   "live_allow_insecure = true"});
  out.push_back({"http", a.http, !is_loopback_host(host_of(a.http)), s.http_tokens(),
                 s.http_allow_insecure,
                 "set http_read_tokens / http_admin_tokens (and TLS), or "
                 "http_allow_insecure = true"});
  if (a.statsd != "off")
    out.push_back({"statsd", a.statsd, !is_loopback_host(host_of(a.statsd)),
                   !s.statsd_allowed_sources.empty(), s.statsd_allow_insecure,
                   "StatsD cannot authenticate: set statsd_allowed_sources (CIDR list), or "
                   "statsd_allow_insecure = true"});
  return out;
}

}  // namespace

bool is_loopback_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string h = lower(host);
  if (h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" || h == "lo") return true;
  auto net = parse_cidr(h);
  return net && net->is_v4 && (net->addr[12] == 127);
}

std::string host_of(std::string_view hp) {
  if (!hp.empty() && hp.front() == '[') {
    const size_t close = hp.find(']');
    return std::string(close == std::string_view::npos ? hp : hp.substr(0, close + 1));
  }
  const size_t colon = hp.rfind(':');
  return std::string(colon == std::string_view::npos ? hp : hp.substr(0, colon));
}

bool is_local_zmq_endpoint(std::string_view e) {
  if (e.starts_with("ipc://") || e.starts_with("inproc://")) return true;
  if (!e.starts_with("tcp://")) return false;  // pgm, ws...: reachable from the network
  std::string_view rest = e.substr(6);
  // tcp://source;host:port names a source address to connect from: only for connect.
  if (rest.find(';') != std::string_view::npos) rest = rest.substr(rest.find(';') + 1);
  return is_loopback_host(host_of(rest));
}

Status validate_security(const SecurityConfig& s, const ListenerAddresses& a) {
  if (s.http_tls_cert_file.empty() != s.http_tls_key_file.empty())
    return Status::invalid_argument(
        "http_tls_cert_file and http_tls_key_file go together: set both for HTTPS, or neither");
  if (!s.curve() && (!s.curve_allowed_keys.empty() || !s.curve_allowed_keys_dir.empty()))
    return Status::invalid_argument(
        "curve_allowed_keys / curve_allowed_keys_dir need curve_secret_key_file (the collector's "
        "own key pair, from tally keygen)");
  for (const auto& k : s.curve_allowed_keys)
    if (!is_z85_key(k))
      return Status::invalid_argument("curve_allowed_keys: '" + k +
                                      "' is not a 40-character Z85 public key");
  for (const auto* list : {&s.http_read_tokens, &s.http_admin_tokens})
    for (const auto& t : *list)
      if (t.size() < 16)
        return Status::invalid_argument(
            "HTTP tokens must be at least 16 characters (tally keygen --token makes one)");
  for (const auto& c : s.statsd_allowed_sources)
    if (auto n = parse_cidr(c); !n)
      return Status::invalid_argument("statsd_allowed_sources: " + n.status().message());
  for (const auto& e : exposures(s, a)) {
    if (e.exposed && !e.authenticated && !e.allow_insecure)
      return Status::invalid_argument(std::string(e.listener) + " listens on " + e.address +
                                      ", beyond loopback, without authentication: " + e.fix +
                                      " (docs/SECURITY.md)");
  }
  return Status::ok();
}

void warn_insecure_listeners(const SecurityConfig& s, const ListenerAddresses& a) {
  for (const auto& e : exposures(s, a))
    if (e.exposed && !e.authenticated)
      spdlog::warn(
          "event=insecure_listener listener={} address={} note=\"reachable beyond loopback "
          "without authentication ({}_allow_insecure = true)\"",
          e.listener, e.address, e.listener);
}

bool is_security_key(std::string_view key) {
  SecurityConfig probe;
  return string_field(probe, key) || list_field(probe, key) || bool_field(probe, key);
}

Status load_security(const toml::table& t, const std::string& path, SecurityConfig& s) {
  for (const char* key : kStringKeys) {
    if (auto n = t[key]; n) {
      auto v = n.value<std::string>();
      if (!v) return Status::invalid_argument(path + ": '" + key + "' must be a string");
      *string_field(s, key) = *v;
    }
  }
  for (const char* key : kListKeys) {
    if (auto n = t[key]; n) {
      const toml::array* arr = n.as_array();
      if (!arr) return Status::invalid_argument(path + ": '" + key + "' must be a list of strings");
      auto& out = *list_field(s, key);
      out.clear();
      for (const auto& item : *arr) {
        auto v = item.value<std::string>();
        if (!v) return Status::invalid_argument(path + ": '" + key + "' must hold strings only");
        out.push_back(*v);
      }
    }
  }
  for (const char* key : kBoolKeys) {
    if (auto n = t[key]; n) {
      auto v = n.value<bool>();
      if (!v) return Status::invalid_argument(path + ": '" + key + "' must be true or false");
      *bool_field(s, key) = *v;
    }
  }
  return Status::ok();
}

std::string toml_quoted(std::string_view v) {
  std::string out = "\"";
  for (char ch : v) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + '"';
}

std::string security_to_toml(const SecurityConfig& s) {
  auto quoted = [](const std::string& v) { return toml_quoted(v); };
  auto list = [&](const std::vector<std::string>& v, bool secret) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i)
      out += (i ? ", " : "") + (secret ? std::string("\"(set)\"") : quoted(v[i]));
    return out + "]";
  };
  std::ostringstream o;
  o << "curve_secret_key_file = " << quoted(s.curve_secret_key_file) << "\n"
    << "curve_allowed_keys = " << list(s.curve_allowed_keys, false) << "\n"
    << "curve_allowed_keys_dir = " << quoted(s.curve_allowed_keys_dir) << "\n"
    << "http_read_tokens = " << list(s.http_read_tokens, true) << "\n"
    << "http_admin_tokens = " << list(s.http_admin_tokens, true) << "\n"
    << "http_allowed_hosts = " << list(s.http_allowed_hosts, false) << "\n"
    << "http_allowed_origins = " << list(s.http_allowed_origins, false) << "\n"
    << "http_tls_cert_file = " << quoted(s.http_tls_cert_file) << "\n"
    << "http_tls_key_file = " << quoted(s.http_tls_key_file) << "\n"
    << "statsd_allowed_sources = " << list(s.statsd_allowed_sources, false) << "\n";
  for (const char* key : kBoolKeys) {
    SecurityConfig copy = s;
    o << key << " = " << (*bool_field(copy, key) ? "true" : "false") << "\n";
  }
  return o.str();
}

}  // namespace tally::collector
