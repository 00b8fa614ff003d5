// Idle reclaim (see reclaim.hpp).
#include "core/reclaim.hpp"

#include "core/core_only.hpp"

namespace connbudget {
namespace {

bool reclaimable(const Ledger& ledger, std::int32_t budget) noexcept {
  return budget != kExemptBudget && ledger.limits_of(budget).idle_reclaim_ms != BudgetLimits::kNeverReclaim;
}

// Budget a comes before budget b when both have demand: higher priority, then the older
// oldest waiter.
bool served_first(const Ledger& ledger, std::int32_t a, std::int32_t b) noexcept {
  const std::int32_t pa = ledger.limits_of(a).priority, pb = ledger.limits_of(b).priority;
  if (pa != pb) return pa > pb;
  const auto& sessions = ledger.sessions();
  return sessions[ledger.budgets()[a].queue_head].ticket < sessions[ledger.budgets()[b].queue_head].ticket;
}

}  // namespace

std::int32_t reclaim_demand(const Ledger& ledger, std::int32_t budget) noexcept {
  const WaitReason why = ledger.why_waiting(budget);
  if (why != WaitReason::Full && why != WaitReason::SharedCapacity) return 0;
  const BudgetState& state = ledger.budgets()[budget];
  return state.waiting > state.reclaiming ? state.waiting - state.reclaiming : 0;
}

bool may_reclaim_for(const Ledger& ledger, std::int32_t waiting, std::int32_t victim) noexcept {
  if (!reclaimable(ledger, victim)) return false;
  switch (ledger.why_waiting(waiting)) {
    case WaitReason::Full: return victim == waiting;
    case WaitReason::SharedCapacity: {
      const BudgetState& state = ledger.budgets()[victim];
      return state.active > state.entitled && ledger.limits_of(victim).priority <= ledger.limits_of(waiting).priority;
    }
    default: return false;
  }
}

std::size_t reclaim_candidates(const Ledger& ledger, std::span<IdleSession> out) noexcept {
  const LedgerHeader& header = ledger.header();
  if (!header.uses_idle_reclaim || header.waiting == 0) return 0;
  std::size_t count = 0;
  const auto sessions = ledger.sessions();
  for (std::size_t slot = 0; slot < sessions.size() && count < out.size(); ++slot) {
    const SessionState& s = sessions[slot];
    if (s.phase != SessionPhase::Active || s.reclaimed || !reclaimable(ledger, s.budget)) continue;
    bool wanted = false;
    for (std::int32_t b = header.waiting_budgets; b != kNoBudget && !wanted; b = ledger.budgets()[b].next_waiting)
      wanted = reclaim_demand(ledger, b) > 0 && may_reclaim_for(ledger, b, s.budget);
    if (wanted) out[count++] = IdleSession{static_cast<std::int32_t>(slot), s.pid, 0};
  }
  return count;
}

std::size_t plan_reclaims(const Ledger& ledger, std::span<const IdleSession> idle, std::int64_t now_us,
                          std::span<Reclaim> out, std::int64_t* next_due_us) noexcept {
  const LedgerHeader& header = ledger.header();
  std::size_t planned = 0;
  std::int32_t last = kNoBudget;  // the budget served last: the next comes after it in the order
  while (planned < out.size()) {
    std::int32_t next = kNoBudget;
    for (std::int32_t b = header.waiting_budgets; b != kNoBudget; b = ledger.budgets()[b].next_waiting) {
      if (reclaim_demand(ledger, b) == 0 || (last != kNoBudget && !served_first(ledger, last, b))) continue;
      if (next == kNoBudget || served_first(ledger, b, next)) next = b;
    }
    if (next == kNoBudget) break;
    last = next;
    for (std::int32_t wanted = reclaim_demand(ledger, next); wanted > 0 && planned < out.size(); --wanted) {
      // The longest idle session, not chosen yet, that this budget may take.
      const IdleSession* best = nullptr;
      for (const IdleSession& candidate : idle) {
        const SessionState& s = ledger.sessions()[candidate.slot];
        if (s.phase != SessionPhase::Active || s.pid != candidate.pid || s.reclaimed) continue;
        if (!may_reclaim_for(ledger, next, s.budget)) continue;
        bool chosen = false;
        for (std::size_t i = 0; i < planned && !chosen; ++i) chosen = out[i].slot == candidate.slot;
        if (chosen) continue;
        const std::int64_t due_us =
            candidate.idle_since_us + std::int64_t{ledger.limits_of(s.budget).idle_reclaim_ms} * 1000;
        if (due_us > now_us) {
          if (due_us < *next_due_us) *next_due_us = due_us;
          continue;
        }
        if (!best || candidate.idle_since_us < best->idle_since_us) best = &candidate;
      }
      if (!best) break;
      out[planned++] = Reclaim{best->slot, best->pid, ledger.sessions()[best->slot].budget, next,
                               now_us - best->idle_since_us};
    }
  }
  return planned;
}

}  // namespace connbudget
