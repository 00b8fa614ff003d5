// SQL functions for incidents: pausing and resuming a budget's new logins
// (connbudget.pause(), connbudget.resume()), and ending the sessions a budget holds beyond
// what its settings allow (connbudget.terminate_excess()). They copy what they need from
// the ledger under a shared lock and release it before any SPI call or signal, and end
// sessions through pg_terminate_backend(), with its permission checks.
extern "C" {
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(connbudget_terminate_excess);
PG_FUNCTION_INFO_V1(connbudget_pause);
PG_FUNCTION_INFO_V1(connbudget_resume);
PGDLLEXPORT Datum connbudget_terminate_excess(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_pause(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_resume(PG_FUNCTION_ARGS);
}

#include <algorithm>
#include <span>

#include "pg/activity_query.hpp"
#include "pg/budgets_triggers.hpp"
#include "pg/result_row.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"

using namespace connbudget;
using namespace connbudget::pg;

namespace {

constexpr long kExitTimeoutMs = 5000;

// The candidates as pg_stat_activity shows them, in the order they are ended: idle
// sessions, then (if asked) those in an aborted transaction, which can only roll back,
// then those in a live transaction, then those running a query or in any other state;
// within each, the longest in that state first. Sessions not (yet) in pg_stat_activity
// are left out. The first eight columns are the function's result.
constexpr const char* kCandidatesQuery =
    "SELECT a.pid, a.state, a.state_change, a.application_name, a.usename::text, a.datname::text,"
    "       a.client_addr, a.backend_start, m.slot,"
    "       CASE a.state WHEN 'idle' THEN 0 WHEN 'idle in transaction (aborted)' THEN 1"
    "                    WHEN 'idle in transaction' THEN 2 ELSE 3 END AS rank"
    "  FROM unnest($1::pg_catalog.int4[], $2::pg_catalog.int4[]) AS m(pid, slot)"
    "  JOIN pg_catalog.pg_stat_activity a ON a.pid = m.pid"
    " ORDER BY rank, a.state_change NULLS LAST, a.pid";
constexpr int kResultColumns = 8;
constexpr int kSlotColumn = 9;
constexpr int kRankColumn = 10;

// A session the ledger counts for the budget: its slot (PGPROC number) and pid.
struct Member {
  std::int32_t slot;
  std::int32_t pid;
};

// The budget as the ledger had it, and its sessions other than the caller's.
struct Target {
  std::int32_t index = kNoBudget;
  FixedString<kNameMax> name;
  std::int32_t active = 0;
  std::int32_t limit = BudgetLimits::kUnlimited;
  std::span<Member> members;
  bool caller_counted = false;  // the calling session is one of the budget's
};

Target read_target(SharedState& state, const char* name) {
  Target target;
  auto* members = static_cast<Member*>(palloc(sizeof(Member) * ledger().sessions().size()));
  std::size_t count = 0;
  LWLockAcquire(&state.lock, LW_SHARED);
  target.index = ledger().find(name);
  if (target.index != kNoBudget) {
    target.name = ledger().budgets()[target.index].definition.name;
    target.active = ledger().budgets()[target.index].active;
    target.limit = ledger().limits_of(target.index).max_connections;
    const std::span<const SessionState> sessions = ledger().sessions();
    for (std::size_t slot = 0; slot < sessions.size(); ++slot) {
      const SessionState& s = sessions[slot];
      if (s.phase != SessionPhase::Active || s.budget != target.index) continue;
      if (s.pid == MyProcPid)
        target.caller_counted = true;
      else
        members[count++] = Member{static_cast<std::int32_t>(slot), s.pid};
    }
  }
  LWLockRelease(&state.lock);
  if (target.index == kNoBudget) report_unknown_budget(name);
  target.members = {members, count};
  return target;
}

// Under the lock: true while a session still holds its slot (until its backend exits).
bool still_active(const Member& member) {
  const SessionState& s = ledger().sessions()[member.slot];
  return s.phase == SessionPhase::Active && s.pid == member.pid;
}

// Under the lock: how many sessions the budget holds beyond its max_connections now, not
// counting those already ended that have not exited yet; 0 if it was deleted or is
// unlimited now.
std::int32_t excess_now(const Target& target, std::span<const Member> ended) {
  if (ledger().find(target.name.view()) != target.index) return 0;
  const std::int32_t limit = ledger().limits_of(target.index).max_connections;
  if (limit == BudgetLimits::kUnlimited) return 0;
  const auto exiting = static_cast<std::int32_t>(std::count_if(ended.begin(), ended.end(), still_active));
  return std::max(0, ledger().budgets()[target.index].active - limit - exiting);
}

enum class Recheck { End, Gone, Busy, Enough };

// Right before signalling a candidate: is it still needed, still the budget's session,
// and (if it must be idle) still outside a transaction?
Recheck recheck(SharedState& state, const Target& target, const Member& candidate, bool must_be_idle,
                std::span<const Member> ended) {
  LWLockAcquire(&state.lock, LW_SHARED);
  Recheck verdict = Recheck::End;
  if (excess_now(target, ended) == 0)
    verdict = Recheck::Enough;
  else if (!still_active(candidate) || ledger().sessions()[candidate.slot].budget != target.index)
    verdict = Recheck::Gone;
  else if (must_be_idle && backend_in_transaction(candidate.slot))
    verdict = Recheck::Busy;
  LWLockRelease(&state.lock);
  return verdict;
}

// Waits until the ended sessions have given back their slots, so that on return the
// budget's count is the new one and waiting logins have been handed what was freed.
void wait_for_exit(SharedState& state, std::span<const Member> ended) {
  const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kExitTimeoutMs);
  for (;;) {
    LWLockAcquire(&state.lock, LW_SHARED);
    const auto remaining = std::count_if(ended.begin(), ended.end(), still_active);
    LWLockRelease(&state.lock);
    if (remaining == 0) return;
    if (GetCurrentTimestamp() >= deadline) {
      ereport(WARNING, (errmsg("%d of the sessions ended have not exited after %ld ms", static_cast<int>(remaining),
                               kExitTimeoutMs),
                        errdetail("Their slots are given back when they exit.")));
      return;
    }
    WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, wait_event(Wait::TerminatedExit));
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
}

// Says why there is nothing to end; false if there is.
bool report_nothing_to_end(const Target& target) {
  if (target.limit == BudgetLimits::kUnlimited) {
    ereport(NOTICE, (errmsg("connection budget \"%s\" has no connection limit; nothing to end", target.name.c_str()),
                     target.index == kExemptBudget
                         ? errdetail("Superusers are counted under \"exempt\" and never limited.")
                         : errhint("Its limit is connbudget.default_max_connections.")));
    return true;
  }
  if (target.active <= target.limit) {
    ereport(NOTICE, (errmsg("connection budget \"%s\" holds %d of its %d connections; nothing to end",
                            target.name.c_str(), target.active, target.limit)));
    return true;
  }
  return false;
}

// Why sessions beyond the limit were left alone.
struct Shortfall {
  int busy = 0;    // inside a transaction or running a query (include_in_transaction is off)
  int unseen = 0;  // not in pg_stat_activity yet (still logging in)
};

void report_shortfall(const Target& target, std::int32_t remaining, const Shortfall& why,
                      bool include_in_transaction) {
  StringInfoData detail;
  initStringInfo(&detail);
  if (why.busy > 0)
    appendStringInfo(&detail, why.busy == 1 ? "%d session is inside a transaction or running a query. "
                                            : "%d sessions are inside a transaction or running a query. ",
                     why.busy);
  if (why.unseen > 0)
    appendStringInfo(&detail, why.unseen == 1 ? "%d session is not in pg_stat_activity yet. "
                                              : "%d sessions are not in pg_stat_activity yet. ",
                     why.unseen);
  if (target.caller_counted) appendStringInfoString(&detail, "This session is one of the budget's. ");
  if (detail.len > 0) detail.data[--detail.len] = '\0';
  ereport(NOTICE,
          (errmsg_plural("connection budget \"%s\" still holds %d session beyond its max_connections (%d)",
                         "connection budget \"%s\" still holds %d sessions beyond its max_connections (%d)",
                         remaining, target.name.c_str(), remaining, target.limit),
           detail.len > 0 ? errdetail_internal("%s", detail.data) : 0,
           why.busy > 0 && !include_in_transaction
               ? errhint("Call connbudget.terminate_excess('%s', include_in_transaction => true) to end them too.",
                         target.name.c_str())
               : 0));
}

}  // namespace

// terminate_excess(budget, include_in_transaction DEFAULT false): ends the sessions a
// budget holds beyond its max_connections, longest idle first, never one inside a
// transaction unless asked; one row per session ended.
Datum connbudget_terminate_excess(PG_FUNCTION_ARGS) {
  SharedState& state = require_shared_state();
  const char* name = text_to_cstring(PG_GETARG_TEXT_PP(0));
  const bool include_in_transaction = PG_GETARG_BOOL(1);
  InitMaterializedSRF(fcinfo, 0);
  if (budgets_changed_in_this_transaction())
    ereport(WARNING, (errmsg("connbudget.terminate_excess() does not see this transaction's changes to connbudget.budgets"),
                      errdetail("They are loaded when the transaction commits.")));

  const Target target = read_target(state, name);
  if (report_nothing_to_end(target)) return static_cast<Datum>(0);

  // Outlives SPI_finish, so allocated before SPI_connect.
  auto* ended = static_cast<Member*>(palloc(sizeof(Member) * std::max<std::size_t>(target.members.size(), 1)));
  std::size_t ended_count = 0;
  auto* seen = static_cast<bool*>(palloc0(sizeof(bool) * ledger().sessions().size()));  // by slot
  Shortfall why;

  SPI_connect();
  query_activity(kCandidatesQuery, int4_array(std::span<const Member>(target.members), &Member::pid),
                 int4_array(std::span<const Member>(target.members), &Member::slot));
  for (uint64 row = 0; row < SPI_processed; ++row) {
    HeapTuple tuple = SPI_tuptable->vals[row];
    TupleDesc desc = SPI_tuptable->tupdesc;
    bool isnull = false;
    const Member candidate{DatumGetInt32(SPI_getbinval(tuple, desc, kSlotColumn, &isnull)),
                           DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull))};
    const bool idle = DatumGetInt32(SPI_getbinval(tuple, desc, kRankColumn, &isnull)) == 0;
    seen[candidate.slot] = true;
    if (!idle && !include_in_transaction) {
      ++why.busy;
      continue;
    }
    const Recheck verdict = recheck(state, target, candidate, idle && !include_in_transaction,
                                    {ended, ended_count});
    if (verdict == Recheck::Enough) break;
    if (verdict == Recheck::Busy) ++why.busy;
    if (verdict != Recheck::End) continue;
    // False if it is no longer a backend (pg_terminate_backend warns).
    if (!DatumGetBool(DirectFunctionCall2(pg_terminate_backend, Int32GetDatum(candidate.pid), Int64GetDatum(0))))
      continue;
    ended[ended_count++] = candidate;
    ResultRow<kResultColumns> result;
    for (int column = 1; column <= kResultColumns; ++column) {
      const Datum value = SPI_getbinval(tuple, desc, column, &isnull);
      isnull ? result.null() : result.value(value);
    }
    result.emit(fcinfo);
  }
  SPI_finish();

  wait_for_exit(state, {ended, ended_count});
  LWLockAcquire(&state.lock, LW_SHARED);
  const std::int32_t remaining = excess_now(target, {ended, ended_count});
  for (const Member& member : target.members) why.unseen += !seen[member.slot] && still_active(member);
  LWLockRelease(&state.lock);
  if (remaining > 0) report_shortfall(target, remaining, why, include_in_transaction);
  return static_cast<Datum>(0);
}

