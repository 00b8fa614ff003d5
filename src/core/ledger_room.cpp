// Who has room in the ledger (see ledger.hpp): entitlements, a budget's own limit, the
// server's backends beside other budgets' unused entitlements (as counted, and as the
// server really has them), the waiting room, enforcement and pauses, and which waiter
// gives its place when the server has no backend left.
#include "core/ledger.hpp"

#include <algorithm>

#include "core/core_only.hpp"

namespace connbudget {

void Ledger::adopt(const Policy& policy) noexcept {
  const bool entitlements_change = !(budgets_[kDefaultBudget].definition.limits == policy.default_limits) ||
                                   header_->capacity != policy.capacity ||
                                   header_->waiting_room != policy.waiting_room;
  budgets_[kDefaultBudget].definition.limits = policy.default_limits;
  header_->enforcement_enabled = policy.enforcement_enabled;
  header_->capacity = policy.capacity;
  header_->waiting_room = policy.waiting_room;
  if (entitlements_change) refresh_entitlements();
}

void Ledger::refresh_entitlements() noexcept {
  // Do all budgets' limits fit? Then each is entitled to its max_connections.
  std::int64_t wanted = 0;
  for (const std::int32_t index : match_order()) wanted += budgets_[index].definition.limits.max_connections;
  const std::int32_t default_max = budgets_[kDefaultBudget].definition.limits.max_connections;
  if (default_max != BudgetLimits::kUnlimited) wanted += default_max;
  header_->fits = wanted <= header_->capacity - header_->waiting_room;
  header_->unused_entitled = header_->unused_entitled_sessions = 0;
  header_->uses_idle_reclaim = false;
  for (std::size_t b = 0; b < budgets_.size(); ++b) {
    BudgetState& state = budgets_[b];
    header_->uses_idle_reclaim = header_->uses_idle_reclaim ||
                                 (state.configured && b != kExemptBudget &&
                                  state.definition.limits.idle_reclaim_ms != BudgetLimits::kNeverReclaim);
    const std::int32_t max = b == kExemptBudget ? 0 : state.definition.limits.max_connections;
    state.entitled = header_->fits && state.configured && max != BudgetLimits::kUnlimited
                         ? std::max(max, state.reserved)
                         : state.reserved;
    header_->unused_entitled += unused_entitlement(static_cast<std::int32_t>(b));
    header_->unused_entitled_sessions += std::max(0, state.entitled - state.active);
  }
}

std::int32_t Ledger::unused_entitlement(std::int32_t budget) const noexcept {
  const BudgetState& state = budgets_[budget];
  return std::max(0, state.entitled - state.active - state.waiting);
}

void Ledger::occupy(std::int32_t budget, std::int32_t active_delta, std::int32_t waiting_delta) noexcept {
  BudgetState& state = budgets_[budget];
  const std::int32_t unused_before = unused_entitlement(budget);
  const std::int32_t unused_sessions_before = std::max(0, state.entitled - state.active);
  state.active += active_delta;
  state.waiting += waiting_delta;
  header_->occupied += active_delta + waiting_delta;
  header_->sessions += active_delta;
  header_->waiting += waiting_delta;
  header_->unused_entitled += unused_entitlement(budget) - unused_before;
  header_->unused_entitled_sessions += std::max(0, state.entitled - state.active) - unused_sessions_before;
}

bool Ledger::session_room(std::int32_t budget) const noexcept {
  const BudgetState& state = budgets_[budget];
  if (budget == kExemptBudget || state.active < state.entitled) return true;
  return header_->capacity - header_->waiting_room - header_->sessions - 1 >= header_->unused_entitled_sessions;
}

bool Ledger::backend_room(std::int32_t budget, const FreeBackends& free) const noexcept {
  if (budget == kExemptBudget || unused_entitlement(budget) > 0) return true;
  // First as the ledger counts (no need to ask the server if that says no), then as the
  // server has them: a displaced waiter's backend is as good as free, it is leaving.
  return header_->capacity - header_->occupied - 1 >= header_->unused_entitled &&
         free.at_least(header_->unused_entitled - header_->displaced);
}

Pressure Ledger::pressure_on(std::int32_t budget, const FreeBackends& free) const noexcept {
  const BudgetState& state = budgets_[budget];
  Pressure pressure{.active = state.active,
                    .waiting = state.waiting,
                    .session_room = session_room(budget),
                    .backend_room = backend_room(budget, free),
                    .paused = state.paused};
  if (!pressure.backend_room)
    pressure.server_full = header_->capacity - header_->occupied - 1 < 0 || !free.at_least(-header_->displaced);
  return pressure;
}

Admission Ledger::evaluate(std::int32_t budget, const Policy& policy, const FreeBackends& free) const noexcept {
  const BudgetState& state = budgets_[budget];
  const BudgetLimits& limits = limits_of(budget);
  const Pressure pressure = pressure_on(budget, free);
  Admission a;
  a.verdict = decide(limits, pressure, policy);
  a.budget = budget;
  a.active = state.active;
  a.waiting = state.waiting;
  a.limit = limits.max_connections;
  a.reserved = state.reserved;
  a.queue_timeout_ms = policy.queue_timeout_of(limits);
  a.grace = a.verdict == Verdict::Queue && limits.on_full == OnFull::Reject;
  a.capacity = header_->capacity;
  a.free = header_->capacity - header_->occupied;
  a.reserved_for_others = header_->unused_entitled - unused_entitlement(budget);
  a.waiting_room = header_->waiting_room;
  a.server_sessions = header_->sessions;
  a.server_exempt = budgets_[kExemptBudget].active;
  a.server_waiting = header_->waiting;
  a.server_displaced = header_->displaced;
  a.paused = state.paused;
  Policy enforcing = policy;
  enforcing.enforcement_enabled = true;
  enforcing.reject_grace_ms = 0;  // monitor mode counts a login a full budget would refuse as refused
  BudgetLimits enforced_limits = limits;
  enforced_limits.mode = Mode::Enforce;
  a.enforced = decide(enforced_limits, pressure, enforcing);
  return a;
}

std::int32_t Ledger::youngest_waiter_below(std::int32_t priority) const noexcept {
  std::int32_t victim_budget = kNoBudget;
  for (std::int32_t b = header_->waiting_budgets; b != kNoBudget; b = budgets_[b].next_waiting) {
    const std::int32_t mine = limits_of(b).priority;
    if (mine >= priority) continue;
    // Its waiter frees a backend only if the budget holds more than it is entitled to.
    if (budgets_[b].active + budgets_[b].waiting <= budgets_[b].entitled) continue;
    if (victim_budget == kNoBudget) {
      victim_budget = b;
      continue;
    }
    const std::int32_t best = limits_of(victim_budget).priority;
    if (mine < best || (mine == best && sessions_[budgets_[b].queue_tail].ticket >
                                            sessions_[budgets_[victim_budget].queue_tail].ticket))
      victim_budget = b;
  }
  return victim_budget == kNoBudget ? kNoSession : budgets_[victim_budget].queue_tail;
}

std::int32_t Ledger::victim_for(std::int32_t budget, const Policy& policy, const FreeBackends& free) const noexcept {
  // Displacing one waiter frees exactly one backend and no session: never displace for a
  // login that would still not be let in.
  const BudgetState& state = budgets_[budget];
  if (state.paused && header_->enforcement_enabled) return kNoSession;  // it could not start anyway
  const Pressure with_a_backend{.active = state.active,
                                .waiting = state.waiting,
                                .session_room = session_room(budget),
                                .backend_room = true,
                                .paused = state.paused};
  if (refuses(decide(limits_of(budget), with_a_backend, policy))) return kNoSession;
  if (header_->capacity - header_->occupied < header_->unused_entitled ||
      !free.at_least(header_->unused_entitled - header_->displaced - 1))
    return kNoSession;
  return youngest_waiter_below(limits_of(budget).priority);
}

bool Ledger::enforced(std::int32_t budget) const noexcept {
  return header_->enforcement_enabled && limits_of(budget).mode == Mode::Enforce;
}

WaitReason Ledger::why_waiting(std::int32_t budget) const noexcept {
  const BudgetState& state = budgets_[budget];
  if (state.queue_head == kNoSession) return WaitReason::None;
  if (state.paused && header_->enforcement_enabled) return WaitReason::Paused;
  if (!enforced(budget)) return WaitReason::None;
  if (!has_room(limits_of(budget), state.active)) return WaitReason::Full;
  // Without a waiting room nobody waits for shared capacity: a waiter already holds its
  // backend, and its budget's room is all it needs.
  if (header_->waiting_room > 0 && !session_room(budget)) return WaitReason::SharedCapacity;
  return WaitReason::None;
}

bool Ledger::head_may_start(std::int32_t budget) const noexcept {
  return budgets_[budget].queue_head != kNoSession && why_waiting(budget) == WaitReason::None;
}

}  // namespace connbudget
