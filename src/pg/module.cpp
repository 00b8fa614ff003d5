// Module entry point: defines the settings and, when loaded by shared_preload_libraries,
// asks for shared memory and installs the login hook and the background worker.
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
}

#include "pg/history_store.hpp"
#include "pg/login_hook.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/worker.hpp"

void _PG_init(void) {
  using namespace connbudget::pg;
  if (process_shared_preload_libraries_in_progress) define_server_start_settings();
  define_settings();  // last: it may reserve the prefix
  if (!process_shared_preload_libraries_in_progress) return;
  request_shared_state();
  request_history();  // after the ledger: the history starts from its counters
  install_login_hook();
  register_worker();
}
