// The set-returning function behind the view connbudget.history: every row of the ring,
// oldest first. Copies the rows under the history's lock (shared; never the ledger's),
// releases it, and only then builds tuples.
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(connbudget_history);
PGDLLEXPORT Datum connbudget_history(PG_FUNCTION_ARGS);
}

#include "pg/history_store.hpp"
#include "pg/result_row.hpp"
#include "pg/shared_state.hpp"

using namespace connbudget;
using namespace connbudget::pg;

Datum connbudget_history(PG_FUNCTION_ARGS) {
  require_shared_state();
  InitMaterializedSRF(fcinfo, 0);
  HistoryStore* store = history_store();
  if (!store) return static_cast<Datum>(0);  // connbudget.history_size = 0

  // Memory is allocated outside the lock; if the ring grew meanwhile, allocate again (it
  // stops growing once full).
  HistoryRow* rows = nullptr;
  std::size_t count = 0, allocated = 0;
  for (;;) {
    LWLockAcquire(store->lock, LW_SHARED);
    count = store->history.copy_to({rows, allocated});
    LWLockRelease(store->lock);
    if (count <= allocated) break;
    if (rows) pfree(rows);
    rows = static_cast<HistoryRow*>(MemoryContextAllocHuge(CurrentMemoryContext, sizeof(HistoryRow) * count));
    allocated = count;
  }

  for (std::size_t i = 0; i < count; ++i) {
    const HistoryRow& r = rows[i];
    ResultRow<12> row;
    row.timestamp(r.sampled_at_us);
    row.text(r.budget.view());
    r.max_connections == BudgetLimits::kUnlimited ? row.null() : row.integer(r.max_connections);
    row.integer(r.active);
    row.integer(r.waiting);
    row.bigint(r.gained.admitted);
    row.bigint(r.gained.rejected);
    row.bigint(r.gained.queued);
    row.bigint(r.gained.timed_out);
    row.bigint(r.gained.abandoned);
    row.bigint(r.gained.reclaimed);
    row.bigint(r.gained.mismatched);
    row.emit(fcinfo);
  }
  return static_cast<Datum>(0);
}
