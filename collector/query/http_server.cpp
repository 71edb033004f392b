#include "query/http_server.h"

#include <fcntl.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tally/common/mutex.h"
#include "thread_guard.h"

// The library's own serving of one accepted socket: Server::process_and_close_socket, private in
// cpp-httplib 0.11, which Debian builds as a shared library that exports it. Calling it (rather
// than a copy) keeps the plain and the TLS request handling exactly the library's; the symbols
// are checked when the collector links.
bool library_serve_plain(httplib::Server* self,
                         int sock) __asm__("_ZN7httplib6Server24process_and_close_socketEi");
bool library_serve_tls(httplib::SSLServer* self,
                       int sock) __asm__("_ZN7httplib9SSLServer24process_and_close_socketEi");

namespace tally::collector {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr int64_t kNoDeadline = INT64_MAX;
// Descriptors the rest of the collector may hold (shard files, the log, ZeroMQ, queries).
constexpr size_t kReservedFds = 256;
// Bytes of a request head looked at before it is handed to a worker (the library's own line
// limit is 8 KiB: a head that fills this is the library's to judge).
constexpr size_t kPeekBytes = 8192;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

// The connection one worker is serving, as the waiter thread's watchdog sees it.
struct Slot {
  int watch_fd = -1;  // a dup of the socket (guarded by the pool's mutex): shutting it down
                      // reaches the connection, and its number is not reused while set
  std::atomic<int64_t> deadline_ns{kNoDeadline};  // cut the connection after this
  std::atomic<int64_t> idle_since_ns{0};          // between keep-alive requests; 0 = not idle
  int64_t request_deadline_ns = 0;
  int64_t keep_alive_ns = 0;
};
thread_local Slot* t_slot = nullptr;

// Answers a connection that will not be served and closes it without waiting for anything.
void refuse(int fd, bool tls, int status, const char* reason, const char* message) {
  if (!tls) {
    const std::string body = std::string("{\"error\":\"") + message + "\"}";
    const std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                             "\r\nRetry-After: 1\r\nConnection: close\r\n"
                             "Content-Type: application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)::send(fd, head.data(), head.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    // What the client sent is read away (without waiting), so the close is a FIN, not a reset
    // that could discard the answer before the client reads it.
    char sink[4096];
    for (int i = 0; i < 16 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {}
  }
  ::close(fd);
}

class ConnectionPool final : public httplib::TaskQueue {
 public:
  ConnectionPool(const HttpServerOptions& o, size_t max_pending, bool tls, SelfMetrics& metrics,
                 std::function<void(int)> serve)
      : o_(o),
        max_pending_(max_pending),
        tls_(tls),
        metrics_(metrics),
        serve_(std::move(serve)),
        slots_(o.workers) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
    for (auto& s : slots_) {
      s.request_deadline_ns = int64_t{o.request_deadline_ms} * 1000000;
      s.keep_alive_ns = int64_t{o.keep_alive_s} * 1000000000;
    }
    waiter_ = std::thread([this] { guarded("http_waiter", metrics_, [this] { wait_loop(); }); });
    for (size_t i = 0; i < o.workers; ++i)
      workers_.emplace_back(
          [this, i] { guarded("http", metrics_, [this, i] { work_loop(slots_[i]); }); });
  }

  ~ConnectionPool() override {
    ::close(epoll_);
    ::close(wake_);
  }

  // The listening thread's task for a new connection runs at once: it calls adopt() through
  // LimitedServer::process_and_close_socket.
  void enqueue(std::function<void()> fn) override { fn(); }

  void shutdown() override {
    {
      MutexLock lock(mu_);
      stopping_ = true;
    }
    uint64_t one = 1;
    (void)::write(wake_, &one, sizeof one);
    ready_cv_.notify_all();
    for (auto& t : workers_) t.join();
    waiter_.join();
    MutexLock lock(mu_);  // nothing else runs now; the analysis sees the fields held
    for (const auto& [seq, w] : waiting_) ::close(w.fd);
    for (const auto& r : ready_) ::close(r.fd);
    waiting_.clear();
    ready_.clear();
  }

  // A newly accepted socket (the listening thread).
  void adopt(int fd) {
    if (fd >= FD_SETSIZE) {
      // The library watches sockets with select(): it cannot serve this descriptor.
      shed(fd, "the collector holds too many descriptors");
      return;
    }
    int victim = -1;
    {
      MutexLock lock(mu_);
      if (waiting_.size() + ready_.size() >= max_pending_) {
        if (!waiting_.empty()) {  // the oldest still waiting for its request, else the oldest ready
          victim = waiting_.begin()->second.fd;
          forget_waiting(victim);
        } else {
          victim = ready_.front().fd;
          ready_.pop_front();
        }
      }
      const uint64_t seq = next_seq_++;
      waiting_[seq] = {fd, now_ns()};
      seq_of_[fd] = seq;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
      ev.data.fd = fd;
      ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
    }
    if (victim >= 0) shed(victim, "too many connections");
  }

 private:
  struct Waiting {
    int fd;
    int64_t accepted_ns;
  };

  void shed(int fd, const char* why) {
    metrics_.hit(Limit::kHttpConnections);
    refuse(fd, tls_, 503, "Service Unavailable", "too many connections; retry after a second");
    const int64_t now_s = now_ns() / 1000000000;
    if (now_s != last_log_s_) {
      last_log_s_ = now_s;  // the listening thread only
      spdlog::warn("event=http_connection_shed reason=\"{}\" max_connections={} suppressed={}", why,
                   max_pending_, suppressed_);
      suppressed_ = 0;
    } else {
      ++suppressed_;
    }
  }

  enum class Head { kWaiting, kPartial, kComplete, kGone };
  // What a waiting connection has sent so far. Peeks, reads nothing.
  Head head(int fd) const {
    char buf[kPeekBytes];
    const ssize_t n = ::recv(fd, buf, tls_ ? 1 : sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? Head::kWaiting
                                                                       : Head::kGone;
    if (n == 0) return Head::kGone;  // closed before asking anything
    // A TLS handshake and its head are the library's to read; a head filling the buffer is the
    // library's to judge (its line limit is 8 KiB).
    if (tls_ || static_cast<size_t>(n) == sizeof buf) return Head::kComplete;
    return std::string_view(buf, static_cast<size_t>(n)).find("\r\n\r\n") == std::string_view::npos
               ? Head::kPartial
               : Head::kComplete;
  }

  void forget_waiting(int fd) REQUIRES(mu_) {
    auto it = seq_of_.find(fd);
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    waiting_.erase(it->second);
    seq_of_.erase(it);
  }

  void wait_loop() {
    std::vector<epoll_event> events(256);
    std::vector<int> gone, late;
    for (;;) {
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 50);
      const int64_t now = now_ns();
      gone.clear();
      late.clear();
      {
        MutexLock lock(mu_);
        if (stopping_) return;
        bool woke = false;
        for (int k = 0; k < n; ++k) {
          const int fd = events[k].data.fd;
          if (fd == wake_ || !seq_of_.contains(fd)) continue;
          const Head h = head(fd);
          if (h == Head::kWaiting || h == Head::kPartial) continue;
          const Waiting w = waiting_[seq_of_[fd]];
          forget_waiting(fd);
          if (h == Head::kGone) {
            gone.push_back(fd);
          } else {
            ready_.push_back(w);
            woke = true;
          }
        }
        if (woke) ready_cv_.notify_all();
        // Oldest first: accepted earlier, deadline earlier. One that sent part of a request is
        // told why it is closed; one that sent nothing is closed as an idle connection.
        const int64_t deadline = int64_t{o_.request_deadline_ms} * 1000000;
        while (!waiting_.empty() && now - waiting_.begin()->second.accepted_ns > deadline) {
          const int fd = waiting_.begin()->second.fd;
          (head(fd) == Head::kPartial ? late : gone).push_back(fd);
          forget_waiting(fd);
        }
        // The workers' connections: past their deadline, or idle between requests while ready
        // connections wait for a worker.
        for (auto& s : slots_) {
          if (s.watch_fd < 0) continue;
          const int64_t idle = s.idle_since_ns.load(std::memory_order_relaxed);
          const bool cut = now > s.deadline_ns.load(std::memory_order_relaxed) ||
                           (idle != 0 && !ready_.empty() && now - idle > 50'000'000);
          if (!cut) continue;
          ::shutdown(s.watch_fd, SHUT_RDWR);
          s.deadline_ns.store(kNoDeadline, std::memory_order_relaxed);
          s.idle_since_ns.store(0, std::memory_order_relaxed);
        }
      }
      for (int fd : gone) ::close(fd);
      for (int fd : late)
        refuse(fd, tls_, 408, "Request Timeout", "the request head did not arrive in time");
    }
  }

  void work_loop(Slot& slot) {
    t_slot = &slot;
    for (;;) {
      Waiting c{};
      {
        MutexLock lock(mu_);
        while (!stopping_ && ready_.empty()) lock.wait(ready_cv_);
        if (stopping_) return;
        c = ready_.front();
        ready_.pop_front();
        slot.watch_fd = ::fcntl(c.fd, F_DUPFD_CLOEXEC, 0);
        slot.idle_since_ns.store(0, std::memory_order_relaxed);
        // From now: a ready connection may have waited for a worker; a TLS one still has its
        // handshake and head to send.
        slot.deadline_ns.store(now_ns() + slot.request_deadline_ns, std::memory_order_relaxed);
      }
      serve_(c.fd);  // reads, answers, keeps alive, closes c.fd
      MutexLock lock(mu_);
      if (slot.watch_fd >= 0) ::close(slot.watch_fd);
      slot.watch_fd = -1;
    }
  }

  const HttpServerOptions o_;
  const size_t max_pending_;
  const bool tls_;
  SelfMetrics& metrics_;
  const std::function<void(int)> serve_;
  int epoll_ = -1;
  int wake_ = -1;
  int64_t last_log_s_ = 0;   // the listening thread's
  uint64_t suppressed_ = 0;  // the listening thread's
  Mutex mu_;
  std::condition_variable ready_cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  uint64_t next_seq_ GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Waiting> waiting_ GUARDED_BY(mu_);       // by accept order
  std::unordered_map<int, uint64_t> seq_of_ GUARDED_BY(mu_);  // fd -> its key in waiting_
  std::deque<Waiting> ready_ GUARDED_BY(mu_);                 // whole requests, oldest first
  std::vector<Slot> slots_;  // one per worker; watch_fd guarded by mu_
  std::thread waiter_;
  std::vector<std::thread> workers_;
};

template <class Base>
class LimitedServer final : public Base {
 public:
  using Base::Base;
  ConnectionPool* pool = nullptr;  // the listening thread's (new_task_queue runs there)
  // The library listens with a backlog of 5: a burst of connections beyond it has its SYNs
  // dropped and retried a second later. Connections are cheap to accept here, so take them all.
  void widen_backlog() { ::listen(this->svr_sock_, SOMAXCONN); }

