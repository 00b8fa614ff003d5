// Reads one row of connbudget.budgets (a heap tuple) into a BudgetDefinition, with the
// core's validation. Shared by the table's trigger and the worker's loader.
#pragma once

extern "C" {
#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
}

#include "core/budget.hpp"

namespace connbudget::pg {

// Fills out from tuple, or raises ERROR (check_violation) saying what is wrong with it.
// Strings are palloc'd in the current memory context only while reading.
void read_budget(TupleDesc desc, HeapTuple tuple, BudgetDefinition& out);

}  // namespace connbudget::pg
