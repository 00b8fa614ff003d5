// Idle reclaim in the background worker (see idle_reclaim.hpp).
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <algorithm>
#include <span>

#include "core/reclaim.hpp"
#include "pg/activity_query.hpp"
#include "pg/idle_reclaim.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {
namespace {

// While logins wait and some session might become idle, look again this often.
constexpr long kRecheckMs = 250;

// Which of the candidates are idle outside a transaction, and since when.
constexpr const char* kIdleQuery =
    "SELECT m.slot, a.pid, a.state_change"
    "  FROM unnest($1::pg_catalog.int4[], $2::pg_catalog.int4[]) AS m(pid, slot)"
    "  JOIN pg_catalog.pg_stat_activity a ON a.pid = m.pid"
    " WHERE a.state = 'idle' AND a.state_change IS NOT NULL";

// Process-local buffers of one entry per session slot, allocated once.
struct Buffers {
  std::span<IdleSession> candidates;
  std::span<IdleSession> idle;
  std::span<Reclaim> planned;
};

Buffers& buffers() {
  static Buffers b;
  if (b.candidates.empty()) {
    const std::size_t n = ledger().sessions().size();
    b.candidates = {static_cast<IdleSession*>(MemoryContextAlloc(TopMemoryContext, sizeof(IdleSession) * n)), n};
    b.idle = {static_cast<IdleSession*>(MemoryContextAlloc(TopMemoryContext, sizeof(IdleSession) * n)), n};
    b.planned = {static_cast<Reclaim*>(MemoryContextAlloc(TopMemoryContext, sizeof(Reclaim) * n)), n};
  }
  return b;
}

// Fills idle from pg_stat_activity; returns how many of the candidates are idle.
std::size_t read_idle(std::span<const IdleSession> candidates, std::span<IdleSession> idle) {
  SPI_connect();
  query_activity(kIdleQuery, int4_array(candidates, &IdleSession::pid), int4_array(candidates, &IdleSession::slot));
  std::size_t count = 0;
  for (uint64 row = 0; row < SPI_processed && count < idle.size(); ++row) {
    bool isnull = false;
    HeapTuple tuple = SPI_tuptable->vals[row];
    TupleDesc desc = SPI_tuptable->tupdesc;
    idle[count++] = IdleSession{DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull)),
                                DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull)),
                                DatumGetTimestampTz(SPI_getbinval(tuple, desc, 3, &isnull))};
  }
  SPI_finish();
  return count;
}

// One pass: returns when to look again.
TimestampTz reclaim_pass(SharedState& state, Buffers& b) {
  LWLockAcquire(&state.lock, LW_SHARED);
  const std::size_t candidates = reclaim_candidates(ledger(), b.candidates);
  LWLockRelease(&state.lock);
  if (candidates == 0) return DT_NOEND;

  const std::size_t idle = read_idle(b.candidates.first(candidates), b.idle);
  TimestampTz next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kRecheckMs);
  const TimestampTz now = GetCurrentTimestamp();
  LWLockAcquire(&state.lock, LW_SHARED);
  std::int64_t due = next_due;
  const std::size_t planned = plan_reclaims(ledger(), b.idle.first(idle), now, b.planned, &due);
  LWLockRelease(&state.lock);
  next_due = std::min<TimestampTz>(next_due, due);

  for (std::size_t i = 0; i < planned; ++i) {
    const Reclaim& reclaim = b.planned[i];
    // Decided as late as possible: still idle outside a transaction, still needed.
    LWLockAcquire(&state.lock, LW_EXCLUSIVE);
    const bool marked = backend_idle_outside_transaction(reclaim.slot) &&
                        ledger().mark_reclaimed(reclaim, GetCurrentTimestamp());
    LWLockRelease(&state.lock);
    // False if it is no longer a backend: it has gone, and its slot with it.
    if (marked) DirectFunctionCall2(pg_terminate_backend, Int32GetDatum(reclaim.pid), Int64GetDatum(0));
  }
  return planned > 0 ? GetCurrentTimestamp() : next_due;  // after ending some, look again at once
}

}  // namespace

TimestampTz reclaim_idle_sessions() {
  SharedState* state = shared_state();
  if (!state) return DT_NOEND;
  LWLockAcquire(&state->lock, LW_SHARED);
  const bool wanted = ledger().header().uses_idle_reclaim && ledger().header().waiting > 0;
  LWLockRelease(&state->lock);
  if (!wanted) return DT_NOEND;

  Buffers& b = buffers();
  TimestampTz next = DT_NOEND;
  MemoryContext caller = CurrentMemoryContext;
  PG_TRY();
  {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "ending idle sessions for waiting logins");
    next = reclaim_pass(*state, b);
    PopActiveSnapshot();
    CommitTransactionCommand();
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller);
    ErrorData* error = CopyErrorData();
    FlushErrorState();
    AbortCurrentTransaction();
    ereport(WARNING, (errmsg("pg_connbudget: could not end idle sessions for waiting logins: %s", error->message)));
    FreeErrorData(error);
    next = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
  }
  PG_END_TRY();
  pgstat_report_activity(STATE_IDLE, nullptr);
  return next;
}

}  // namespace connbudget::pg