 private:
  // The library calls this for each accepted socket, from the listening thread's task.
  bool process_and_close_socket(socket_t sock) override {
    pool->adopt(sock);
    return true;
  }
};

// The pending bound, kept below what the process may open and what select() can watch.
size_t fd_budget(const HttpServerOptions& o) {
  size_t cap = FD_SETSIZE;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    const rlim_t want = o.max_pending + 2 * o.workers + kReservedFds;
    if (rl.rlim_cur < want && rl.rlim_cur != RLIM_INFINITY) {
      rlimit raised = rl;
      raised.rlim_cur = std::min<rlim_t>(want, rl.rlim_max);
      if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
    }
    if (rl.rlim_cur != RLIM_INFINITY) cap = std::min<size_t>(cap, rl.rlim_cur);
    spdlog::info(
        "event=http_connections workers={} max_connections={} nofile_soft={} "
        "nofile_hard={}",
        o.workers, o.max_pending, rl.rlim_cur, rl.rlim_max);
  }
  const size_t used = 2 * o.workers + kReservedFds;
  const size_t fits = cap > used + 16 ? cap - used : 16;
  if (o.max_pending > fits)
    spdlog::warn(
        "event=http_connections_lowered max_connections={} to={} reason=\"descriptors: "
        "{} open files at most, {} of them kept for the rest of the collector\"",
        o.max_pending, fits, cap, used);
  return std::min(o.max_pending, fits);
}

