// The background worker process: connects to connbudget.database and loads the budgets
// at start, after each commit that changed them, on SIGHUP, on connbudget.reload(), and
// periodically (which also picks up changes replayed on a hot standby); between loads it
// ends idle sessions for waiting logins (idle_reclaim.cpp), samples the budgets into
// connbudget.history (history_sampler.cpp) and writes the summaries of refusal log lines
// the login path held back. It never holds our
// lock while doing I/O, and logins never wait for it. The postmaster restarts it one second
// after it exits; failed connection attempts back off so that a missing database is not
// logged in a tight loop.
extern "C" {
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

#include <algorithm>
#include <array>
#include <cstdio>

#include "pg/budget_loader.hpp"
#include "pg/history_sampler.hpp"
#include "pg/idle_reclaim.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"
#include "pg/worker.hpp"

namespace connbudget::pg {
namespace {

constexpr long kRecheckMs = 10000;        // safety net on a primary (e.g. COMMIT PREPARED)
constexpr long kStandbyRecheckMs = 1000;  // a standby's changes arrive by replay, unsignalled
constexpr long kMaxConnectBackoffMs = 60000;

void announce(SharedState& state) {
  LWLockAcquire(&state.lock, LW_EXCLUSIVE);
  if (state.worker_connecting) ++state.worker_connect_failures;  // the last attempt died
  state.worker_connecting = false;
  state.worker_pid = MyProcPid;
  state.worker_latch = MyLatch;
  LWLockRelease(&state.lock);
}

void forget(int, Datum) {
  SharedState& state = *shared_state();
  LWLockAcquire(&state.lock, LW_EXCLUSIVE);
  if (state.worker_connecting) {
    std::snprintf(state.last_error, sizeof state.last_error,
                  "could not connect to database \"%s\" (connbudget.database); see the server log",
                  database);
    state.last_error_at = GetCurrentTimestamp();
    // Whoever waits in connbudget.reload() gets that answer now.
    state.reloads_answered = pg_atomic_read_u64(&state.reload_requests);
    strlcpy(state.answered_error, state.last_error, sizeof state.answered_error);
  }
  state.worker_pid = 0;
  state.worker_latch = nullptr;
  LWLockRelease(&state.lock);
}

// After failed attempts to connect, waits 1, 2, 4 ... up to 60 seconds before the next;
// connbudget.reload() cuts the wait short. A new process starts with its latch set, and
// other wake-ups (commits, waiting logins) do not end the wait either.
void back_off(SharedState& state) {
  LWLockAcquire(&state.lock, LW_SHARED);
  const int failures = state.worker_connect_failures;
  LWLockRelease(&state.lock);
  if (failures == 0) return;
  const long delay = std::min(kMaxConnectBackoffMs, 1000L << std::min(failures - 1, 16));
  const uint64 reloads = pg_atomic_read_u64(&state.reload_requests);
  const TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
  for (;;) {
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    const long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
    if (left <= 0 || pg_atomic_read_u64(&state.reload_requests) != reloads) return;
    WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left, wait_event(Wait::Worker));
  }
}

void set_connecting(SharedState& state, bool connecting) {
  LWLockAcquire(&state.lock, LW_EXCLUSIVE);
  state.worker_connecting = connecting;
  if (!connecting) state.worker_connect_failures = 0;
  LWLockRelease(&state.lock);
}

bool last_load_failed(SharedState& state) {
  LWLockAcquire(&state.lock, LW_SHARED);
  const bool failed = state.last_error[0] != '\0';
  LWLockRelease(&state.lock);
  return failed;
}

// Logs a summary for each budget whose log lines the login path held back (LogLimiter)
// once their second is over; returns when the next summary will be due (DT_NOEND: none).
TimestampTz summarise_held_back_lines(SharedState& state) {
  std::array<SuppressedLines, 16> lines;
  TimestampTz next_due = DT_NOEND;
  for (;;) {
    const TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(&state.lock, LW_EXCLUSIVE);
    const std::size_t taken = ledger().take_suppressed(now, lines, &next_due);
    LWLockRelease(&state.lock);
    for (std::size_t i = 0; i < taken; ++i)
      ereport(LOG, (errmsg("connection budget \"%s\": %lld more messages about its logins were not logged",
                           lines[i].budget.c_str(), static_cast<long long>(lines[i].count)),
                    errdetail("The server log gets at most one such message per budget per second; "
                              "connbudget.status counts every refusal.")));
    if (taken < lines.size()) return next_due;
  }
}

[[noreturn]] void run(SharedState& state) {
  uint64 changes_seen = 0, reloads_seen = 0;
  TimestampTz next_check = 0;  // load at once
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    bool load = false;
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
      load = true;
    }
    // Read the counters before loading, so that a change committed during the load
    // causes another one.
    const uint64 changes = pg_atomic_read_u64(&state.changes);
    const uint64 reloads = pg_atomic_read_u64(&state.reload_requests);
    TimestampTz now = GetCurrentTimestamp();
    if (load || changes != changes_seen || reloads != reloads_seen || now >= next_check) {
      changes_seen = changes;
      reloads_seen = reloads;
      load_budgets(reloads);
      now = GetCurrentTimestamp();
      const bool poll_fast = RecoveryInProgress() || last_load_failed(state);
      next_check = TimestampTzPlusMilliseconds(now, poll_fast ? kStandbyRecheckMs : kRecheckMs);
    }
    const TimestampTz next_reclaim = reclaim_idle_sessions();
    const TimestampTz next_summary = summarise_held_back_lines(state);
    const TimestampTz next_sample = sample_history_when_due(now);
    const long timeout = std::max<long>(
        1, TimestampDifferenceMilliseconds(now, std::min({next_check, next_reclaim, next_summary, next_sample})));
    WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout, wait_event(Wait::Worker));
    ResetLatch(MyLatch);
  }
}

}  // namespace

void register_worker() {
  BackgroundWorker worker = {};
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_ConsistentState;  // also runs on a hot standby
  worker.bgw_restart_time = 1;
  strlcpy(worker.bgw_library_name, "pg_connbudget", sizeof worker.bgw_library_name);
  strlcpy(worker.bgw_function_name, "connbudget_worker_main", sizeof worker.bgw_function_name);
  strlcpy(worker.bgw_name, "pg_connbudget worker", sizeof worker.bgw_name);
  strlcpy(worker.bgw_type, "pg_connbudget worker", sizeof worker.bgw_type);
  RegisterBackgroundWorker(&worker);
}

}  // namespace connbudget::pg

void connbudget_worker_main(Datum) {
  using namespace connbudget::pg;
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();

  SharedState& state = *shared_state();
  announce(state);
  before_shmem_exit(forget, 0);
  back_off(state);
  set_connecting(state, true);
  BackgroundWorkerInitializeConnection(database, nullptr, 0);
  set_connecting(state, false);
  // The worker runs as the bootstrap superuser: resolve nothing through a search_path
  // that a database owner could have set.
  SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
  run(state);
}
