#include "storage/data_dir.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tally::collector {

namespace fs = std::filesystem;

Result<DataDirLayout> open_data_dir(const std::string& path, uint32_t wanted_shards) {
  DataDirLayout d;
  d.path = path;
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return Status::io_error("cannot create data directory " + path + ": " + ec.message());
  const fs::path meta = fs::path(path) / "TALLY";
  if (fs::exists(meta)) {
    std::ifstream in(meta);
    std::string line;
    int version = 0;
    while (std::getline(in, line)) {
      if (line.rfind("format=", 0) == 0) version = std::atoi(line.c_str() + 7);
      if (line.rfind("shards=", 0) == 0)
        d.shards = static_cast<uint32_t>(std::atoi(line.c_str() + 7));
      if (line.rfind("retention=", 0) == 0) d.retention = line.substr(10);
    }
    if (version != kDataFormatVersion)
      return Status::corruption(meta.string() + ": format " + std::to_string(version) +
                                ", this collector reads format " +
                                std::to_string(kDataFormatVersion));
    if (d.shards == 0 || d.shards > 256)
      return Status::corruption(meta.string() + ": bad shard count");
    return d;
  }
  d.shards = wanted_shards;
  d.created = true;
  // Write then rename, so a crash never leaves a half-written layout file.
  const fs::path tmp = fs::path(path) / "TALLY.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "format=" << kDataFormatVersion << "\nshards=" << d.shards << "\n";
    out.flush();
    if (!out) return Status::io_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, meta, ec);
  if (ec) return Status::io_error("cannot create " + meta.string() + ": " + ec.message());
  return d;
}

Status record_retention(const DataDirLayout& d, const std::string& retention) {
  const fs::path meta = fs::path(d.path) / "TALLY";
  const fs::path tmp = fs::path(d.path) / "TALLY.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "format=" << kDataFormatVersion << "\nshards=" << d.shards << "\nretention=" << retention
        << "\n";
    out.flush();
    if (!out) return Status::io_error("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, meta, ec);
  if (ec) return Status::io_error("cannot update " + meta.string() + ": " + ec.message());
  return Status::ok();
}

std::string shard_path(const DataDirLayout& d, uint32_t shard) {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%02u.sqlite", shard);
  return (fs::path(d.path) / name).string();
}

}  // namespace tally::collector
