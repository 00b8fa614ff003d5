// Everything that differs between the PostgreSQL versions pg_connbudget supports (15 to
// 18), behind one function each, so that no other file needs a PG_VERSION_NUM guard.
#pragma once

extern "C" {
#include "postgres.h"

#include "storage/latch.h"
}

#include "core/application_name.hpp"
#include "core/free_backends.hpp"

namespace connbudget::pg {

// This backend's PGPROC number: its session slot in the ledger.
int my_session_slot();

// True if the backend in PGPROC number `slot` has a transaction open (a valid virtual
// transaction id). Read without ProcArrayLock: only the backend itself changes it.
bool backend_in_transaction(int slot);

// True if the backend in PGPROC number `slot` is idle outside a transaction: no transaction
// open and waiting for its client (its wait event is ClientRead). Read without locks.
bool backend_idle_outside_transaction(int slot);

// Slots the server gives ordinary logins: max_connections minus those kept for superusers
// (and, on 16+, for roles with privileges of pg_use_reserved_connections).
int connection_capacity();
// How connection_capacity() is made up, with the numbers (palloc'd).
char* describe_connection_capacity();
// The slots PostgreSQL keeps free from ordinary logins (superuser_reserved_connections,
// plus reserved_connections on 16+).
int kept_free_slots();
// What they are for, as a sentence for a message ("" if there are none; palloc'd).
const char* describe_kept_free_slots();
// Of those, the ones it keeps from a login of `role`: none for a superuser; on 16+, only
// superuser_reserved_connections for a role with privileges of pg_use_reserved_connections.
// Catalog lookups: call it before taking our lock.
int kept_free_slots_from(Oid role, bool superuser);
// How many backends for ordinary logins are free now (PostgreSQL's own free PGPROCs), up
// to `limit`.
int free_backends(int limit);

// The free backends a login of `role` may use: those beyond what PostgreSQL keeps from
// it, less `extra` (1 for a login that does not hold its backend yet, as for explain()).
class ServerBackends final : public FreeBackends {
 public:
  ServerBackends(int kept, int extra) : kept_(kept), extra_(extra) {}
  bool at_least(std::int32_t n) const noexcept override;

 private:
  int kept_;
  int extra_;
};

// After pg_connbudget has admitted this login: PostgreSQL's own check of the slots it
// keeps for superusers (right after the authentication hook) must not refuse it, since
// pg_connbudget decided from what the server really has free. Until the login's startup
// transaction ends this backend sees those settings as 0; then they are back.
void skip_reserved_slots_check();

// A WaitEventSet that lives as long as the current resource owner (17+) or memory context.
WaitEventSet* create_wait_event_set(int events);

// The wait events pg_connbudget's waits report in pg_stat_activity: named custom events
// on 17+ (registered on first use), the generic "Extension" event before.
enum class Wait { LoginQueue, Worker, Reload, TerminatedExit };
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
