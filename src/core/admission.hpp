// The admission decision for one login: given its budget's limits and how many sessions
// the budget holds, admit it, admit it although enforcement would not (monitor mode or
// connbudget.enabled = off), or refuse it. Pure; the ledger applies the verdict.
#pragma once

#include <cstdint>

#include "core/budget.hpp"

namespace connbudget {

enum class Verdict : std::uint8_t {
  Admit,           // within the budget
  AdmitOverLimit,  // the budget is full, but it only monitors or enforcement is off
  Refuse,          // the budget is full: the login fails
};

Verdict decide(const BudgetLimits& limits, std::int32_t active, bool enforcement_enabled) noexcept;

}  // namespace connbudget
