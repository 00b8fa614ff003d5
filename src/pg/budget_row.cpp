// Converts a connbudget.budgets tuple to the core's BudgetRow, then to a validated
// BudgetDefinition. Columns are found by name and their types checked, so a table altered
// by hand gives a clear error instead of misread data.
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/timestamp.h"
}

#include "pg/budget_row.hpp"
#include "pg/login_attributes.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {
namespace {

class TupleReader {
 public:
  TupleReader(TupleDesc desc, HeapTuple tuple) : desc_(desc), tuple_(tuple) {}

  // The column's value, or nullopt for NULL; raises ERROR if the column is missing or
  // is not of type `type`.
  std::optional<Datum> value(const char* column, Oid type) const {
    const int number = SPI_fnumber(desc_, column);
    if (number <= 0)
      ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                      errmsg("connbudget.budgets has no column \"%s\"", column),
                      errhint("Recreate the extension: DROP EXTENSION pg_connbudget; CREATE EXTENSION pg_connbudget;")));
    if (SPI_gettypeid(desc_, number) != type)
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("column \"%s\" of connbudget.budgets has type %s, expected %s", column,
                             format_type_be(SPI_gettypeid(desc_, number)), format_type_be(type))));
    bool is_null = false;
    const Datum datum = heap_getattr(tuple_, number, desc_, &is_null);
    if (is_null) return std::nullopt;
    return datum;
  }

  std::optional<std::string_view> string(const char* column) const {
    const auto datum = value(column, TEXTOID);
    if (!datum) return std::nullopt;
    return std::string_view(TextDatumGetCString(*datum));
  }

  std::optional<std::int32_t> integer(const char* column) const {
    const auto datum = value(column, INT4OID);
    if (!datum) return std::nullopt;
    return DatumGetInt32(*datum);
  }

 private:
  TupleDesc desc_;
  HeapTuple tuple_;
};

// An interval in whole milliseconds (months count as 30 days), saturated to int64.
std::int64_t interval_ms(const Interval& interval) {
  const __int128 us = static_cast<__int128>(interval.time) +
                      static_cast<__int128>(interval.day) * USECS_PER_DAY +
                      static_cast<__int128>(interval.month) * DAYS_PER_MONTH * USECS_PER_DAY;
  const __int128 ms = us / 1000;
  if (ms > PG_INT64_MAX) return PG_INT64_MAX;
  if (ms < PG_INT64_MIN) return PG_INT64_MIN;
  return static_cast<std::int64_t>(ms);
}

}  // namespace

void read_budget(TupleDesc desc, HeapTuple tuple, BudgetDefinition& out) {
  const TupleReader row(desc, tuple);
  BudgetRow input;
  input.name = row.string("name").value_or("");
  input.position = row.integer("position").value_or(0);
  input.application_name = row.string("application_name");
  input.role_name = row.string("role_name");
  input.database_name = row.string("database_name");
  if (const auto cidr = row.value("client_addr", CIDROID)) {
    const inet* range = DatumGetInetPP(*cidr);
    input.client_addr = AddressRange{address_of(range), ip_bits(range)};
  }
  input.max_connections = row.integer("max_connections").value_or(0);
  input.reserved = row.integer("reserved").value_or(0);
  input.on_full = row.string("on_full").value_or("reject");
  if (const auto timeout = row.value("queue_timeout", INTERVALOID))
    input.queue_timeout_ms = interval_ms(*DatumGetIntervalP(*timeout));
  input.max_queue = row.integer("max_queue");
  if (const auto idle = row.value("idle_reclaim", INTERVALOID))
    input.idle_reclaim_ms = interval_ms(*DatumGetIntervalP(*idle));
  input.priority = row.integer("priority").value_or(0);
  input.mode = row.string("mode").value_or("enforce");
  input.application_name_cleaning = application_name_cleaning();

  if (const auto problem = build_definition(input, out))
    ereport(ERROR, (errcode(ERRCODE_CHECK_VIOLATION), errmsg("%s", problem->message)));
}

}  // namespace connbudget::pg
