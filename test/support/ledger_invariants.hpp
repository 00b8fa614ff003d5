// Every invariant of core/ledger.hpp, recomputed from the session slots: for the unit tests
// (ledger_fixture.hpp) and the fuzzer (test/fuzz). No test framework: it returns what is
// wrong, or an empty string.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/ledger.hpp"

namespace connbudget::testing_support {

inline std::string ledger_invariant_violation(const Ledger& ledger) {
  const auto fail = [](const std::string& what, std::size_t budget = SIZE_MAX) {
    return budget == SIZE_MAX ? what : what + " (budget " + std::to_string(budget) + ")";
  };
  const LedgerHeader& h = ledger.header();
  std::int64_t wanted = 0;  // every budget's max_connections: do they fit?
  for (const std::int32_t index : ledger.match_order()) wanted += ledger.budgets()[index].definition.limits.max_connections;
  if (ledger.limits_of(kDefaultBudget).max_connections != BudgetLimits::kUnlimited)
    wanted += ledger.limits_of(kDefaultBudget).max_connections;
  if (h.fits != (wanted <= h.capacity - h.waiting_room)) return fail("fits");
  int occupied = 0, unused = 0, sessions = 0, unused_sessions = 0, waiting_total = 0, displaced = 0;
  for (std::size_t b = 0; b < ledger.budgets().size(); ++b) {
    const BudgetState& budget = ledger.budgets()[b];
    const int max = ledger.limits_of(static_cast<int>(b)).max_connections;
    const int entitled = h.fits && b != kExemptBudget && max != BudgetLimits::kUnlimited && budget.configured
                             ? std::max(max, budget.reserved)
                             : budget.reserved;
    if (budget.entitled != entitled) return fail("entitled", b);
    occupied += budget.active + budget.waiting;
    unused += std::max(0, budget.entitled - budget.active - budget.waiting);
    sessions += budget.active;
    unused_sessions += std::max(0, budget.entitled - budget.active);
    waiting_total += budget.waiting;
  }
  for (const SessionState& s : ledger.sessions()) displaced += s.phase == SessionPhase::Displaced;
  for (std::size_t b = 0; b < ledger.budgets().size(); ++b) {
    int reclaiming = 0;
    for (const SessionState& s : ledger.sessions())
      reclaiming += s.phase == SessionPhase::Active && s.reclaimed && s.reclaimed_for == static_cast<int>(b);
    if (ledger.budgets()[b].reclaiming != reclaiming) return fail("reclaiming", b);
  }
  if (h.occupied != occupied) return fail("occupied");
  if (h.unused_entitled != unused) return fail("unused_entitled");
  if (h.sessions != sessions) return fail("sessions");
  if (h.unused_entitled_sessions != unused_sessions) return fail("unused_entitled_sessions");
  if (h.waiting != waiting_total) return fail("waiting");
  if (h.displaced != displaced) return fail("displaced");
  int listed_budgets = 0;
  for (std::int32_t b = h.waiting_budgets; b != kNoBudget; b = ledger.budgets()[b].next_waiting) {
    if (ledger.budgets()[b].waiting <= 0) return fail("listed as waited for, nobody waits", static_cast<std::size_t>(b));
    if (++listed_budgets > static_cast<int>(ledger.budgets().size())) return fail("the list of budgets with waiters loops");
  }
  int budgets_waited_for = 0;
  for (const BudgetState& budget : ledger.budgets()) budgets_waited_for += budget.waiting > 0;
  if (listed_budgets != budgets_waited_for) return fail("budgets with waiters not all listed");
  for (std::size_t b = 0; b < ledger.budgets().size(); ++b) {
    const BudgetState& budget = ledger.budgets()[b];
    int active = 0, waiting = 0;
    for (const SessionState& s : ledger.sessions()) {
      if (s.budget != static_cast<int>(b)) continue;
      active += s.phase == SessionPhase::Active;
      waiting += s.phase == SessionPhase::Waiting;
    }
    if (budget.active != active) return fail("active", b);
    if (budget.waiting != waiting) return fail("waiting", b);
    int listed = 0;
    std::uint64_t last_ticket = 0;
    for (std::int32_t s = budget.queue_head; s != kNoSession; s = ledger.sessions()[s].next) {
      const SessionState& w = ledger.sessions()[s];
      if (w.phase != SessionPhase::Waiting || w.budget != static_cast<int>(b)) return fail("queue holds a non-waiter", b);
      if (w.ticket <= last_ticket) return fail("queue not in arrival order", b);
      last_ticket = w.ticket;
      if (++listed > waiting) return fail("queue longer than its waiters", b);
    }
    if (listed != waiting) return fail("queue shorter than its waiters", b);
    if (waiting > 0 && !budget.paused && h.enforcement_enabled &&
        ledger.limits_of(static_cast<int>(b)).mode == Mode::Enforce) {
      // No waiter could start: its budget is full, or the server has no session for it.
      const bool own_room = has_room(ledger.limits_of(static_cast<int>(b)), budget.active);
      const bool session_room = h.waiting_room == 0 || budget.active < budget.entitled ||
                                h.capacity - h.waiting_room - h.sessions - 1 >= h.unused_entitled_sessions;
      if (own_room && session_room) return fail("a waiter could start", b);
    }
  }
  return "";
}

}  // namespace connbudget::testing_support
