// The budgets' cumulative counters across a clean restart (see saved_counters.cpp).
#pragma once

namespace connbudget::pg {

// In the postmaster, when shared memory is new: gives the counters saved at the last clean
// shutdown to their budgets, then removes the file (so a crash later starts from zero), and
// arranges for them to be saved again when the postmaster exits normally.
void restore_saved_counters();

}  // namespace connbudget::pg