template <class S, class ServeFn>
void configure(S& s, const HttpServerOptions& o, SelfMetrics& metrics, bool tls, ServeFn serve) {
  const size_t max_pending = fd_budget(o);
  s.new_task_queue = [&s, o, max_pending, tls, &metrics, serve] {
    s.widen_backlog();  // bound by now; called on the listening thread before it accepts
    s.pool =
        new ConnectionPool(o, max_pending, tls, metrics, [&s, serve](int fd) { serve(&s, fd); });
    if (o.on_listening) o.on_listening();
    return s.pool;
  };
  s.set_read_timeout(o.request_deadline_ms / 1000, (o.request_deadline_ms % 1000) * 1000);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_timeout(o.keep_alive_s);
  s.set_keep_alive_max_count(1000);
  // After each answer: the connection is idle until its next request.
  s.set_logger([](const httplib::Request&, const httplib::Response&) {
    if (!t_slot) return;
    const int64_t now = now_ns();
    t_slot->idle_since_ns.store(now, std::memory_order_relaxed);
    t_slot->deadline_ns.store(now + t_slot->keep_alive_ns + t_slot->request_deadline_ns,
                              std::memory_order_relaxed);
  });
}

}  // namespace

Result<std::unique_ptr<httplib::Server>> make_http_server(const HttpServerOptions& o,
                                                          SelfMetrics& metrics) {
  if (!o.tls_cert_file.empty()) {
    auto s = std::make_unique<LimitedServer<httplib::SSLServer>>(o.tls_cert_file.c_str(),
                                                                 o.tls_key_file.c_str());
    if (!s->is_valid())
      return Status::invalid_argument("cannot start HTTPS: " + o.tls_cert_file + " / " +
                                      o.tls_key_file +
                                      " is not a readable PEM certificate and key pair");
    configure(*s, o, metrics, true,
              [](httplib::SSLServer* p, int fd) { library_serve_tls(p, fd); });
    return std::unique_ptr<httplib::Server>(std::move(s));
  }
  auto s = std::make_unique<LimitedServer<httplib::Server>>();
  configure(*s, o, metrics, false, [](httplib::Server* p, int fd) { library_serve_plain(p, fd); });
  return std::unique_ptr<httplib::Server>(std::move(s));
}

void http_request_head_read(const httplib::Request& req) {
  if (!t_slot) return;
  t_slot->idle_since_ns.store(0, std::memory_order_relaxed);
  const bool body =
      req.get_header_value<uint64_t>("Content-Length") > 0 || req.has_header("Transfer-Encoding");
  t_slot->deadline_ns.store(body ? now_ns() + t_slot->request_deadline_ns : kNoDeadline,
                            std::memory_order_relaxed);
}

void http_request_body_read() {
  if (t_slot) t_slot->deadline_ns.store(kNoDeadline, std::memory_order_relaxed);
}

}  // namespace tally::collector
