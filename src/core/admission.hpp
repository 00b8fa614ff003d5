// The admission decision for one login: given its budget's limits and how many sessions
// the budget holds and how many logins wait for it, admit it, admit it although
// enforcement would not (monitor mode or connbudget.enabled = off), queue it, or refuse
// it. Pure; the ledger applies the verdict.
#pragma once

#include <cstdint>

#include "core/budget.hpp"

namespace connbudget {

enum class Verdict : std::uint8_t {
  Admit,            // within the budget
  AdmitOverLimit,   // the budget is full, but it only monitors or enforcement is off
  Queue,            // the budget is full (or others wait): wait for a slot
  Refuse,           // the budget is full and refuses
  RefuseQueueFull,  // the budget is full and so is its queue
};

// What the settings say for everything a budget row leaves to them.
struct Policy {
  BudgetLimits default_limits;        // the implicit default budget
  std::int32_t queue_timeout_ms = 5000;  // budgets whose queue_timeout is NULL
  std::int32_t max_queue = 32;           // budgets whose max_queue is NULL
  bool enforcement_enabled = true;

  std::int32_t max_queue_of(const BudgetLimits& limits) const noexcept {
    return limits.max_queue == BudgetLimits::kFromSetting ? max_queue : limits.max_queue;
  }
  std::int32_t queue_timeout_of(const BudgetLimits& limits) const noexcept {
    return limits.queue_timeout_ms == BudgetLimits::kFromSetting ? queue_timeout_ms
                                                                 : limits.queue_timeout_ms;
  }
};

// True if a budget with these limits has a free slot while holding `active` sessions.
bool has_room(const BudgetLimits& limits, std::int32_t active) noexcept;

// A newcomer never overtakes a waiter: with logins waiting, it queues (or is refused)
// even if a slot is free at this instant.
Verdict decide(const BudgetLimits& limits, std::int32_t active, std::int32_t waiting,
               const Policy& policy) noexcept;

}  // namespace connbudget
