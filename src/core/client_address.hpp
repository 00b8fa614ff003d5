// Client addresses of logins and the CIDR ranges budgets match them against. IPv4 and
// IPv6 are distinct families (as in pg_hba.conf); a Unix-socket login has no address and
// matches no range.
#pragma once

#include <cstdint>

namespace connbudget {

enum class AddressFamily : std::uint8_t { None, IPv4, IPv6 };

struct ClientAddress {
  AddressFamily family = AddressFamily::None;  // None: Unix socket (or unknown)
  std::uint8_t bytes[16] = {};                 // network order; IPv4 uses the first 4

  static constexpr int byte_length(AddressFamily f) noexcept {
    return f == AddressFamily::IPv4 ? 4 : f == AddressFamily::IPv6 ? 16 : 0;
  }
  friend bool operator==(const ClientAddress&, const ClientAddress&) noexcept = default;
};

struct AddressRange {
  ClientAddress network;
  std::uint8_t prefix_bits = 0;

  // True if addr is of the same family and its first prefix_bits bits equal the network's.
  bool contains(const ClientAddress& addr) const noexcept;

  friend bool operator==(const AddressRange&, const AddressRange&) noexcept = default;
};

}  // namespace connbudget
