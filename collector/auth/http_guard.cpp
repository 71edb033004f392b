#include "auth/http_guard.h"

#include <unistd.h>

#include <algorithm>

namespace tally::collector {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Host header without its port: "example:7071" -> "example", "[::1]:7071" -> "[::1]".
std::string strip_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    return std::string(close == std::string_view::npos ? host : host.substr(0, close + 1));
  }
  const size_t colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos)
    return std::string(host.substr(0, colon));
  return std::string(host);
}

// Compares in time independent of where the first difference is (tokens are secrets).
bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool any_match(const std::vector<std::string>& tokens, std::string_view t) {
  bool found = false;
  for (const auto& k : tokens) found |= same_secret(k, t);
  return found;
}

}  // namespace

HttpGuard::HttpGuard(HttpGuardOptions opts) : origins_(std::move(opts.allowed_origins)) {
  if (opts.allowed_hosts.empty()) {
    hosts_ = {"localhost", "127.0.0.1", "[::1]", "::1"};
    const std::string listen = lower(opts.listen_host);
    if (!listen.empty() && listen != "0.0.0.0" && listen != "::" && listen != "[::]" &&
        listen != "*")
      hosts_.push_back(listen);
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0 && name[0]) hosts_.push_back(lower(name));
  } else {
    for (const auto& h : opts.allowed_hosts) hosts_.push_back(lower(h));
  }
  set_tokens(std::move(opts.read_tokens), std::move(opts.admin_tokens));
}

void HttpGuard::set_tokens(std::vector<std::string> read, std::vector<std::string> admin) {
  MutexLock lock(mu_);
  read_ = std::move(read);
  admin_ = std::move(admin);
}

bool HttpGuard::host_allowed(std::string_view host) const {
  if (host.empty()) return true;  // HTTP/1.0 without Host: no browser sends that
  const std::string h = lower(strip_port(host));
  for (const auto& a : hosts_)
    if (a == "*" || a == h) return true;
  return false;
}

bool HttpGuard::changes_state(std::string_view method, std::string_view path) {
  if (path.starts_with("/api/admin/")) return true;
  if (method == "GET" || method == "HEAD") return false;
  // PromQL endpoints take POST for long queries (Grafana does): still a read.
  return !(method == "POST" && path.starts_with("/api/v1/"));
}

GuardVerdict HttpGuard::check(const HttpRequestView& r) const {
  if (!host_allowed(r.host))
    return {403,
            "Host '" + std::string(r.host) +
                "' is not allowed (http_allowed_hosts); a page that rebinds its DNS name to this "
                "collector is refused",
            "host"};
  if (!r.origin.empty() && std::find(origins_.begin(), origins_.end(), r.origin) == origins_.end())
    return {403,
            "requests from browser pages (Origin '" + std::string(r.origin) +
                "') are refused; list the origin in http_allowed_origins to allow it",
            "origin"};
  if (r.fetch_site == "cross-site" || r.fetch_site == "same-site")
    return {403, "requests from browser pages of other sites are refused", "origin"};
  if (r.path == "/healthz" && !changes_state(r.method, r.path)) return {};
  MutexLock lock(mu_);
  if (read_.empty() && admin_.empty()) return {};
  constexpr std::string_view kBearer = "Bearer ";
  if (!r.authorization.starts_with(kBearer))
    return {401, "this collector needs a token: Authorization: Bearer <token>", "no_token"};
  const std::string_view token = r.authorization.substr(kBearer.size());
  const bool admin = any_match(admin_, token);
  if (!admin && !any_match(read_, token))
    return {401, "the token is not one this collector knows", "bad_token"};
  if (!admin && changes_state(r.method, r.path))
    return {403, "this request changes state: it needs an admin token (http_admin_tokens)",
            "scope"};
  return {};
}

}  // namespace tally::collector
