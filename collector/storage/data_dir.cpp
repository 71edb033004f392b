#include "storage/data_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tally/common/version.h"

namespace tally::collector {

namespace fs = std::filesystem;

namespace {

Status errno_status(const std::string& what) {
  return Status::io_error(what + ": " + std::strerror(errno));
}

// Writes `text` to dir/TALLY.tmp, syncs it, renames it over dir/TALLY and syncs the directory: a
// crash or power loss leaves the old file or the new one, never a torn or missing one.
Status write_marker(const std::string& dir, const std::string& text) {
  const std::string meta = (fs::path(dir) / "TALLY").string();
  const std::string tmp = (fs::path(dir) / "TALLY.tmp").string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status("cannot write " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = errno_status("cannot write " + tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = errno_status("cannot sync " + tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), meta.c_str()) != 0) return errno_status("cannot create " + meta);
  return sync_directory(dir);
}

}  // namespace

Status sync_directory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status("cannot open directory " + path);
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::ok() : errno_status("cannot sync directory " + path);
}

Result<DataDirLayout> open_data_dir(const std::string& path, uint32_t wanted_shards) {
  DataDirLayout d;
  d.path = path;
  std::error_code ec;
  const bool existed = fs::exists(path, ec);
  fs::create_directories(path, ec);
  if (ec) return Status::io_error("cannot create data directory " + path + ": " + ec.message());
  if (!existed) {
    // The new directory's own entry must survive a power loss too.
    const fs::path parent = fs::absolute(fs::path(path), ec).parent_path();
    if (!parent.empty()) (void)sync_directory(parent.string());
  }
  const fs::path meta = fs::path(path) / "TALLY";
  const std::string fix =
      " (the data directory's layout file; it is written once when the directory is created. "
      "Restore it from a backup, or write \"format=" +
      std::to_string(kDataFormatVersion) +
      "\" and \"shards=<the number of shard-NN.sqlite files>\" lines into it)";
  if (fs::exists(meta)) {
    std::ifstream in(meta);
    if (!in) return Status::io_error("cannot read " + meta.string());
    std::string line;
    int version = 0;
    bool any = false, has_format = false, has_shards = false;
    while (std::getline(in, line)) {
      any = any || !line.empty();
      if (line.rfind("format=", 0) == 0) {
        has_format = true;
        version = std::atoi(line.c_str() + 7);
      }
      if (line.rfind("shards=", 0) == 0) {
        has_shards = true;
        d.shards = static_cast<uint32_t>(std::atoi(line.c_str() + 7));
      }
      if (line.rfind("retention=", 0) == 0) d.retention = line.substr(10);
      if (line.rfind("writer_revision=", 0) == 0) d.writer_revision = std::atoi(line.c_str() + 16);
      if (line.rfind("writer_version=", 0) == 0) d.writer_version = line.substr(15);
    }
    if (!any) return Status::corruption(meta.string() + " is empty" + fix);
    if (!has_format || !has_shards)
      return Status::corruption(meta.string() + " has no " + (has_format ? "shards=" : "format=") +
                                " line" + fix);
    if (version != kDataFormatVersion)
      return Status::corruption(meta.string() + ": format " + std::to_string(version) +
                                ", this collector reads format " +
                                std::to_string(kDataFormatVersion));
    if (d.shards == 0 || d.shards > 256)
      return Status::corruption(meta.string() + ": bad shard count" + fix);
    return d;
  }
  d.shards = wanted_shards;
  d.created = true;
  d.writer_revision = kWriterRevision;
  d.writer_version = kVersion;
  if (auto s = record_layout(d); !s) return s;
  return d;
}

Status record_layout(const DataDirLayout& d) {
  std::ostringstream text;
  text << "format=" << kDataFormatVersion << "\nshards=" << d.shards << "\n";
  if (!d.retention.empty()) text << "retention=" << d.retention << "\n";
  text << "writer_revision=" << d.writer_revision << "\n";
  if (!d.writer_version.empty()) text << "writer_version=" << d.writer_version << "\n";
  return write_marker(d.path, text.str());
}

Status record_retention(const DataDirLayout& d, const std::string& retention) {
  DataDirLayout copy = d;
  copy.retention = retention;
  return record_layout(copy);
}

std::string shard_path(const DataDirLayout& d, uint32_t shard) {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%02u.sqlite", shard);
  return (fs::path(d.path) / name).string();
}

}  // namespace tally::collector
