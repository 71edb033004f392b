// HttpGuard: the checks every HTTP request passes before its handler (docs/SECURITY.md), in
// this order:
//   1. Host: the Host header (without port) must be an allowed host name, so a page that rebinds
//      its own DNS name to 127.0.0.1 is refused (403);
//   2. Origin: a request carrying an Origin not listed, or Sec-Fetch-Site cross-site / same-site,
//      comes from a browser page: refused (403), so a page can neither read nor post;
//   3. Token: with tokens configured, "Authorization: Bearer <token>" is required (401 without a
//      known token); a read token reads, a state change (/api/admin/*, or any method other than
//      GET, HEAD and the PromQL POST forms) needs an admin token (403 with a read token).
// /healthz needs no token (load balancers and systemd probe it) but passes 1 and 2.
// Thread-safety: check() from any thread; set_tokens() replaces the tokens under a lock.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tally/common/mutex.h"

namespace tally::collector {

struct HttpGuardOptions {
  std::vector<std::string> read_tokens;
  std::vector<std::string> admin_tokens;
  std::vector<std::string> allowed_hosts;    // empty = loopback names, listen host, host name
  std::vector<std::string> allowed_origins;  // exact Origin values
  std::string listen_host;                   // the host the API listens on
};

struct HttpRequestView {
  std::string_view method;
  std::string_view path;
  std::string_view host;           // Host header ("" when absent)
  std::string_view origin;         // Origin header
  std::string_view fetch_site;     // Sec-Fetch-Site header
  std::string_view authorization;  // Authorization header
};

struct GuardVerdict {
  int status = 0;     // 0 = let through; else 401 or 403
  std::string error;  // why, for the answer and the log
  const char* reason = "";
};

class HttpGuard {
 public:
  explicit HttpGuard(HttpGuardOptions opts);
  void set_tokens(std::vector<std::string> read, std::vector<std::string> admin);
  GuardVerdict check(const HttpRequestView& r) const;
  // True for requests that change state (they need the admin scope).
  static bool changes_state(std::string_view method, std::string_view path);

 private:
  bool host_allowed(std::string_view host) const;
  std::vector<std::string> hosts_;  // lower case; "*" = any
  std::vector<std::string> origins_;
  mutable Mutex mu_;
  std::vector<std::string> read_ GUARDED_BY(mu_);
  std::vector<std::string> admin_ GUARDED_BY(mu_);
};

}  // namespace tally::collector
