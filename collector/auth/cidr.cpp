#include "auth/cidr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

namespace tally::collector {

bool Cidr::contains(const std::array<uint8_t, 16>& a) const {
  int bits = prefix;
  for (size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (addr[i] & mask)) return false;
  }
  return true;
}

Result<Cidr> parse_cidr(std::string_view text) {
  Cidr c;
  std::string_view host = text;
  int prefix = -1;
  if (const size_t slash = text.find('/'); slash != std::string_view::npos) {
    host = text.substr(0, slash);
    std::string_view bits = text.substr(slash + 1);
    auto [p, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (ec != std::errc() || p != bits.data() + bits.size() || prefix < 0)
      return Status::invalid_argument("'" + std::string(text) + "': bad prefix length");
  }
  const std::string h(host);
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    if (prefix > 32)
      return Status::invalid_argument("'" + std::string(text) + "': IPv4 prefix above 32");
    c.is_v4 = true;
    c.addr[10] = c.addr[11] = 0xff;
    std::memcpy(c.addr.data() + 12, &v4, 4);
    c.prefix = 96 + (prefix < 0 ? 32 : prefix);
  } else if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (prefix > 128)
      return Status::invalid_argument("'" + std::string(text) + "': IPv6 prefix above 128");
    std::memcpy(c.addr.data(), &v6, 16);
    c.prefix = prefix < 0 ? 128 : prefix;
  } else {
    return Status::invalid_argument("'" + std::string(text) +
                                    "' is not an address or network (like 10.0.0.0/8)");
  }
  return c;
}

bool address_bytes(const sockaddr* sa, std::array<uint8_t, 16>* out) {
  out->fill(0);
  if (sa->sa_family == AF_INET) {
    (*out)[10] = (*out)[11] = 0xff;
    std::memcpy(out->data() + 12, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    std::memcpy(out->data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
    return true;
  }
  return false;
}

bool source_allowed(const std::vector<Cidr>& nets, const sockaddr* sa) {
  if (nets.empty()) return true;
  std::array<uint8_t, 16> a;
  if (!address_bytes(sa, &a)) return false;
  for (const auto& n : nets)
    if (n.contains(a)) return true;
  return false;
}

}  // namespace tally::collector
