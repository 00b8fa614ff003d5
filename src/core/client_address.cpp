// CIDR containment for client addresses (see client_address.hpp).
#include "core/client_address.hpp"

#include "core/core_only.hpp"

namespace connbudget {

bool AddressRange::contains(const ClientAddress& addr) const noexcept {
  if (addr.family == AddressFamily::None || addr.family != network.family) return false;
  const int max_bits = 8 * ClientAddress::byte_length(addr.family);
  const int bits = prefix_bits < max_bits ? prefix_bits : max_bits;
  const int whole = bits / 8;
  for (int i = 0; i < whole; ++i)
    if (addr.bytes[i] != network.bytes[i]) return false;
  if (const int rest = bits % 8) {
    const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
    if ((addr.bytes[whole] & mask) != (network.bytes[whole] & mask)) return false;
  }
  return true;
}

}  // namespace connbudget
