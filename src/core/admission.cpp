// The admission decision (see admission.hpp).
#include "core/admission.hpp"

#include "core/core_only.hpp"

namespace connbudget {

bool has_room(const BudgetLimits& limits, std::int32_t active) noexcept {
  return limits.max_connections == BudgetLimits::kUnlimited || active < limits.max_connections;
}

Verdict decide(const BudgetLimits& limits, const Pressure& pressure, const Policy& policy) noexcept {
  const Verdict no_backend = pressure.server_full ? Verdict::RefuseServerFull : Verdict::RefuseReserved;
  if (pressure.paused) {
    if (!policy.enforcement_enabled) return Verdict::AdmitOverLimit;
    if (limits.on_full == OnFull::Reject) return Verdict::RefusePaused;
    if (pressure.waiting >= policy.max_queue_of(limits)) return Verdict::RefuseQueueFull;
    return pressure.backend_room ? Verdict::Queue : no_backend;
  }
  const bool enforced = policy.enforcement_enabled && limits.mode == Mode::Enforce;
  const bool own_room = pressure.waiting == 0 && has_room(limits, pressure.active);
  if (own_room && pressure.session_room && pressure.backend_room) return Verdict::Admit;
  if (!enforced) return Verdict::AdmitOverLimit;
  if (!own_room && limits.on_full == OnFull::Reject) {
    const bool grace = policy.reject_grace_ms > 0 && pressure.backend_room &&
                       pressure.waiting < policy.max_queue_of(limits);
    return grace ? Verdict::Queue : Verdict::Refuse;
  }
  // With its own room, a login lacks only server room: a backend (if it has session room)
  // or a session (and a rejecting budget does not wait for one).
  if (own_room && (limits.on_full == OnFull::Reject || pressure.session_room))
    return pressure.backend_room ? Verdict::RefuseReserved : no_backend;
  if (pressure.waiting >= policy.max_queue_of(limits)) return Verdict::RefuseQueueFull;
  return pressure.backend_room ? Verdict::Queue : no_backend;
}

}  // namespace connbudget
