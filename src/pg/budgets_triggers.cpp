// Triggers of connbudget.budgets: each row is validated by the core's rules before it is
// written; after each statement the table as a whole is checked (count and reservations
// against what the server can hold), and the worker is woken once the transaction commits.
// DROP EXTENSION pg_connbudget wakes it at commit too (an event trigger the extension owns:
// nothing runs for anyone's queries), so that dropping the extension stops enforcement at once.
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "commands/dbcommands.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(connbudget_check_budget_row);
PG_FUNCTION_INFO_V1(connbudget_budgets_changed);
PG_FUNCTION_INFO_V1(connbudget_watch_extension_drop);
PGDLLEXPORT Datum connbudget_check_budget_row(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_budgets_changed(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_watch_extension_drop(PG_FUNCTION_ARGS);
}

#include <cstring>

#include "pg/budget_row.hpp"
#include "pg/budgets_triggers.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {
namespace {

bool wake_worker_at_commit = false;

void on_transaction_end(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
      if (wake_worker_at_commit) {
        if (SharedState* state = shared_state()) pg_atomic_fetch_add_u64(&state->changes, 1);
        wake_worker();
      }
      wake_worker_at_commit = false;
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:  // COMMIT PREPARED is seen by the worker's periodic check
      wake_worker_at_commit = false;
      break;
    default:
      break;
  }
}

void wake_worker_after_commit() {
  static bool registered = false;
  if (!registered) {
    RegisterXactCallback(on_transaction_end, nullptr);
    registered = true;
  }
  wake_worker_at_commit = true;
}

TriggerData* trigger_data(FunctionCallInfo fcinfo) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("%s can only be called as a trigger", get_func_name(fcinfo->flinfo->fn_oid))));
  return reinterpret_cast<TriggerData*>(fcinfo->context);
}

// The whole table must fit what shared memory and the server can hold.
void check_table_totals(Relation budgets) {
  // Serializes writers of the table through this check; it does not block readers,
  // the worker, or row writes (ShareUpdateExclusive conflicts only with itself here).
  LockRelationOid(RelationGetRelid(budgets), ShareUpdateExclusiveLock);
  SPI_connect();
  // The latest snapshot, as foreign-key checks use: under REPEATABLE READ the transaction's
  // own snapshot would miss budgets another writer committed while we waited for the lock.
  SPIPlanPtr plan = SPI_prepare(
      "SELECT pg_catalog.count(*), COALESCE(pg_catalog.sum(reserved), 0) "
      "FROM connbudget.budgets", 0, nullptr);
  SPI_execute_snapshot(plan, nullptr, nullptr, GetLatestSnapshot(), InvalidSnapshot, false, false, 1);
  bool is_null = false;
  const int64 count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
  const int64 reserved = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &is_null));
  SPI_finish();

  if (const int most = configured_max_budgets(); count > most)
    ereport(ERROR, (errcode(ERRCODE_CHECK_VIOLATION),
                    errmsg("connbudget.budgets would hold %lld budgets, more than connbudget.max_budgets (%d)",
                           static_cast<long long>(count), most),
                    errhint("Raise connbudget.max_budgets in postgresql.conf and restart the server.")));
  const int capacity = connection_capacity();
  if (reserved > capacity)
    ereport(ERROR, (errcode(ERRCODE_CHECK_VIOLATION),
                    errmsg("budgets would reserve %lld connections, more than the server's %d",
                           static_cast<long long>(reserved), capacity),
                    errdetail("The server's capacity is %s.", describe_connection_capacity()),
                    errhint("Lower reserved of some budgets, or raise max_connections.")));
  // (No worker at all unless the server preloads the library: database is unset then.)
  if (database && strcmp(get_database_name(MyDatabaseId), database) != 0)
    ereport(WARNING, (errmsg("budgets in database \"%s\" are not enforced", get_database_name(MyDatabaseId)),
                      errdetail("The worker loads connbudget.budgets from database \"%s\" (connbudget.database).",
                                database)));
}

}  // namespace

bool budgets_changed_in_this_transaction() { return wake_worker_at_commit; }

}  // namespace connbudget::pg

using namespace connbudget::pg;

// BEFORE INSERT OR UPDATE, FOR EACH ROW: refuses a row the worker could not load.
Datum connbudget_check_budget_row(PG_FUNCTION_ARGS) {
  TriggerData* trigger = trigger_data(fcinfo);
  HeapTuple row = TRIGGER_FIRED_BY_UPDATE(trigger->tg_event) ? trigger->tg_newtuple : trigger->tg_trigtuple;
  connbudget::BudgetDefinition definition;
  read_budget(RelationGetDescr(trigger->tg_relation), row, definition);
  return PointerGetDatum(row);
}

// AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE, FOR EACH STATEMENT.
Datum connbudget_budgets_changed(PG_FUNCTION_ARGS) {
  TriggerData* trigger = trigger_data(fcinfo);
  if (!TRIGGER_FIRED_BY_DELETE(trigger->tg_event) && !TRIGGER_FIRED_BY_TRUNCATE(trigger->tg_event))
    check_table_totals(trigger->tg_relation);
  wake_worker_after_commit();
  return PointerGetDatum(nullptr);
}

// ON ddl_command_start WHEN TAG IN ('DROP EXTENSION'): before the command, while the trigger
// still exists. A DROP that fails aborts its transaction, which wakes no one.
Datum connbudget_watch_extension_drop(PG_FUNCTION_ARGS) {
  if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("%s can only be called as an event trigger", get_func_name(fcinfo->flinfo->fn_oid))));
  const auto* event = reinterpret_cast<EventTriggerData*>(fcinfo->context);
  if (!IsA(event->parsetree, DropStmt)) return PointerGetDatum(nullptr);
  const auto* drop = reinterpret_cast<const DropStmt*>(event->parsetree);
  if (drop->removeType != OBJECT_EXTENSION) return PointerGetDatum(nullptr);
  ListCell* cell;
  foreach (cell, drop->objects)
    if (strcmp(strVal(lfirst(cell)), "pg_connbudget") == 0) {
      ereport(DEBUG1, (errmsg_internal("pg_connbudget: the worker is woken when this transaction commits")));
      wake_worker_after_commit();
    }
  return PointerGetDatum(nullptr);
}
