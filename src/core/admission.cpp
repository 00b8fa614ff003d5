// The admission decision (see admission.hpp).
#include "core/admission.hpp"

#include "core/core_only.hpp"

namespace connbudget {

bool has_room(const BudgetLimits& limits, std::int32_t active) noexcept {
  return limits.max_connections == BudgetLimits::kUnlimited || active < limits.max_connections;
}

Verdict decide(const BudgetLimits& limits, std::int32_t active, std::int32_t waiting,
               const Policy& policy) noexcept {
  if (waiting == 0 && has_room(limits, active)) return Verdict::Admit;
  if (!policy.enforcement_enabled || limits.mode == Mode::Monitor) return Verdict::AdmitOverLimit;
  if (limits.on_full == OnFull::Reject) return Verdict::Refuse;
  return waiting < policy.max_queue_of(limits) ? Verdict::Queue : Verdict::RefuseQueueFull;
}

}  // namespace connbudget
