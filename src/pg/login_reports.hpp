// What a login that pg_connbudget refuses, ends, or only notes (monitor mode) is told, and
// what the server log gets of it: every message of the login path. The server log gets
// at most one line per budget per second (the ledger's LogLimiter decides under the lock;
// an emit_log_hook keeps a held-back line out of the log; the worker summarises them), the
// client always gets its message.
#pragma once

extern "C" {
#include "postgres.h"
}

#include "core/ledger.hpp"

namespace connbudget::pg {

// What the messages need of a login's admission, copied out from under the lock.
struct Outcome {
  Admission admission;
  FixedString<kNameMax> budget;
  Mode mode = Mode::Enforce;
  OnFull on_full = OnFull::Reject;
  // With admission.mismatched: that budget's name and the role (or group) it is for.
  FixedString<kNameMax> mismatched_budget;
  FixedString<kNameMax> mismatched_role;
  bool mismatched_role_is_group = false;
};

// Installs the emit_log_hook that keeps held-back lines out of the server log.
void install_log_limiter();

// The LOG line of a login that claimed another role's application_name and was matched
// against the rows after it (rate-limited); nothing for any other login.
void report_mismatch(const Outcome& outcome, const LoginAttributes& login);

// FATAL for a refused login, or the LOG line of monitor mode's would-be verdict (which
// returns); returns at once for a login admitted within its budget.
void report(const Outcome& outcome, const LoginAttributes& login);

// FATAL for a waiting login that gave its place after waited_ms: to a login of budget
// displaced_by (empty: to raised reservations).
[[noreturn]] void report_displaced(const Outcome& queued, const LoginAttributes& login, long waited_ms,
                                   const FixedString<kNameMax>& displaced_by, const LogLimiter::Decision& log);

// FATAL for a waiting login that left the queue without a slot after waited_ms; capped:
// its wait was cut short by authentication_timeout.
[[noreturn]] void report_departure(const Outcome& queued, const LoginAttributes& login, Departure why, long waited_ms,
                                   bool capped);

}  // namespace connbudget::pg
