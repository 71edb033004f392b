#include "storage/wal.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "storage/wal_format.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

namespace fs = std::filesystem;
using namespace wal_format;

namespace {

int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void put32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void put64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t get32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
uint64_t get64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

uint32_t checksum(const char* type_lsn, std::string_view payload) {
  uLong c = crc32(0L, Z_NULL, 0);
  c = crc32(c, reinterpret_cast<const Bytef*>(type_lsn), 9);
  // zlib takes uInt lengths; payloads are bounded by kMaxPayloadBytes.
  c = crc32(c, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size()));
  return static_cast<uint32_t>(c);
}

std::string segment_name(uint64_t first_lsn) {
  char name[40];
  std::snprintf(name, sizeof name, "%020llu%s", static_cast<unsigned long long>(first_lsn),
                kSuffix);
  return name;
}

Status errno_status(const std::string& what) {
  int e = errno;
  std::string msg = what + ": " + std::strerror(e);
  return (e == ENOSPC || e == EFBIG || e == EDQUOT) ? Status::unavailable(msg)
                                                    : Status::io_error(msg);
}

}  // namespace

Result<std::pair<FsyncPolicy, int64_t>> parse_fsync_policy(std::string_view text) {
  if (text == "always") return std::make_pair(FsyncPolicy::kAlways, int64_t(0));
  if (text == "never") return std::make_pair(FsyncPolicy::kNever, int64_t(0));
  auto ms = parse_duration_ms(text);
  if (ms && *ms <= 60000) return std::make_pair(FsyncPolicy::kInterval, *ms);
  return Status::invalid_argument("fsync must be always, never or an interval like 100ms");
}

Wal::~Wal() {
  if (fd_ >= 0) {
    if (dirty_) ::fdatasync(fd_);
    ::close(fd_);
  }
}

Result<std::unique_ptr<Wal>> Wal::open(WalOptions opts) {
  std::error_code ec;
  fs::create_directories(opts.dir, ec);
  if (ec) return Status::io_error("cannot create log directory " + opts.dir + ": " + ec.message());
  std::unique_ptr<Wal> w(new Wal(std::move(opts)));
  for (const auto& e : fs::directory_iterator(w->opts_.dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 20 + std::strlen(kSuffix) || name.substr(20) != kSuffix) continue;
    Segment s{std::strtoull(name.c_str(), nullptr, 10), e.path().string(),
              static_cast<uint64_t>(e.file_size(ec))};
    w->segments_.push_back(s);
  }
  if (ec) return Status::io_error("cannot list " + w->opts_.dir + ": " + ec.message());
  std::sort(w->segments_.begin(), w->segments_.end(),
            [](const Segment& a, const Segment& b) { return a.first_lsn < b.first_lsn; });
  for (const auto& s : w->segments_) w->total_bytes_ += s.bytes;
  return w;
}

namespace {

// What is wrong with the record at pos, or "" when it is whole and valid.
std::string_view check_record(const std::string& buf, size_t pos) {
  if (buf.size() - pos < kHeaderBytes) return "torn header";
  const uint32_t len = get32(&buf[pos]);
  if (len > kMaxPayloadBytes || buf.size() - pos - kHeaderBytes < len) return "torn record";
  std::string_view payload(&buf[pos + kHeaderBytes], len);
  if (checksum(&buf[pos + 8], payload) != get32(&buf[pos + 4])) return "checksum mismatch";
  if (const auto type = static_cast<uint8_t>(buf[pos + 8]);
      type != kTypeBatch && type != kTypeStatsd)
    return "unknown record type";
  return {};
}

Status write_whole_file(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status("create " + path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = errno_status("write " + path);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = errno_status("fsync " + path);
    ::close(fd);
    return s;
  }
  ::close(fd);
  return Status::ok();
}

Status sync_dir(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errno_status("open " + dir);
  const int rc = ::fsync(dfd);
  ::close(dfd);
  return rc == 0 ? Status::ok() : errno_status("fsync " + dir);
}

}  // namespace

Status Wal::replay(const std::function<void(uint64_t, std::string_view)>& fn) {
  return replay_records([&](uint64_t lsn, uint8_t, std::string_view p) { fn(lsn, p); });
}