namespace {

// Pauses or resumes the budget named by the first argument; returns whether it was paused.
Datum set_paused(FunctionCallInfo fcinfo, bool paused) {
  SharedState& state = require_shared_state();
  const char* name = text_to_cstring(PG_GETARG_TEXT_PP(0));  // STRICT
  const TimestampTz now = GetCurrentTimestamp();
  Wakeups wakeups(wakeup_buffer());
  LWLockAcquire(&state.lock, LW_EXCLUSIVE);
  const std::int32_t budget = ledger().find(name);
  const bool changeable = budget != kNoBudget && budget != kExemptBudget;
  const bool was_paused = changeable && ledger().budgets()[budget].paused;
  const OnFull on_full = changeable ? ledger().limits_of(budget).on_full : OnFull::Reject;
  const std::int32_t active = changeable ? ledger().budgets()[budget].active : 0;
  if (changeable) ledger().set_paused(budget, paused, now, wakeups);
  LWLockRelease(&state.lock);
  wake_sessions(wakeups);

  if (budget == kNoBudget) report_unknown_budget(name);
  if (budget == kExemptBudget)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("connection budget \"exempt\" cannot be paused"),
                    errdetail("Superusers are never limited while connbudget.exempt_superusers is on.")));
  if (paused && !was_paused)
    ereport(NOTICE, (errmsg("connection budget \"%s\" is paused: new logins %s; its %d sessions continue",
                            name, on_full == OnFull::Queue ? "wait in its queue" : "are refused", active),
                     errhint("SELECT connbudget.resume('%s') lets them in again.", name)));
  PG_RETURN_BOOL(was_paused);
}

}  // namespace

// pause(budget): new logins of the budget wait (or are refused) until resume(budget).
Datum connbudget_pause(PG_FUNCTION_ARGS) { return set_paused(fcinfo, true); }

// resume(budget): lets the logins of a paused budget in again, waiters first.
Datum connbudget_resume(PG_FUNCTION_ARGS) { return set_paused(fcinfo, false); }
