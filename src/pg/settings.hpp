// The connbudget.* GUCs (postgresql.conf settings) and what they imply.
#pragma once

#include "core/admission.hpp"

namespace connbudget::pg {

extern bool enabled;
extern char* database;
extern int default_max_connections;
extern int default_on_full;  // an OnFull value
extern int queue_timeout_ms;
extern int max_queue;
extern bool exempt_superusers;
extern int max_budgets;
extern int waiting_room;
extern int sample_interval_ms;
extern int history_size;
extern int idle_reclaim_ms;
extern int on_mismatch;  // an OnMismatch value
extern int reject_grace_ms;

// Defines the settings a session may load at any time and, when preloading, reserves the
// "connbudget." prefix; from _PG_init, after define_server_start_settings().
void define_settings();
// The postmaster-context ones; only from shared_preload_libraries.
void define_server_start_settings();
// The most budgets the worker will load: connbudget.max_budgets, or on a server that does
// not preload the library, what postgresql.conf sets it to for the start that will.
int configured_max_budgets();

// What the settings decide: the implicit default budget's limits, queue defaults, whether
// enforcement is on, and the server's capacity.
Policy current_policy();

}  // namespace connbudget::pg
