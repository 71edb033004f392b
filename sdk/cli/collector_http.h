// CollectorHttp: GET requests to a collector's HTTP/JSON API (docs/API.md) for the `tally`
// tool, with every failure mapped to an exit code (exit_codes.h) and a one-line message.
// Thread-safety: one object per thread.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tally/common/endpoints.h"
#include "tally/common/status.h"

namespace tally::cli {

// "http://host:port[/prefix]", "https://..." (a TLS proxy in front of the collector),
// "host:port" or "host" (port 7071 for http, 443 for https).
struct HttpTarget {
  std::string scheme = "http";
  std::string host;
  int port = tally::kDefaultHttpPort;
  std::string prefix;  // path prefix without a trailing '/', e.g. "/tally"; usually empty
  std::string url() const;
};
Result<HttpTarget> parse_collector_url(std::string_view url);

struct HttpReply {
  int exit_code = 0;    // kExitOk or the failure's code
  nlohmann::json body;  // the decoded answer when exit_code is kExitOk
  std::string error;    // what went wrong, for stderr
};

class CollectorHttp {
 public:
  CollectorHttp(HttpTarget target, std::chrono::milliseconds timeout);
  // Sends "Authorization: Bearer <token>" (when not empty) and verifies https:// against
  // ca_cert (a PEM file; empty = the system's certificates).
  void set_auth(std::string token, std::string ca_cert) {
    token_ = std::move(token);
    ca_cert_ = std::move(ca_cert);
  }
  ~CollectorHttp();

  // GET prefix + path with the (repeatable) query parameters, expecting a JSON object.
  HttpReply get(const std::string& path, const std::multimap<std::string, std::string>& params);
  // POST prefix + path with the parameters form-encoded (admin actions such as a backup).
  HttpReply post(const std::string& path, const std::multimap<std::string, std::string>& params);
  // POST prefix + path with a JSON body (POST /api/annotations).
  HttpReply post_json(const std::string& path, const nlohmann::json& body);

 private:
  HttpTarget target_;
  std::chrono::milliseconds timeout_;
  std::string token_;
  std::string ca_cert_;
};

}  // namespace tally::cli