Status Wal::replay_records(const std::function<void(uint64_t, uint8_t, std::string_view)>& fn) {
  std::string buf;
  for (size_t si = 0; si < segments_.size(); ++si) {
    Segment& seg = segments_[si];
    int fd = ::open(seg.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("open " + seg.path);
    struct stat st {};
    ::fstat(fd, &st);
    buf.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < buf.size()) {
      ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    buf.resize(got);
    size_t pos = 0;
    std::string_view bad;
    uint64_t last_lsn = 0;
    while (pos < buf.size()) {
      bad = check_record(buf, pos);
      if (!bad.empty()) break;
      const uint32_t len = get32(&buf[pos]);
      const uint64_t lsn = get64(&buf[pos + 9]);
      fn(lsn, static_cast<uint8_t>(buf[pos + 8]), std::string_view(&buf[pos + kHeaderBytes], len));
      next_lsn_ = std::max(next_lsn_, lsn + 1);
      last_lsn = lsn;
      pos += kHeaderBytes + len;
    }
    if (bad.empty()) continue;
    // A torn tail is the end of the last segment cut short by a crash: the record was never
    // acknowledged (nor anything after it, which was appended later). Damage anywhere else is
    // corruption of acknowledged records: a segment is synced before the next one is created, and
    // a whole record whose checksum fails but is followed by a valid one was written and
    // overwritten, not torn.
    const bool last = si + 1 == segments_.size();
    bool followed_by_valid = false;
    if (last && (bad == "checksum mismatch" || bad == "unknown record type")) {
      const size_t next = pos + kHeaderBytes + get32(&buf[pos]);
      followed_by_valid = next < buf.size() && check_record(buf, next).empty();
    }
    if (last && !followed_by_valid) {
      spdlog::warn("event=wal_tail_cut segment={} offset={} reason=\"{}\" dropped_bytes={}",
                   seg.path, pos, bad, buf.size() - pos);
      if (::truncate(seg.path.c_str(), static_cast<off_t>(pos)) != 0)
        return errno_status("truncate " + seg.path);
      total_bytes_ -= seg.bytes - pos;
      seg.bytes = pos;
      break;
    }
    const std::string damaged = seg.path + ".damaged-" + std::to_string(pos);
    const uint64_t lost_to = last ? 0 : segments_[si + 1].first_lsn - 1;
    if (!opts_.salvage) {
      spdlog::error(
          "event=wal_corrupt segment={} offset={} reason=\"{}\" segment_index={} segments={}",
          seg.path, pos, bad, si + 1, segments_.size());
      return Status::corruption(
          "write-ahead log damaged: " + std::string(bad) + " in " + seg.path + " at byte offset " +
          std::to_string(pos) + " (segment " + std::to_string(si + 1) + " of " +
          std::to_string(segments_.size()) +
          "); what follows holds acknowledged batches, so nothing was deleted. To start with "
          "every record that can still be read, run tally-collector once with --salvage-wal and "
          "the same settings: the damaged rest of this segment is moved to " +
          damaged + " and the records after it are kept (docs/CORRECTNESS.md, \"Salvaging\")");
    }
    // Salvage: keep the unreadable bytes beside the log, cut the segment there, go on reading.
    if (auto s = write_whole_file(damaged, std::string_view(buf).substr(pos)); !s) return s;
    if (auto s = sync_dir(opts_.dir); !s) return s;
    if (::truncate(seg.path.c_str(), static_cast<off_t>(pos)) != 0)
      return errno_status("truncate " + seg.path);
    {
      int sfd = ::open(seg.path.c_str(), O_WRONLY | O_CLOEXEC);
      if (sfd < 0) return errno_status("open " + seg.path);
      const int rc = ::fsync(sfd);
      ::close(sfd);
      if (rc != 0) return errno_status("fsync " + seg.path);
    }
    spdlog::error(
        "event=wal_salvaged segment={} offset={} reason=\"{}\" moved_bytes={} moved_to={} "
        "last_good_lsn={} lost_lsns_up_to={}",
        seg.path, pos, bad, buf.size() - pos, damaged, last_lsn, lost_to);
    total_bytes_ -= seg.bytes - pos;
    seg.bytes = pos;
    ++salvaged_;
  }
  return Status::ok();
}

Status Wal::open_segment(uint64_t first_lsn) {
  if (fd_ >= 0) {
    if (dirty_ && ::fdatasync(fd_) != 0) return errno_status("fdatasync log");
    dirty_ = false;
    ::close(fd_);
    fd_ = -1;
  }
  Segment s{first_lsn, (fs::path(opts_.dir) / segment_name(first_lsn)).string(), 0};
  fd_ = ::open(s.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return errno_status("create " + s.path);
  struct stat st {};
  ::fstat(fd_, &st);
  s.bytes = static_cast<uint64_t>(st.st_size);
  // The directory entry must be durable too, or the segment can vanish in a power loss.
  int dfd = ::open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  if (segments_.empty() || segments_.back().path != s.path) segments_.push_back(s);
  return Status::ok();
}

Result<uint64_t> Wal::append(std::string_view payload, uint8_t type) {
  if (payload.size() > kMaxPayloadBytes) return Status::invalid_argument("log record too large");
  if (type != kTypeBatch && type != kTypeStatsd) return Status::invalid_argument("log record type");
  if (fd_ < 0) {
    // Continue the last segment if there is one, else start a new one.
    if (auto s = open_segment(segments_.empty() ? next_lsn_ : segments_.back().first_lsn); !s)
      return s;
  } else if (segments_.back().bytes >= opts_.segment_bytes) {
    if (auto s = open_segment(next_lsn_); !s) return s;
  }
  const uint64_t lsn = next_lsn_;
  char header[kHeaderBytes];
  header[8] = static_cast<char>(type);
  put64(header + 9, lsn);
  put32(header, static_cast<uint32_t>(payload.size()));
  put32(header + 4, checksum(header + 8, payload));
  std::string record;
  record.reserve(kHeaderBytes + payload.size());
  record.append(header, kHeaderBytes);
  record.append(payload);
  Segment& seg = segments_.back();
  size_t done = 0;
  while (done < record.size()) {
    ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = errno_status("append to " + seg.path);
      // Cut the partial record so the log stays a sequence of whole records.
      if (::ftruncate(fd_, static_cast<off_t>(seg.bytes)) != 0)
        spdlog::error("event=wal_truncate_failed segment={} error=\"{}\"", seg.path,
                      std::strerror(errno));
      return s;
    }
    done += static_cast<size_t>(n);
  }
  seg.bytes += record.size();
  total_bytes_ += record.size();
  dirty_ = true;
  ++next_lsn_;
  return lsn;
}

Status Wal::sync(bool force) {
  if (!dirty_ || fd_ < 0) return Status::ok();
  const int64_t now = steady_ms();
  switch (opts_.fsync) {
    case FsyncPolicy::kAlways:
      break;
    case FsyncPolicy::kInterval:
      if (!force && now - last_sync_ms_ < opts_.fsync_interval_ms) return Status::ok();
      break;
    case FsyncPolicy::kNever:
      if (!force) return Status::ok();
      break;
  }
  if (::fdatasync(fd_) != 0) return errno_status("fdatasync log");
  dirty_ = false;
  last_sync_ms_ = now;
  return Status::ok();
}

Status Wal::rollback(const Mark& m) {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  while (segments_.size() > m.segments && !segments_.empty()) {
    ::unlink(segments_.back().path.c_str());
    total_bytes_ -= segments_.back().bytes;
    segments_.pop_back();
  }
  if (!segments_.empty() && segments_.back().bytes > m.bytes) {
    if (::truncate(segments_.back().path.c_str(), static_cast<off_t>(m.bytes)) != 0)
      return errno_status("truncate " + segments_.back().path);
    total_bytes_ -= segments_.back().bytes - m.bytes;
    segments_.back().bytes = m.bytes;
  }
  next_lsn_ = m.next_lsn;
  dirty_ = false;
  return Status::ok();
}

Status Wal::truncate(uint64_t safe_lsn) {
  // Segment i holds lsns [first_i, first_{i+1}); it can go when first_{i+1} - 1 <= safe_lsn.
  // The last segment is never deleted (it is the one being written).
  size_t drop = 0;
  while (drop + 1 < segments_.size() && segments_[drop + 1].first_lsn - 1 <= safe_lsn) ++drop;
  for (size_t i = 0; i < drop; ++i) {
    if (::unlink(segments_[i].path.c_str()) != 0 && errno != ENOENT)
      return errno_status("delete " + segments_[i].path);
    total_bytes_ -= segments_[i].bytes;
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<long>(drop));
  return Status::ok();
}

}  // namespace tally::collector
