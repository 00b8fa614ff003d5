// The login path. Runs in each new backend during authentication (ClientAuthentication
// hook): classifies the login, then books a slot or refuses it with FATAL 53300.
//
// Rules: no I/O and no waiting on the worker; catalog lookups happen before the lock; one
// exclusive acquisition of our LWLock, held only for classify + admit (no ereport, no
// allocation inside); the release callback is registered before a slot is booked, so every
// way out of the process (logout, later FATAL, termination) gives the slot back.
extern "C" {
#include "postgres.h"

#include "libpq/auth.h"
#include "miscadmin.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/timestamp.h"
}

#include <bit>
#include <chrono>

#include "pg/login_attributes.hpp"
#include "pg/login_hook.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"

namespace connbudget::pg {
namespace {

ClientAuthentication_hook_type previous_hook = nullptr;
int booked_session = -1;  // the session slot this backend booked, or -1

int my_session_slot() {
#if PG_VERSION_NUM >= 170000
  return MyProcNumber;
#else
  return MyProc->pgprocno;
#endif
}

void release_session(int, Datum) {
  SharedState* state = shared_state();
  if (booked_session < 0 || !state) return;
  LWLockAcquire(state->lock, LW_EXCLUSIVE);
  ledger().release(booked_session);
  LWLockRelease(state->lock);
  booked_session = -1;
}

using Clock = std::chrono::steady_clock;

void record_cost(SharedState& state, Clock::time_point started) {
  const uint64 ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count();
  pg_atomic_fetch_add_u64(&state.logins_timed, 1);
  pg_atomic_fetch_add_u64(&state.login_ns_total, ns);
  const int bucket = std::min<int>(kLoginCostBuckets - 1, ns ? std::bit_width(ns) - 1 : 0);
  pg_atomic_fetch_add_u64(&state.login_ns_histogram[bucket], 1);
  uint64 max = pg_atomic_read_u64(&state.login_ns_max);
  while (ns > max && !pg_atomic_compare_exchange_u64(&state.login_ns_max, &max, ns)) {
  }
}

// What the messages need, copied out from under the lock.
struct Outcome {
  Admission admission;
  FixedString<kNameMax> budget;
  Mode mode = Mode::Enforce;
};

Outcome admit(SharedState& state, Login& login) {
  const BudgetLimits default_limits = default_budget_limits();
  const TimestampTz now = GetCurrentTimestamp();
  // Read without the lock, so the usual case takes it once; rechecked under it.
  if (ledger().header().uses_role_groups) login.add_groups();
  for (;;) {
    LWLockAcquire(state.lock, LW_EXCLUSIVE);
    Ledger& books = ledger();
    if (books.header().uses_role_groups && !login.has_groups) {
      LWLockRelease(state.lock);  // the configuration changed meanwhile
      login.add_groups();
      continue;
    }
    Outcome outcome;
    outcome.admission = books.admit(my_session_slot(), books.classify(login.attributes, login.exempt),
                                    login.attributes, MyProcPid, default_limits, enabled, now);
    if (outcome.admission.budget != kNoBudget) {
      const BudgetState& budget = books.budgets()[outcome.admission.budget];
      outcome.budget = budget.definition.name;
      outcome.mode = books.limits_of(outcome.admission.budget, default_limits).mode;
    }
    if (outcome.admission.verdict != Verdict::Refuse && outcome.admission.budget != kNoBudget)
      booked_session = my_session_slot();
    LWLockRelease(state.lock);
    return outcome;
  }
}

const char* refusal_hint(const Outcome& outcome) {
  if (outcome.admission.budget == kDefaultBudget)
    return "Logins that match no budget share the default budget: raise "
           "connbudget.default_max_connections, or add a budget for this application to "
           "connbudget.budgets.";
  return "Retry when sessions of this budget have ended, or raise its max_connections in "
         "connbudget.budgets.";
}

void report(const Outcome& outcome, const LoginAttributes& login) {
  const Admission& a = outcome.admission;
  if (a.verdict == Verdict::Refuse)
    ereport(FATAL,
            (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
             errmsg("connection budget \"%s\" is full", outcome.budget.c_str()),
             errdetail("%d of %d connections in use (application_name \"%.*s\", role \"%.*s\", "
                       "database \"%.*s\").",
                       a.active, a.limit, static_cast<int>(login.application_name.size()),
                       login.application_name.data(), static_cast<int>(login.role_name.size()),
                       login.role_name.data(), static_cast<int>(login.database_name.size()),
                       login.database_name.data()),
             errhint("%s", refusal_hint(outcome))));
  if (a.verdict == Verdict::AdmitOverLimit && outcome.mode == Mode::Monitor)
    ereport(LOG, (errmsg("connection budget \"%s\" would have refused this login (monitor mode)",
                         outcome.budget.c_str()),
                  errdetail("%d of %d connections in use.", a.active, a.limit)));
}

void on_client_authentication(Port* port, int status) {
  if (previous_hook) previous_hook(port, status);
  SharedState* state = shared_state();
  // Only successful logins of ordinary backends count; walsenders never do.
  if (status != STATUS_OK || am_walsender || !state || MyBackendType != B_BACKEND) return;

  const Clock::time_point started = Clock::now();
  Login login = login_from_port(*port);
  static bool release_registered = false;
  if (!release_registered) {
    before_shmem_exit(release_session, 0);
    release_registered = true;
  }
  const Outcome outcome = admit(*state, login);
  record_cost(*state, started);
  report(outcome, login.attributes);
}

}  // namespace

void install_login_hook() {
  previous_hook = ClientAuthentication_hook;
  ClientAuthentication_hook = on_client_authentication;
}

}  // namespace connbudget::pg
