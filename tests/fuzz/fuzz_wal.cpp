// Fuzz: the write-ahead log read back at start-up. The input is split at "\xff\xfe\xfd\xfc" into
// up to three segment files; replay must read the valid records, cut only a torn tail, report any
// other damage as corruption, and never delete a segment.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "storage/wal.h"
#include "tally/common/wire.h"

using namespace tally;
using namespace tally::collector;
namespace fs = std::filesystem;

// Protobuf's line per invalid UTF-8 string would be most of the run's time (the collector
// quiets it the same way).
static const bool kProtobufQuiet = (tally::quiet_protobuf_log(), true);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("tally-fuzz-wal-" + std::to_string(::getpid()));
    return d;
  }();
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  for (int i = 0; i < 2; ++i) {
    size_t cut = in.find("\xff\xfe\xfd\xfc");
    if (cut == std::string_view::npos) break;
    parts.push_back(in.substr(0, cut));
    in.remove_prefix(cut + 4);
  }
  parts.push_back(in);
  for (size_t i = 0; i < parts.size(); ++i) {
    char name[40];
    std::snprintf(name, sizeof name, "%020llu.log", static_cast<unsigned long long>(1 + 1000 * i));
    std::ofstream(dir / name, std::ios::binary)
        .write(parts[i].data(), static_cast<std::streamsize>(parts[i].size()));
  }
  WalOptions o;
  o.dir = dir.string();
  auto w = Wal::open(o);
  if (!w) std::abort();
  const size_t segments = (*w)->segments();
  uint64_t last = 0;
  Status s = (*w)->replay([&](uint64_t lsn, std::string_view) { last = lsn; });
  if (!s && s.code() != StatusCode::kCorruption) std::abort();
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.path().extension() == ".log";
  if (files != segments) std::abort();  // replay never deletes a segment
  if (s) {
    // After a successful replay the log takes appends again.
    auto lsn = (*w)->append("x");
    if (!lsn) std::abort();
  }
  (void)last;
  return 0;
}
