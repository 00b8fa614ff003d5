// What the server really has free for a login: the adapter counts PostgreSQL's own free
// backends (PGPROCs), which also sees what the ledger cannot — logins still authenticating,
// refused or ended backends on their way out. The ledger asks only when the backends it
// counts leave room, and only for as many as it needs to know about.
#pragma once

#include <cstdint>

namespace connbudget {

class FreeBackends {
 public:
  // True if at least n backends are free beyond those PostgreSQL keeps from this login
  // (superuser_reserved_connections, reserved_connections), not counting the backend this
  // login itself holds. n may be zero or negative (the login may already use a kept one).
  virtual bool at_least(std::int32_t n) const noexcept = 0;

 protected:
  ~FreeBackends() = default;
};

}  // namespace connbudget
