// Reads connbudget.budgets (SPI, in the worker's own transaction), validates every row with
// the core's rules and publishes the result to the ledger under the exclusive lock. A load
// that fails changes nothing: the last good budgets stay, and the reason is shown in
// connbudget.worker and logged once. An extension that is absent from connbudget.database
// (never created, or dropped) means no budgets: that is published, and logged once.
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <cstdio>
#include <new>

#include "pg/budget_loader.hpp"
#include "pg/budget_row.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {
namespace {

// Why the current load failed (empty: it did not); static so that it survives a longjmp.
char load_error[kErrorLength];
// The failure last logged, so that a persisting one is logged once.
char logged_error[kErrorLength];

// Worker-local scratch for Ledger::reconfigure, allocated once, never under the lock.
std::span<std::int32_t> worker_array(std::size_t entries) {
  auto* memory = static_cast<std::int32_t*>(MemoryContextAllocHuge(TopMemoryContext, sizeof(std::int32_t) * entries));
  return {memory, entries};
}

// Queued logins cannot wait longer than authentication_timeout: say so when a budget asks.
void warn_about_capped_timeouts(std::span<const BudgetDefinition> budgets) {
  const Policy policy = current_policy();
  const long cap_ms = AuthenticationTimeout * 1000L;
  auto warn = [&](const char* name, const BudgetLimits& limits) {
    if (limits.on_full != OnFull::Queue || policy.queue_timeout_of(limits) <= cap_ms) return;
    ereport(WARNING, (errmsg("queue_timeout of connection budget \"%s\" (%d ms) exceeds authentication_timeout (%d s)",
                             name, policy.queue_timeout_of(limits), AuthenticationTimeout),
                      errdetail("Its logins wait at most %d s, less a moment to tell the client why.",
                                AuthenticationTimeout)));
  };
  for (const BudgetDefinition& budget : budgets) warn(budget.name.c_str(), budget.limits);
  warn("default", policy.default_limits);
}

// A waiting room as large as what the reservations leave would leave no shared session;
// say so once per change of setting or budgets.
void warn_about_waiting_room(std::span<const BudgetDefinition> budgets, const ReconfigureResult& result,
                             const Policy& policy) {
  static int warned_for = -1;
  int reserved = -result.reservation_shortfall;
  for (const BudgetDefinition& budget : budgets) reserved += budget.limits.reserved;
  const bool crowded = policy.waiting_room > 0 && policy.waiting_room + reserved >= policy.capacity;
  if (crowded && (result.status == ReconfigureResult::Status::Applied || warned_for != policy.waiting_room))
    ereport(WARNING, (errmsg("pg_connbudget: connbudget.waiting_room (%d) leaves no shared sessions",
                             policy.waiting_room),
                      errdetail("The server's capacity is %d, and the budgets reserve %d of it.", policy.capacity,
                                reserved),
                      errhint("Lower connbudget.waiting_room or the reservations, or raise max_connections.")));
  warned_for = crowded ? policy.waiting_room : -1;
  static int warned_too_large = -1;
  if (waiting_room > policy.capacity && warned_too_large != waiting_room)
    ereport(WARNING, (errmsg("pg_connbudget: connbudget.waiting_room (%d) is larger than the server's capacity (%d) "
                             "and counts as %d", waiting_room, policy.capacity, policy.capacity),
                      errdetail("The server's capacity is %s.", describe_connection_capacity())));
  warned_too_large = waiting_room > policy.capacity ? waiting_room : -1;
}

void publish(std::span<const BudgetDefinition> budgets) {
  SharedState& state = *shared_state();
  static const std::span<std::int32_t> scratch = worker_array(Ledger::scratch_entries(max_budgets, MaxBackends));
  static const std::span<MatchIndex::BuildEntry> index_scratch = [] {
    auto* memory = static_cast<MatchIndex::BuildEntry*>(
        MemoryContextAllocHuge(TopMemoryContext, sizeof(MatchIndex::BuildEntry) * static_cast<std::size_t>(max_budgets)));
    return std::span<MatchIndex::BuildEntry>(memory, static_cast<std::size_t>(max_budgets));
  }();
  Wakeups wakeups(wakeup_buffer());
  const Policy policy = current_policy();
  // The match index, compiled before the lock into the block no login reads (this worker
  // is the only one that writes it), goes live with the budgets it was built from.
  const Ledger::PreparedIndex index = ledger().prepare_index(budgets, index_scratch);
  const TimestampTz now = GetCurrentTimestamp();
  LWLockAcquire(&state.lock, LW_EXCLUSIVE);
  const ReconfigureResult result = ledger().reconfigure(budgets, policy, scratch, now, wakeups);
  const bool loaded = result.status == ReconfigureResult::Status::Applied ||
                      result.status == ReconfigureResult::Status::Unchanged;
  if (loaded) ledger().publish_index(index, budgets);
  const int previous_shortfall = state.reservation_shortfall;
  if (loaded) {
    state.budgets_loaded = static_cast<int>(budgets.size());
    state.loaded_at = now;
    state.reservation_shortfall = result.reservation_shortfall;
  }
  const uint64 generation = ledger().header().generation;
  LWLockRelease(&state.lock);
  wake_sessions(wakeups);

  if (result.status == ReconfigureResult::Status::DuplicateName)
    std::snprintf(load_error, sizeof load_error, "budget name \"%.*s\" appears more than once",
                  static_cast<int>(result.duplicate.size()), result.duplicate.data());
  if (result.status == ReconfigureResult::Status::TooManyBudgets)
    std::snprintf(load_error, sizeof load_error, "%zu budgets do not fit connbudget.max_budgets (%d)",
                  budgets.size(), max_budgets);
  if (result.status == ReconfigureResult::Status::Applied) {
    ereport(LOG, (errmsg("pg_connbudget: loaded %zu budgets from database \"%s\" (generation %llu)",
                         budgets.size(), database, static_cast<unsigned long long>(generation))));
    warn_about_capped_timeouts(budgets);
  }
  if (result.moved_to_default > 0)
    ereport(LOG, (errmsg("pg_connbudget: %d sessions of deleted budgets are now counted under \"default\"",
                         result.moved_to_default)));
  if (loaded && result.reservation_shortfall > 0 &&
      (result.status == ReconfigureResult::Status::Applied || result.reservation_shortfall != previous_shortfall))
    ereport(WARNING, (errmsg("pg_connbudget: the budgets reserve %d connections more than the server's %d can honour",
                             result.reservation_shortfall, policy.capacity),
                      errdetail("Reservations are honoured in match order; the last ones are cut short. "
                                "The server's capacity is %s.", describe_connection_capacity()),
                      errhint("Lower reserved in connbudget.budgets, or raise max_connections.")));
  warn_about_waiting_room(budgets, result, policy);
  // Said when a load changed the budgets, or made waiters give their place; not again on
  // every reload while the same sessions are still there.
  if (result.displaced > 0 || (result.overcommitted > 0 && result.status == ReconfigureResult::Status::Applied))
    ereport(WARNING, (errmsg("pg_connbudget: %s found the server full: %d waiting logins gave their place, %d "
                             "connections are still in use beyond what the budgets' entitlements leave",
                             result.status == ReconfigureResult::Status::Applied ? "the new budgets"
                                                                                 : "the budgets' entitlements",
                             result.displaced, result.overcommitted),
                      errdetail("Sessions are never ended; the entitlements are fully available again as sessions end.")));
  if (result.corrected > 0)
    ereport(WARNING, (errmsg("pg_connbudget: corrected the session counts of %d budgets", result.corrected),
                      errdetail("The counts disagreed with the sessions holding slots; please report this.")));
}

// Runs inside the load's transaction; raises ERROR for a row that is not a valid budget.
void read_and_publish() {
  SPI_connect();
  if (SPI_execute("SELECT * FROM connbudget.budgets ORDER BY position, name", true, 0) != SPI_OK_SELECT)
    ereport(ERROR, (errmsg("could not read connbudget.budgets")));
  const uint64 rows = SPI_processed;
  if (rows > static_cast<uint64>(max_budgets)) {
    std::snprintf(load_error, sizeof load_error,
                  "connbudget.budgets has %llu rows, more than connbudget.max_budgets (%d)",
                  static_cast<unsigned long long>(rows), max_budgets);
  } else {
    auto* budgets = static_cast<BudgetDefinition*>(palloc(sizeof(BudgetDefinition) * (rows + 1)));
    for (uint64 i = 0; i < rows; ++i) {
      new (&budgets[i]) BudgetDefinition();
      read_budget(SPI_tuptable->tupdesc, SPI_tuptable->vals[i], budgets[i]);
    }
    publish({budgets, static_cast<std::size_t>(rows)});
  }
  SPI_finish();
}

void record_outcome(std::uint64_t answering) {
  SharedState& state = *shared_state();
  const TimestampTz now = GetCurrentTimestamp();
  LWLockAcquire(&state.lock, LW_EXCLUSIVE);
  if (load_error[0] != '\0' && strcmp(state.last_error, load_error) != 0) state.last_error_at = now;
  strlcpy(state.last_error, load_error, sizeof state.last_error);
  state.checked_at = now;
  const uint64 generation = ledger().header().generation;
  if (answering > state.reloads_answered) {
    state.reloads_answered = answering;
    state.answered_generation = generation;
    strlcpy(state.answered_error, load_error, sizeof state.answered_error);
  }
  LWLockRelease(&state.lock);

  if (load_error[0] != '\0' && strcmp(load_error, logged_error) != 0)
    ereport(WARNING, (errmsg("pg_connbudget: could not load budgets: %s", load_error),
                      errdetail("The budgets of generation %llu stay in force.",
                                static_cast<unsigned long long>(generation))));
  else if (load_error[0] == '\0' && logged_error[0] != '\0')
    ereport(LOG, (errmsg("pg_connbudget: budgets load again after the failure logged before")));
  strlcpy(logged_error, load_error, sizeof logged_error);
}

}  // namespace

void load_budgets(std::uint64_t answering) {
  MemoryContext caller = CurrentMemoryContext;
  load_error[0] = '\0';
  PG_TRY();
  {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "loading connbudget.budgets");
    static bool absent_logged = false;
    const bool absent = !OidIsValid(get_extension_oid("pg_connbudget", true));
    if (absent) {
      publish({});
      if (!absent_logged)
        ereport(LOG, (errmsg("pg_connbudget: extension pg_connbudget is not installed in database \"%s\": no "
                             "budgets are enforced",
                             database),
                      errhint("CREATE EXTENSION pg_connbudget in that database to enforce budgets.")));
    } else {
      read_and_publish();
    }
    absent_logged = absent;
    PopActiveSnapshot();
    CommitTransactionCommand();
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller);
    ErrorData* error = CopyErrorData();
    FlushErrorState();
    AbortCurrentTransaction();
    strlcpy(load_error, error->message, sizeof load_error);
    FreeErrorData(error);
  }
  PG_END_TRY();
  pgstat_report_activity(STATE_IDLE, nullptr);
  record_outcome(answering);
}

}  // namespace connbudget::pg
