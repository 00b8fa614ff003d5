// What differs between PostgreSQL 15, 16, 17 and 18 (see version_compat.hpp).
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "common/string.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/wait_event.h"
}

#include <new>

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

bool backend_idle_outside_transaction(int slot) {
  return !backend_in_transaction(slot) && GetPGProcByNumber(slot)->wait_event_info == WAIT_EVENT_CLIENT_READ;
}

int kept_free_slots() {
#if PG_VERSION_NUM >= 160000
  return SuperuserReservedConnections + ReservedConnections;
#else
  return ReservedBackends;
#endif
}

const char* describe_kept_free_slots() {
#if PG_VERSION_NUM >= 160000
  if (ReservedConnections > 0)
    return psprintf("superuser_reserved_connections and reserved_connections keep %d more for superusers and "
                    "roles with privileges of pg_use_reserved_connections.",
                    SuperuserReservedConnections + ReservedConnections);
#endif
  if (kept_free_slots() == 0) return "";
  return psprintf("superuser_reserved_connections keeps %d more for superusers.", kept_free_slots());
}

int kept_free_slots_from(Oid role, bool superuser) {
  if (superuser) return 0;
#if PG_VERSION_NUM >= 160000
  if (ReservedConnections > 0 && OidIsValid(role) && has_privs_of_role(role, ROLE_PG_USE_RESERVED_CONNECTIONS))
    return SuperuserReservedConnections;
#endif
  return kept_free_slots();
}

int free_backends(int limit) {
#if PG_VERSION_NUM >= 160000
  int free_procs = 0;
  HaveNFreeProcs(limit, &free_procs);
  return free_procs;
#else
  int free_procs = 0;  // HaveNFreeProcs says only yes or no before 16
  while (free_procs < limit && HaveNFreeProcs(free_procs + 1)) ++free_procs;
  return free_procs;
#endif
}

bool ServerBackends::at_least(std::int32_t n) const noexcept {
  const int wanted = kept_ + extra_ + n;
  if (wanted <= 0) return true;
#if PG_VERSION_NUM >= 160000
  int free_procs = 0;
  return HaveNFreeProcs(wanted, &free_procs);
#else
  return HaveNFreeProcs(wanted);
#endif
}

namespace {

// The settings skip_reserved_slots_check() zeroed, until the callback puts them back
// (superuser -1: nothing to put back). In TopMemoryContext, not in the module's variables:
// a new backend's first write to the module's data page copies that page.
struct SavedReservations {
  int superuser = -1;
  int reserved = -1;  // 16+
};

void restore_reserved_slots(XactEvent, void* arg) {
  SavedReservations& saved = *static_cast<SavedReservations*>(arg);
  if (saved.superuser < 0) return;
#if PG_VERSION_NUM >= 160000
  SuperuserReservedConnections = saved.superuser;
  ReservedConnections = saved.reserved;
#else
  ReservedBackends = saved.superuser;
#endif
  saved.superuser = -1;
#if PG_VERSION_NUM >= 160000
  UnregisterXactCallback(restore_reserved_slots, arg);  // 16+ allows it from the callback
#endif
  // (On 15 a callback cannot unregister itself: it stays, doing nothing, for the session.)
}

}  // namespace

void skip_reserved_slots_check() {
  if (!IsTransactionState()) return;
  auto* saved = new (MemoryContextAlloc(TopMemoryContext, sizeof(SavedReservations))) SavedReservations();
#if PG_VERSION_NUM >= 160000
  saved->superuser = SuperuserReservedConnections;
  saved->reserved = ReservedConnections;
  SuperuserReservedConnections = 0;
  ReservedConnections = 0;
#else
  saved->superuser = ReservedBackends;
  ReservedBackends = 0;
#endif
  RegisterXactCallback(restore_reserved_slots, saved);
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
  static uint32 events[4] = {};
  static constexpr const char* kNames[4] = {"ConnBudgetLoginQueue", "ConnBudgetWorker", "ConnBudgetReload",
                                            "ConnBudgetTerminatedExit"};
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
