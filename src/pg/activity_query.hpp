// Queries over pg_stat_activity for sessions the ledger names: their pids and session
// slots go in as two int4[] parameters ($1 pids, $2 slots) for a query to join with
// unnest($1, $2). Used by connbudget.terminate_excess() and by idle reclaim. The caller is
// connected to SPI; the backend-status snapshot is cleared first, so a transaction that
// read pg_stat_activity before does not see its stale copy.
#pragma once

extern "C" {
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
}

#include <algorithm>
#include <cstdint>
#include <span>

namespace connbudget::pg {

// The int4[] of one field of each element.
template <typename T>
Datum int4_array(std::span<const T> items, std::int32_t T::*field) {
  auto* elements = static_cast<Datum*>(palloc(sizeof(Datum) * std::max<std::size_t>(items.size(), 1)));
  for (std::size_t i = 0; i < items.size(); ++i) elements[i] = Int32GetDatum(items[i].*field);
  return PointerGetDatum(
      construct_array(elements, static_cast<int>(items.size()), INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

// Runs the read-only query with $1 = pids, $2 = slots; raises an ERROR if it fails. The
// rows are in SPI_tuptable.
void query_activity(const char* query, Datum pids, Datum slots);

}  // namespace connbudget::pg
