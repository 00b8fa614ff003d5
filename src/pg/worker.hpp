// The background worker that keeps the ledger's budgets true to connbudget.budgets.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"

PGDLLEXPORT void connbudget_worker_main(Datum argument);
}

namespace connbudget::pg {

// Registers the worker with the postmaster; from _PG_init when preloading.
void register_worker();

}  // namespace connbudget::pg
