// The admission decision for one login: given its budget's limits, how many sessions the
// budget holds and how many logins wait for it, and whether the server has room for one
// more session, or at least one more waiting login, without touching the backends other
// budgets are entitled to: admit it, admit it although enforcement would not (monitor
// mode or connbudget.enabled = off), queue it, or refuse it. A paused budget admits nobody
// new. Pure; the ledger applies the verdict.
#pragma once

#include <cstdint>

#include "core/budget.hpp"

namespace connbudget {

enum class Verdict : std::uint8_t {
  Admit,            // within the budget
  AdmitOverLimit,   // enforcement would not admit it, but the budget only monitors or it is off
  Queue,            // the budget is full (or others wait): wait for a slot
  Refuse,           // the budget is full and refuses
  RefuseQueueFull,  // the budget is full and so is its queue
  RefuseReserved,   // what the server has left is reserved for other budgets
  RefusePaused,     // an administrator paused the budget, and it refuses rather than queues
  RefuseServerFull,  // the server has no backend left for an ordinary login at all
  RefuseMismatch,    // it claimed another role's application_name (connbudget.on_mismatch = refuse)
};

// True for the verdicts that turn the login away.
constexpr bool refuses(Verdict verdict) noexcept {
  return verdict == Verdict::Refuse || verdict == Verdict::RefuseQueueFull ||
         verdict == Verdict::RefuseReserved || verdict == Verdict::RefusePaused ||
         verdict == Verdict::RefuseServerFull || verdict == Verdict::RefuseMismatch;
}

// What a login gets that claims a budget's application_name with a role the budget is not
// for (connbudget.on_mismatch): the rows after it, as if it did not match; or a refusal.
enum class OnMismatch : std::uint8_t { FallThrough, Refuse };

// What the settings say for everything a budget row leaves to them.
struct Policy {
  BudgetLimits default_limits;           // the implicit default budget
  std::int32_t queue_timeout_ms = 5000;  // budgets whose queue_timeout is NULL
  std::int32_t max_queue = 32;           // budgets whose max_queue is NULL
  bool enforcement_enabled = true;
  // Backends the server gives ordinary logins (max_connections minus those kept for
  // superusers); every counted session and every waiting login holds one.
  std::int32_t capacity = 100;
  // Of those, how many only logins waiting for shared capacity may use: sessions beyond
  // their budgets' reservations never take them (connbudget.waiting_room).
  std::int32_t waiting_room = 0;
  OnMismatch on_mismatch = OnMismatch::FallThrough;
  // How long a login of a full budget that refuses waits for a slot before it is refused
  // (connbudget.reject_grace; 0: refused at once). A pool that closes a connection and
  // logs in again at once finds its old session still counted until that backend has
  // exited; the grace lets the new login take its slot.
  std::int32_t reject_grace_ms = 0;

  // True if a login that claims another role's application_name is refused in the name
  // of the budget it claimed (with enforcement off it is admitted like any other).
  bool refuses_mismatches() const noexcept { return on_mismatch == OnMismatch::Refuse && enforcement_enabled; }
  std::int32_t max_queue_of(const BudgetLimits& limits) const noexcept {
    return limits.max_queue == BudgetLimits::kFromSetting ? max_queue : limits.max_queue;
  }
  // How long a queued login of a budget with these limits waits at most (for a budget
  // that refuses: the grace).
  std::int32_t queue_timeout_of(const BudgetLimits& limits) const noexcept {
    if (limits.on_full == OnFull::Reject) return reject_grace_ms;
    return limits.queue_timeout_ms == BudgetLimits::kFromSetting ? queue_timeout_ms
                                                                 : limits.queue_timeout_ms;
  }
};

// A budget, and the server's room for one more login of it, at the moment of a login.
struct Pressure {
  std::int32_t active = 0;   // sessions the budget holds
  std::int32_t waiting = 0;  // logins waiting for it
  // True if one more session of this budget fits the capacity less the waiting room
  // beside the backends other budgets are entitled to and do not use (always true while
  // the budget is below its own entitlement).
  bool session_room = true;
  // True if one more backend of this budget (a session or a waiting login) is free beside
  // the backends other budgets are entitled to and do not use.
  bool backend_room = true;
  // Without backend room: true if the server has no backend left for it even ignoring
  // other budgets' entitlements.
  bool server_full = false;
  // True if an administrator paused the budget (connbudget.pause()): it takes no new
  // session whatever its room, in monitor mode too; only connbudget.enabled = off admits.
  bool paused = false;
};

// True if a budget with these limits has a free slot while holding `active` sessions.
bool has_room(const BudgetLimits& limits, std::int32_t active) noexcept;

// A newcomer never overtakes a waiter: with logins waiting, it queues (or is refused)
// even if a slot is free at this instant. A full budget that refuses queues its login
// for the grace (Policy::reject_grace_ms), where the server has a backend for it and
// max_queue allows. A waiting login holds a backend too, so it may
// queue only where the server has a backend for it; with no room for one more session,
// a queueing budget's login waits for shared capacity.
Verdict decide(const BudgetLimits& limits, const Pressure& pressure, const Policy& policy) noexcept;

}  // namespace connbudget
