// The admission decision (see admission.hpp).
#include "core/admission.hpp"

#include "core/core_only.hpp"

namespace connbudget {

Verdict decide(const BudgetLimits& limits, std::int32_t active, bool enforcement_enabled) noexcept {
  if (limits.max_connections == BudgetLimits::kUnlimited || active < limits.max_connections)
    return Verdict::Admit;
  if (!enforcement_enabled || limits.mode == Mode::Monitor) return Verdict::AdmitOverLimit;
  return Verdict::Refuse;
}

}  // namespace connbudget
