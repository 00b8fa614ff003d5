// The server's free backends as the tests have them (core/free_backends.hpp): what the
// ledger counts, plus backends it cannot see. For the unit tests and the fuzzer.
#pragma once

#include "core/ledger.hpp"

namespace connbudget::testing_support {

// The server as the tests have it: every backend the ledger counts, displaced waiters
// until they exit, and `starting_or_ending` more that the ledger does not see (logins still
// authenticating, refused ones on their way out).
class FakeServer : public FreeBackends {
 public:
  explicit FakeServer(const Ledger& ledger) : ledger_(ledger) {}
  bool at_least(std::int32_t n) const noexcept override {
    const LedgerHeader& h = ledger_.header();
    return h.capacity - h.occupied - h.displaced - starting_or_ending - 1 >= n;
  }
  int starting_or_ending = 0;

 private:
  const Ledger& ledger_;
};

}  // namespace connbudget::testing_support
