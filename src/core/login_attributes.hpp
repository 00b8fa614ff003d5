// What a login is classified by: the startup packet's application_name, the role, the
// database, the client address, and the roles the role belongs to (for "+role" budgets).
// Views into memory owned by the caller; nothing here allocates.
#pragma once

#include <span>
#include <string_view>

#include "core/client_address.hpp"

namespace connbudget {

struct LoginAttributes {
  std::string_view application_name;  // empty when the startup packet had none
  std::string_view role_name;
  std::string_view database_name;
  ClientAddress client_addr;                    // family None for a Unix socket
  std::span<const std::string_view> member_of;  // roles role_name is a member of, any depth
};

}  // namespace connbudget
