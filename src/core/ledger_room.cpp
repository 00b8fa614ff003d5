// Who has room in the ledger (see ledger.hpp): a budget's own limit, the server's
// backends beside other budgets' unused reservations, the waiting room, enforcement and
// pauses, and which waiter gives its place when the server has no backend left.
#include "core/ledger.hpp"

#include <algorithm>

#include "core/core_only.hpp"

namespace connbudget {

void Ledger::adopt(const Policy& policy) noexcept {
  budgets_[kDefaultBudget].definition.limits = policy.default_limits;
  header_->enforcement_enabled = policy.enforcement_enabled;
  header_->capacity = policy.capacity;
  header_->waiting_room = policy.waiting_room;
}

std::int32_t Ledger::unused_reservation(std::int32_t budget) const noexcept {
  const BudgetState& state = budgets_[budget];
  return std::max(0, state.reserved - state.active - state.waiting);
}

void Ledger::occupy(std::int32_t budget, std::int32_t active_delta, std::int32_t waiting_delta) noexcept {
  BudgetState& state = budgets_[budget];
  const std::int32_t unused_before = unused_reservation(budget);
  const std::int32_t unused_sessions_before = std::max(0, state.reserved - state.active);
  state.active += active_delta;
  state.waiting += waiting_delta;
  header_->occupied += active_delta + waiting_delta;
  header_->sessions += active_delta;
  header_->waiting += waiting_delta;
  header_->unused_reserved += unused_reservation(budget) - unused_before;
  header_->unused_reserved_sessions += std::max(0, state.reserved - state.active) - unused_sessions_before;
}

bool Ledger::session_room(std::int32_t budget) const noexcept {
  const BudgetState& state = budgets_[budget];
  if (budget == kExemptBudget || state.active < state.reserved) return true;
  return header_->capacity - header_->waiting_room - header_->sessions - 1 >= header_->unused_reserved_sessions;
}

bool Ledger::backend_room(std::int32_t budget) const noexcept {
  if (budget == kExemptBudget || unused_reservation(budget) > 0) return true;
  return header_->capacity - header_->occupied - 1 >= header_->unused_reserved;
}

Admission Ledger::evaluate(std::int32_t budget, const Policy& policy) const noexcept {
  const BudgetState& state = budgets_[budget];
  const BudgetLimits& limits = limits_of(budget);
  const Pressure pressure{state.active, state.waiting, session_room(budget), backend_room(budget), state.paused};
  Admission a;
  a.verdict = decide(limits, pressure, policy);
  a.budget = budget;
  a.active = state.active;
  a.waiting = state.waiting;
  a.limit = limits.max_connections;
  a.reserved = state.reserved;
  a.queue_timeout_ms = policy.queue_timeout_of(limits);
  a.capacity = header_->capacity;
  a.free = header_->capacity - header_->occupied;
  a.reserved_for_others = header_->unused_reserved - unused_reservation(budget);
  a.paused = state.paused;
  Policy enforcing = policy;
  enforcing.enforcement_enabled = true;
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

std::int32_t Ledger::victim_for(std::int32_t budget, const Policy& policy) const noexcept {
  // Displacing one waiter frees exactly one backend (its budget, being full, has no
  // unused reservation) and no session: never displace for a login that would still not
  // be let in.
  const BudgetState& state = budgets_[budget];
  if (state.paused && header_->enforcement_enabled) return kNoSession;  // it could not start anyway
  const Pressure with_a_backend{state.active, state.waiting, session_room(budget), true, state.paused};
  if (refuses(decide(limits_of(budget), with_a_backend, policy))) return kNoSession;
  if (header_->capacity - header_->occupied < header_->unused_reserved) return kNoSession;
  return youngest_waiter_below(limits_of(budget).priority);
}

bool Ledger::enforced(std::int32_t budget) const noexcept {
  return header_->enforcement_enabled && limits_of(budget).mode == Mode::Enforce;
}

bool Ledger::head_may_start(std::int32_t budget) const noexcept {
  const BudgetState& state = budgets_[budget];
  if (state.queue_head == kNoSession) return false;
  if (state.paused && header_->enforcement_enabled) return false;
  if (!enforced(budget)) return true;
  // Without a waiting room nobody waits for shared capacity: a waiter already holds its
  // backend, and its budget's room is all it needs.
  return has_room(limits_of(budget), state.active) && (header_->waiting_room == 0 || session_room(budget));
}

}  // namespace connbudget
