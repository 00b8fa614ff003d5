// Queries over pg_stat_activity for sessions the ledger names (see activity_query.hpp).
extern "C" {
#include "postgres.h"

#include "executor/spi.h"
#include "utils/backend_status.h"
}

#include "pg/activity_query.hpp"

namespace connbudget::pg {

void query_activity(const char* query, Datum pids, Datum slots) {
  pgstat_clear_backend_activity_snapshot();
  Oid types[2] = {INT4ARRAYOID, INT4ARRAYOID};
  Datum values[2] = {pids, slots};
  if (SPI_execute_with_args(query, 2, types, values, nullptr, true, 0) != SPI_OK_SELECT)
    elog(ERROR, "could not read pg_stat_activity");
}

}  // namespace connbudget::pg
