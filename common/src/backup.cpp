#include "tally/common/backup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

namespace tally::backup {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

Status errno_status(const std::string& what) {
  const int e = errno;
  std::string msg = what + ": " + std::strerror(e);
  return e == ENOSPC || e == EDQUOT ? Status::unavailable(msg) : Status::io_error(msg);
}

// Closes a file descriptor on every path out.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads `path` in blocks, handing each to `fn`; returns the bytes read.
Result<uint64_t> read_blocks(const std::string& path,
                             const std::function<Status(const char*, size_t)>& fn) {
  Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return errno_status("open " + path);
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(in.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status("read " + path);
    if (n == 0) break;
    if (auto s = fn(buf.data(), static_cast<size_t>(n)); !s) return s;
    total += static_cast<uint64_t>(n);
  }
  return total;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

uint64_t Manifest::total_bytes() const {
  uint64_t t = 0;
  for (const auto& f : files) t += f.bytes;
  return t;
}

Status sync_dir(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.fd < 0) return errno_status("open " + dir);
  if (::fsync(d.fd) != 0) return errno_status("fsync " + dir);
  return Status::ok();
}

Result<FileEntry> describe_file(const std::string& path, const std::string& rel) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  auto n = read_blocks(path, [&](const char* p, size_t len) {
    XXH3_64bits_update(st, p, len);
    return Status::ok();
  });
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  if (!n) return n.status();
  return FileEntry{rel, *n, h};
}

Result<FileEntry> copy_file(const std::string& from, const std::string& to,
                            const std::string& rel) {
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
  if (out.fd < 0) return errno_status("create " + to);
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  auto n = read_blocks(from, [&](const char* p, size_t len) {
    XXH3_64bits_update(st, p, len);
    size_t done = 0;
    while (done < len) {
      const ssize_t w = ::write(out.fd, p + done, len - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return errno_status("write " + to);
      done += static_cast<size_t>(w);
    }
    return Status::ok();
  });
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  if (!n) return n.status();
  if (::fsync(out.fd) != 0) return errno_status("fsync " + to);
  return FileEntry{rel, *n, h};
}

Status write_manifest(const std::string& dir, const Manifest& m) {
  json files = json::array();
  for (const auto& f : m.files)
    files.push_back({{"path", f.path}, {"bytes", f.bytes}, {"xxh3", hex64(f.xxh3)}});
  const json j = {{"format", m.format},
                  {"tally_version", m.tally_version},
                  {"created_unix_ms", m.created_unix_ms},
                  {"files", files}};
  const std::string tmp = (fs::path(dir) / (std::string(kManifestName) + ".tmp")).string();
  const std::string text = j.dump(2) + "\n";
  {
    Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (out.fd < 0) return errno_status("create " + tmp);
    if (::write(out.fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      return errno_status("write " + tmp);
    if (::fsync(out.fd) != 0) return errno_status("fsync " + tmp);
  }
  const std::string final_path = (fs::path(dir) / kManifestName).string();
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) return errno_status("rename " + tmp);
  return sync_dir(dir);
}

Result<Manifest> read_manifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / kManifestName).string();
  std::ifstream in(path);
  if (!in)
    return Status::not_found(dir + " holds no " + kManifestName +
                             ": not a Tally backup, or one that did not finish");
  const json j = json::parse(in, nullptr, false);
  auto bad = [&](const std::string& why) {
    return Status::corruption(path + " is not a valid backup manifest: " + why);
  };
  if (j.is_discarded() || !j.is_object()) return bad("not JSON");
  if (!j.contains("format") || !j["format"].is_number_integer()) return bad("no format");
  Manifest m;
  m.format = j["format"].get<int>();
  if (m.format > kManifestFormat)
    return Status::invalid_argument(path + " has format " + std::to_string(m.format) +
                                    ", newer than this tally understands (" +
                                    std::to_string(kManifestFormat) + "); use a newer tally");
  m.tally_version = j.value("tally_version", "");
  m.created_unix_ms = j.value("created_unix_ms", int64_t{0});
  if (!j.contains("files") || !j["files"].is_array()) return bad("no files");
  for (const auto& f : j["files"]) {
    if (!f.is_object() || !f.contains("path") || !f["path"].is_string() || !f.contains("bytes") ||
        !f["bytes"].is_number_unsigned() || !f.contains("xxh3") || !f["xxh3"].is_string())
      return bad("a file entry without path, bytes or xxh3");
    FileEntry e;
    e.path = f["path"].get<std::string>();
    const fs::path p(e.path);
    if (e.path.empty() || p.is_absolute() || e.path.find("..") != std::string::npos ||
        e.path == kManifestName)
      return bad("file path '" + e.path + "' is not inside the backup");
    e.bytes = f["bytes"].get<uint64_t>();
    e.xxh3 = std::strtoull(f["xxh3"].get<std::string>().c_str(), nullptr, 16);
    m.files.push_back(std::move(e));
  }
  return m;
}

Status verify(const std::string& dir, const Manifest& m) {
  for (const auto& f : m.files) {
    auto got = describe_file((fs::path(dir) / f.path).string(), f.path);
    if (!got) return Status::corruption("backup file " + f.path + ": " + got.status().message());
    if (got->bytes != f.bytes)
      return Status::corruption("backup file " + f.path + " has " + std::to_string(got->bytes) +
                                " bytes; the manifest says " + std::to_string(f.bytes));
    if (got->xxh3 != f.xxh3)
      return Status::corruption("backup file " + f.path +
                                " differs from what was backed up (hash mismatch)");
  }
  return Status::ok();
}

Status restore(const std::string& backup_dir, const std::string& data_dir, Manifest* out) {
  auto m = read_manifest(backup_dir);
  if (!m) return m.status();
  if (auto s = verify(backup_dir, *m); !s) return s;
  std::error_code ec;
  if (fs::exists(data_dir, ec)) {
    if (!fs::is_directory(data_dir, ec))
      return Status::invalid_argument(data_dir + " exists and is not a directory");
    if (!fs::is_empty(data_dir, ec))
      return Status::invalid_argument(
          data_dir +
          " is not empty; restore writes only into a new or empty data directory (move the old "
          "one aside first)");
  }
  fs::create_directories(data_dir, ec);
  if (ec) return Status::io_error("cannot create " + data_dir + ": " + ec.message());
  std::vector<std::string> dirs = {data_dir};
  for (const auto& f : m->files) {
    const fs::path to = fs::path(data_dir) / f.path;
    if (to.parent_path() != fs::path(data_dir)) {
      fs::create_directories(to.parent_path(), ec);
      if (ec) return Status::io_error("cannot create " + to.parent_path().string());
      dirs.push_back(to.parent_path().string());
    }
    auto copied = copy_file((fs::path(backup_dir) / f.path).string(), to.string(), f.path);
    if (!copied) return copied.status();
    if (copied->xxh3 != f.xxh3 || copied->bytes != f.bytes)
      return Status::corruption("backup file " + f.path + " changed while it was restored");
  }
  for (const auto& d : dirs)
    if (auto s = sync_dir(d); !s) return s;
  if (out) *out = std::move(*m);
  return Status::ok();
}

}  // namespace tally::backup
