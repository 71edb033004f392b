// The HTTP server's connections: who gets one of the workers, when, and for how long.
//
// cpp-httplib 0.11 gives every accepted connection to a worker at once, in arrival order, and a
// worker reads with a per-read timeout only: a thousand idle sockets queue in front of /healthz,
// and a client sending one header byte a second holds a worker for as long as it likes. Here
// (make_http_server):
//  - The accepting thread hands each socket to a waiter thread (epoll); a connection costs no
//    worker until its request line and headers have fully arrived (peeked, not read; a TLS
//    connection as soon as it sends its first bytes). One that has not sent them within
//    `request_deadline_ms` of being accepted is answered 408 and closed.
//  - Ready connections are served in order (FIFO): each holds a whole request, so it needs a
//    worker for milliseconds, and the slow and the idle never reach the queue.
//  - At most `max_pending` connections wait (for bytes or for a worker). One more sheds the
//    oldest waiting one: `503 Service Unavailable`, `Retry-After: 1` (a TLS one is closed),
//    counted as tally_limit_hits_total{limit="http_connections"}. The accepting thread never
//    blocks, and the descriptors held stay below max_pending + 2 x workers.
//  - A worker's connection must deliver its next request head (and a body its whole body) within
//    the deadline, or the socket is shut down under it; a keep-alive connection waiting idle for
//    its next request gives its worker up at once when ready connections are waiting for one.
// Thread-safety: build with make_http_server before listening; the server's own threads do the
// rest.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "self_metrics.h"
#include "tally/common/status.h"

namespace httplib {
class Server;
struct Request;
}  // namespace httplib

namespace tally::collector {

struct HttpServerOptions {
  size_t workers = 32;       // connections served at once
  size_t max_pending = 512;  // connections waiting for bytes or for a worker (http_max_connections)
  int request_deadline_ms = 2000;  // a request head, or a body, must arrive within this
  int keep_alive_s = 2;            // an idle keep-alive connection is closed after this
  std::string tls_cert_file;       // both set: HTTPS
  std::string tls_key_file;
  // Called on the listening thread once its loop has begun (backlog widened), before it accepts.
  // Until then the library's stop() does nothing and would close the socket under the backlog's
  // listen(): HttpApi::start() waits for this before it returns.
  std::function<void()> on_listening;
};

// A plain or TLS httplib server whose connections are handled as above. Fails when the TLS
// files do not make a certificate and key pair.
Result<std::unique_ptr<httplib::Server>> make_http_server(const HttpServerOptions& o,
                                                          SelfMetrics& metrics);

// Call from a pre-routing handler: the request head has been read; a request with a body has
// `request_deadline_ms` more for it, one without has no deadline while it is handled.
void http_request_head_read(const httplib::Request& req);
// Call at the start of a handler of requests with a body: the body has been read.
void http_request_body_read();

}  // namespace tally::collector
