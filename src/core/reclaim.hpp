// Idle reclaim: which idle sessions to end so that logins waiting for a slot get one.
//
// A budget's waiters that no reclaim is on its way for yet are its demand. The waiters of
// a full budget take a session of their own budget; waiters for shared capacity (a budget
// with room of its own, held back by the waiting room) take a session of a budget above
// its entitlement whose priority is not higher. A session is ended only if its own budget
// has an idle_reclaim, and it has been idle outside a transaction at least that long; the
// longest idle first. A session being ended counts for the budget it was ended for until
// its backend exits (BudgetState::reclaiming), so one waiter never ends two sessions.
//
// The adapter (the worker) asks reclaim_candidates() which sessions could be ended, reads
// which of them are idle and since when (pg_stat_activity), asks plan_reclaims() under a
// shared lock, then for each planned reclaim calls Ledger::mark_reclaimed() under the
// exclusive lock, which checks the plan still holds, right before signalling the session.
// Pure functions over the ledger; no allocation.
#pragma once

#include <cstdint>
#include <span>

#include "core/ledger.hpp"

namespace connbudget {

// A session as pg_stat_activity showed it idle (outside a transaction), since when.
struct IdleSession {
  std::int32_t slot = kNoSession;
  std::int32_t pid = 0;
  std::int64_t idle_since_us = 0;
};

struct Reclaim {
  std::int32_t slot = kNoSession;
  std::int32_t pid = 0;
  std::int32_t victim_budget = kNoBudget;  // the budget of the session ended
  std::int32_t for_budget = kNoBudget;     // the budget whose waiter gets its slot
  std::int64_t idle_us = 0;                // how long it had been idle
};

// How many of `budget`'s waiters a reclaim could serve now and none is on its way for.
std::int32_t reclaim_demand(const Ledger& ledger, std::int32_t budget) noexcept;

// True if a session of `victim` may be ended for a waiter of `waiting` (its idle time
// aside): the victim's budget has an idle_reclaim, and it is the waiter's own (full)
// budget, or, for a waiter of shared capacity, a budget above its entitlement of no
// higher priority.
bool may_reclaim_for(const Ledger& ledger, std::int32_t waiting, std::int32_t victim) noexcept;

// The sessions worth looking up (slot and pid; idle_since_us 0): every active session
// that some budget's demand could end. Returns how many it wrote (at most out.size()).
std::size_t reclaim_candidates(const Ledger& ledger, std::span<IdleSession> out) noexcept;

// Of the idle sessions, the ones to end now, in order: budgets by priority, then by their
// oldest waiter; for each, its demand's worth of the longest-idle sessions it may take.
// Returns how many it wrote (at most out.size()). *next_due_us gets the earliest moment
// an idle session too young now would become old enough (unchanged if none).
std::size_t plan_reclaims(const Ledger& ledger, std::span<const IdleSession> idle, std::int64_t now_us,
                          std::span<Reclaim> out, std::int64_t* next_due_us) noexcept;

}  // namespace connbudget
