// Cidr: an IPv4 or IPv6 network ("10.0.0.0/8", "fd00::/8", or one address) and the test of a
// source address against a list of them (the StatsD source allowlist). IPv4 is held as an
// IPv4-mapped IPv6 address, so a v4 sender on a dual-stack socket matches a v4 network.
// Thread-safety: a value type.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tally/common/status.h"

namespace tally::collector {

struct Cidr {
  std::array<uint8_t, 16> addr{};  // IPv6, or IPv4-mapped (::ffff:a.b.c.d)
  int prefix = 128;                // bits of addr that must match
  bool is_v4 = false;
  bool contains(const std::array<uint8_t, 16>& a) const;
};

[[nodiscard]] Result<Cidr> parse_cidr(std::string_view text);
// The sender's address as 16 bytes (v4 mapped); false for a family other than INET / INET6.
bool address_bytes(const sockaddr* sa, std::array<uint8_t, 16>* out);
// True when `sa` lies in one of the networks (an empty list allows everyone).
bool source_allowed(const std::vector<Cidr>& nets, const sockaddr* sa);

}  // namespace tally::collector
