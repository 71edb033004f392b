#include "log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace tally::collector {

Status setup_logging(const std::string& level, const std::string& file, uint64_t max_bytes,
                     uint64_t max_files) {
  std::shared_ptr<spdlog::logger> logger;
  if (file.empty()) {
    logger = spdlog::stderr_logger_mt("tally");
  } else {
    // spdlog reports a file it cannot open by exception; this is the process boundary.
    try {
      logger = max_bytes == 0 ? spdlog::basic_logger_mt("tally", file)
                              : spdlog::rotating_logger_mt("tally", file, max_bytes, max_files);
    } catch (const spdlog::spdlog_ex& e) {
      return Status::io_error(std::string("cannot open log file: ") + e.what());
    }
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return Status::ok();
}

}  // namespace tally::collector
