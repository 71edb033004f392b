#include "collector_http.h"

#include <httplib.h>

#include <charconv>

#include "exit_codes.h"

namespace tally::cli {
namespace {

std::string describe(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
      return "connection refused or host unreachable";
    case httplib::Error::ConnectionTimeout:
      return "connection timed out";
    case httplib::Error::Read:
      return "no complete answer (read failed or timed out)";
    case httplib::Error::Write:
      return "could not send the request";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed";
    case httplib::Error::SSLServerVerification:
      return "TLS certificate not trusted";
    default:
      return httplib::to_string(e);
  }
}

}  // namespace

std::string HttpTarget::url() const {
  const bool v6 = host.find(':') != std::string::npos;
  return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + prefix;
}

Result<HttpTarget> parse_collector_url(std::string_view url) {
  HttpTarget t;
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    t.scheme = "https";
    t.port = 443;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.find("://") != std::string_view::npos) {
    return Status::invalid_argument("collector URL must be http:// or https://: " +
                                    std::string(url));
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    t.prefix = std::string(rest.substr(slash));
    while (!t.prefix.empty() && t.prefix.back() == '/') t.prefix.pop_back();
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest;
  if (!rest.empty() && rest.front() == '[') {  // [v6]:port
    auto close = rest.find(']');
    if (close == std::string_view::npos)
      return Status::invalid_argument("bad collector URL: " + std::string(url));
    host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return Status::invalid_argument("bad collector URL: " + std::string(url));
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    rest = rest.substr(colon);
  } else {
    rest = {};
  }
  if (host.empty())
    return Status::invalid_argument("collector URL has no host: " + std::string(url));
  t.host = std::string(host);
  if (!rest.empty()) {
    std::string_view port = rest.substr(1);
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p <= 0 ||
        p > 65535)
      return Status::invalid_argument("collector URL has an invalid port: " + std::string(url));
    t.port = p;
  }
  return t;
}

CollectorHttp::CollectorHttp(HttpTarget target, std::chrono::milliseconds timeout)
    : target_(std::move(target)), timeout_(timeout) {}

CollectorHttp::~CollectorHttp() = default;

namespace {

HttpReply to_reply(const httplib::Result& res, const HttpTarget& target) {
  HttpReply reply;
  if (!res) {
    reply.exit_code = kExitUnreachable;
    reply.error = "cannot reach the collector at " + target.url() + ": " + describe(res.error());
    return reply;
  }
  nlohmann::json body = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  const bool is_object = body.is_object();
  if (res->status == 200 && is_object) {
    reply.body = std::move(body);
    return reply;
  }
  std::string what = is_object && body.contains("error") && body["error"].is_string()
                         ? body["error"].get<std::string>()
                         : (is_object && body.contains("reason") ? body["reason"].dump() : "");
  if (what.empty()) what = res->status == 200 ? "the answer is not a JSON object" : res->reason;
  reply.error = "collector answered " + std::to_string(res->status) + ": " + what;
  if (res->status == 404) {
    reply.exit_code = kExitNotFound;
  } else if (res->status == 503 || res->status == 502 || res->status == 504) {
    reply.exit_code = kExitUnreachable;
  } else {
    reply.exit_code = kExitRejected;
  }
  return reply;
}

httplib::Headers request_headers(const std::string& token) {
  httplib::Headers h{{"Accept", "application/json"}};
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  return h;
}

void set_timeouts(httplib::Client& client, std::chrono::milliseconds timeout) {
  const auto secs = static_cast<time_t>(timeout.count() / 1000);
  const auto usecs = static_cast<time_t>((timeout.count() % 1000) * 1000);
  client.set_connection_timeout(secs, usecs);
  client.set_read_timeout(secs, usecs);
  client.set_write_timeout(secs, usecs);
}

}  // namespace

HttpReply CollectorHttp::get(const std::string& path,
                             const std::multimap<std::string, std::string>& params) {
  httplib::Client client(target_.url().substr(0, target_.url().size() - target_.prefix.size()));
  set_timeouts(client, timeout_);
  if (!ca_cert_.empty()) client.set_ca_cert_path(ca_cert_.c_str());
  httplib::Params query(params.begin(), params.end());
  auto res = client.Get((target_.prefix + path).c_str(), query, request_headers(token_));
  return to_reply(res, target_);
}

HttpReply CollectorHttp::post(const std::string& path,
                              const std::multimap<std::string, std::string>& params) {
  httplib::Client client(target_.url().substr(0, target_.url().size() - target_.prefix.size()));
  set_timeouts(client, timeout_);
  if (!ca_cert_.empty()) client.set_ca_cert_path(ca_cert_.c_str());
  httplib::Params form(params.begin(), params.end());
  auto res = client.Post((target_.prefix + path).c_str(), request_headers(token_), form);
  return to_reply(res, target_);
}

HttpReply CollectorHttp::post_json(const std::string& path, const nlohmann::json& body) {
  httplib::Client client(target_.url().substr(0, target_.url().size() - target_.prefix.size()));
  set_timeouts(client, timeout_);
  if (!ca_cert_.empty()) client.set_ca_cert_path(ca_cert_.c_str());
  auto res = client.Post((target_.prefix + path).c_str(), request_headers(token_), body.dump(),
                         "application/json");
  return to_reply(res, target_);
}

}  // namespace tally::cli
