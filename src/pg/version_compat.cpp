// What differs between PostgreSQL 15, 16, 17 and 18 (see version_compat.hpp).
extern "C" {
#include "postgres.h"

#include "common/string.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "storage/proc.h"
#include "utils/resowner.h"
#if PG_VERSION_NUM >= 170000
#include "utils/wait_event.h"
#endif
}

#include "pg/version_compat.hpp"

namespace connbudget::pg {

int my_session_slot() {
#if PG_VERSION_NUM >= 170000
  return MyProcNumber;
#else
  return MyProc->pgprocno;
#endif
}

bool backend_in_transaction(int slot) {
  const PGPROC* proc = GetPGProcByNumber(slot);
#if PG_VERSION_NUM >= 170000
  return LocalTransactionIdIsValid(proc->vxid.lxid);
#else
  return LocalTransactionIdIsValid(proc->lxid);
#endif
}

int kept_free_slots() {
#if PG_VERSION_NUM >= 160000
  return SuperuserReservedConnections + ReservedConnections;
#else
  return ReservedBackends;
#endif
}

bool kept_free_slots_are_free() {
#if PG_VERSION_NUM >= 160000
  int free_procs = 0;
  return HaveNFreeProcs(kept_free_slots(), &free_procs);
#else
  return HaveNFreeProcs(kept_free_slots());
#endif
}

int connection_capacity() { return MaxConnections - kept_free_slots(); }

char* describe_connection_capacity() {
#if PG_VERSION_NUM >= 160000
  if (ReservedConnections > 0)
    return psprintf("max_connections (%d) minus superuser_reserved_connections (%d) minus reserved_connections (%d)",
                    MaxConnections, SuperuserReservedConnections, ReservedConnections);
  return psprintf("max_connections (%d) minus superuser_reserved_connections (%d)", MaxConnections,
                  SuperuserReservedConnections);
#else
  return psprintf("max_connections (%d) minus superuser_reserved_connections (%d)", MaxConnections,
                  ReservedBackends);
#endif
}

WaitEventSet* create_wait_event_set(int events) {
#if PG_VERSION_NUM >= 170000
  return CreateWaitEventSet(CurrentResourceOwner, events);
#else
  return CreateWaitEventSet(CurrentMemoryContext, events);
#endif
}

uint32 wait_event(Wait which) {
#if PG_VERSION_NUM >= 170000
  static uint32 events[5] = {};
  static constexpr const char* kNames[5] = {"ConnBudgetLoginQueue", "ConnBudgetDisplacedExit", "ConnBudgetWorker",
                                            "ConnBudgetReload", "ConnBudgetTerminatedExit"};
  const auto index = static_cast<int>(which);
  if (events[index] == 0) events[index] = WaitEventExtensionNew(kNames[index]);
  return events[index];
#else
  return PG_WAIT_EXTENSION;
#endif
}

char* clean_application_name(const char* raw) {
#if PG_VERSION_NUM >= 160000
  return pg_clean_ascii(raw, 0);
#else
  char* clean = pstrdup(raw);
  pg_clean_ascii(clean);
  return clean;
#endif
}

}  // namespace connbudget::pg
