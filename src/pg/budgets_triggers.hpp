// The triggers of connbudget.budgets (budgets_triggers.cpp), as other files see them.
#pragma once

namespace connbudget::pg {

// True if the current transaction has changed connbudget.budgets (the worker is woken
// when it commits).
bool budgets_changed_in_this_transaction();

}  // namespace connbudget::pg
