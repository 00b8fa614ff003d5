// Loads connbudget.budgets into the ledger; runs only in the background worker.
#pragma once

#include <cstdint>

namespace connbudget::pg {

// Reads the table in a transaction of its own and makes it the live configuration, or
// keeps the last good one and records (and logs, once per distinct reason) why not.
// Marks reload requests up to `answering` as answered. Never raises an error.
void load_budgets(std::uint64_t answering);

}  // namespace connbudget::pg
