// Reads SecurityConfig's keys from a parsed TOML table (kept apart from security_config.h so only
// config.cpp pulls in toml++).
#pragma once

#include <toml++/toml.h>

#include <string>

#include "auth/security_config.h"

namespace tally::collector {

[[nodiscard]] Status load_security(const toml::table& t, const std::string& path,
                                   SecurityConfig& s);

}  // namespace tally::collector
