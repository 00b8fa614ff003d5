// SQL functions connbudget.match(), connbudget.explain(), connbudget.reload() and
// connbudget.reset_stats().
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(connbudget_match);
PG_FUNCTION_INFO_V1(connbudget_explain);
PG_FUNCTION_INFO_V1(connbudget_reload);
PG_FUNCTION_INFO_V1(connbudget_reset_stats);
PGDLLEXPORT Datum connbudget_match(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_explain(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_reload(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_reset_stats(PG_FUNCTION_ARGS);
}

#include "pg/budgets_triggers.hpp"
#include "pg/login_attributes.hpp"
#include "pg/result_row.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"

using namespace connbudget;
using namespace connbudget::pg;

namespace {

constexpr long kReloadTimeoutMs = 30000;

const char* text_arg(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

// What a login described by the arguments (application_name, role_name, database_name,
// client_addr) gets now: its budget's name and the admission it would be given.
struct Assessment {
  FixedString<kNameMax> budget;
  Admission admission;
  FixedString<kNameMax> would_displace;  // the budget of the waiter that would give its place,
  Verdict then = Verdict::Admit;           // and the verdict once it has
};

Assessment assess(FunctionCallInfo fcinfo) {
  SharedState& state = require_shared_state();
  Login login = login_from_values(text_arg(fcinfo, 0), text_arg(fcinfo, 1), text_arg(fcinfo, 2),
                                  PG_ARGISNULL(3) ? nullptr : PG_GETARG_INET_PP(3));
  login.add_groups();  // catalog lookups: before the lock
  const Policy policy = current_policy();
  // Such a login would first take a backend of its own.
  const ServerBackends free(login.kept_free, 1);
  Assessment assessment;
  LWLockAcquire(&state.lock, LW_SHARED);
  const Classification classification = ledger().classify(login.attributes, login.exempt);
  // As Ledger::admit decides it: a refused claim in the name of the budget it claimed.
  const bool refused_claim = classification.mismatched != kNoBudget && policy.refuses_mismatches();
  const std::int32_t budget = refused_claim ? classification.mismatched : classification.budget;
  assessment.budget = ledger().budgets()[budget].definition.name;
  assessment.admission = ledger().evaluate(budget, policy, free);
  if (refused_claim) assessment.admission.verdict = Verdict::RefuseMismatch;
  assessment.admission.mismatched = classification.mismatched;
  const Verdict verdict = assessment.admission.verdict;
  if (verdict == Verdict::RefuseReserved || verdict == Verdict::RefuseServerFull)
    if (const std::int32_t victim = ledger().victim_for(budget, policy, free); victim != kNoSession) {
      const BudgetState& state_of_budget = ledger().budgets()[budget];
      assessment.would_displace = ledger().budgets()[ledger().sessions()[victim].budget].definition.name;
      assessment.then = decide(ledger().limits_of(budget),
                               Pressure{.active = state_of_budget.active, .waiting = state_of_budget.waiting},
                               policy);
    }
  LWLockRelease(&state.lock);
  return assessment;
}

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::Admit: return "admit";
    case Verdict::AdmitOverLimit: return "admit (not enforced)";
    case Verdict::Queue: return "queue";
    case Verdict::Refuse: return "refuse: budget full";
    case Verdict::RefuseQueueFull: return "refuse: queue full";
    case Verdict::RefuseReserved: return "refuse: reserved for other budgets";
    case Verdict::RefusePaused: return "refuse: budget paused";
    case Verdict::RefuseServerFull: return "refuse: server full";
    case Verdict::RefuseMismatch: return "refuse: another role's application_name";
  }
  return "?";
}

const char* verdict_reason(Verdict verdict) {
  switch (verdict) {
    case Verdict::Admit: return "the budget and the server have room";
    case Verdict::AdmitOverLimit:
      return "enforcement would refuse or queue it, but the budget is in monitor mode or connbudget.enabled is off";
    case Verdict::Queue:
      return "the budget is full, paused, or others wait for it: the login would wait its turn";
    case Verdict::Refuse: return "the budget is full and refuses beyond max_connections";
    case Verdict::RefuseQueueFull: return "the budget is full and max_queue logins already wait";
    case Verdict::RefuseReserved: return "what the server has left is reserved for other budgets";
    case Verdict::RefusePaused: return "an administrator paused the budget (connbudget.resume() lets logins in)";
    case Verdict::RefuseMismatch:
      return "the budget's application_name belongs to its role_name, and this role is not it "
             "(connbudget.on_mismatch = refuse)";
    case Verdict::RefuseServerFull:
      return "every connection of the server for ordinary logins is in use (sessions, waiting logins, and logins "
             "still starting or ending)";
  }
  return "?";
}

}  // namespace

// match(application_name, role_name, database_name, client_addr): the budget such a
// login would get now. Role membership and superuser status come from the catalogs.
Datum connbudget_match(PG_FUNCTION_ARGS) {
  PG_RETURN_TEXT_P(cstring_to_text(assess(fcinfo).budget.c_str()));
}

// explain(application_name, role_name, database_name, client_addr): what such a login
// would get now, why, and the numbers behind it.
Datum connbudget_explain(PG_FUNCTION_ARGS) {
  const Assessment assessment = assess(fcinfo);
  const Admission& a = assessment.admission;
  InitMaterializedSRF(fcinfo, 0);
  ResultRow<10> row;
  row.text(assessment.budget.view());
  if (a.verdict == Verdict::Queue && a.grace) {
    row.text(verdict_name(Verdict::Refuse));
    row.text(psprintf("%s, once connbudget.reject_grace (%d ms) has passed without a session of it ending",
                      verdict_reason(Verdict::Refuse), a.queue_timeout_ms));
  } else if (assessment.would_displace.empty()) {
    row.text(verdict_name(a.verdict));
    row.text(verdict_reason(a.verdict));
  } else {
    row.text(verdict_name(assessment.then));
    row.text(psprintf("the server is full, but the youngest waiting login of budget \"%s\" (lower priority) "
                      "would give its place",
                      assessment.would_displace.c_str()));
  }
  row.integer(a.active);
  row.integer(a.waiting);
  a.limit == BudgetLimits::kUnlimited ? row.null() : row.integer(a.limit);
  row.integer(a.reserved);
  row.integer(a.capacity);
  row.integer(a.capacity - a.free);
  row.integer(a.reserved_for_others);
  row.emit(fcinfo);
  return static_cast<Datum>(0);
}

// reload(): has the worker load the budgets now; returns the generation then live.
Datum connbudget_reload(PG_FUNCTION_ARGS) {
  SharedState& state = require_shared_state();
  if (budgets_changed_in_this_transaction())
    ereport(WARNING, (errmsg("connbudget.reload() does not see this transaction's changes to connbudget.budgets"),
                      errdetail("They are loaded when the transaction commits.")));
  const uint64 request = pg_atomic_add_fetch_u64(&state.reload_requests, 1);
  wake_worker();
  const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kReloadTimeoutMs);
  for (;;) {
    LWLockAcquire(&state.lock, LW_SHARED);
    const bool answered = state.reloads_answered >= request;
    const uint64 generation = state.answered_generation;
    char error[kErrorLength];
    strlcpy(error, state.answered_error, sizeof error);
    const bool worker_running = state.worker_pid != 0;
    LWLockRelease(&state.lock);

    if (answered && error[0] != '\0')
      ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                      errmsg("could not load budgets: %s", error),
                      errdetail("The budgets of generation %llu stay in force.",
                                static_cast<unsigned long long>(generation))));
    if (answered) PG_RETURN_INT64(static_cast<int64>(generation));
    if (GetCurrentTimestamp() >= deadline)
      ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                      errmsg("the pg_connbudget worker did not load the budgets within %ld ms",
                             kReloadTimeoutMs),
                      worker_running ? errhint("The worker is busy; see the server log.")
                                     : errhint("The worker is not running; see connbudget.worker and the server log.")));
    WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, wait_event(Wait::Reload));
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
}

// reset_stats(budget DEFAULT NULL): zeroes cumulative counters of one budget or all.
Datum connbudget_reset_stats(PG_FUNCTION_ARGS) {
  SharedState& state = require_shared_state();
  const char* name = text_arg(fcinfo, 0);
  const TimestampTz now = GetCurrentTimestamp();
  LWLockAcquire(&state.lock, LW_EXCLUSIVE);
  const bool found = ledger().reset_stats(name ? std::optional<std::string_view>(name) : std::nullopt, now);
  if (!name) {
    state.login_checks.reset();
    state.admission_cost.reset();
    state.handoff.reset();
    state.latency_reset = now;
  }
  LWLockRelease(&state.lock);
  if (!found) report_unknown_budget(name);
  PG_RETURN_VOID();
}

