// Everything that differs between the PostgreSQL versions pg_connbudget supports (15 to
// 18), behind one function each, so that no other file needs a PG_VERSION_NUM guard.
#pragma once

extern "C" {
#include "postgres.h"

#include "storage/latch.h"
}

#include "core/application_name.hpp"

namespace connbudget::pg {

// This backend's PGPROC number: its session slot in the ledger.
int my_session_slot();

// True if the backend in PGPROC number `slot` has a transaction open (a valid virtual
// transaction id). Read without ProcArrayLock: only the backend itself changes it.
bool backend_in_transaction(int slot);

// Slots the server gives ordinary logins: max_connections minus those kept for superusers
// (and, on 16+, for roles with privileges of pg_use_reserved_connections).
int connection_capacity();
// How connection_capacity() is made up, with the numbers (palloc'd).
char* describe_connection_capacity();
// The slots PostgreSQL keeps free from ordinary logins (superuser_reserved_connections,
// plus reserved_connections on 16+), and whether that many are free right now.
int kept_free_slots();
bool kept_free_slots_are_free();

// A WaitEventSet that lives as long as the current resource owner (17+) or memory context.
WaitEventSet* create_wait_event_set(int events);

// The wait events pg_connbudget's waits report in pg_stat_activity: named custom events
// on 17+ (registered on first use), the generic "Extension" event before.
enum class Wait { LoginQueue, DisplacedExit, Worker, Reload, TerminatedExit };
uint32 wait_event(Wait which);

// How this server cleans the application_name of a startup packet before anyone sees it:
// 15 replaces every byte outside printable ASCII with '?', 16+ writes "\xNN" for it.
constexpr NameCleaning application_name_cleaning() {
#if PG_VERSION_NUM >= 160000
  return NameCleaning::HexEscape;
#else
  return NameCleaning::QuestionMark;
#endif
}

// application_name as a login carrying `raw` in its startup packet has it (palloc'd; the
// server's own pg_clean_ascii()).
char* clean_application_name(const char* raw);

}  // namespace connbudget::pg
