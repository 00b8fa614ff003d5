// The worker's side of idle reclaim (core/reclaim.hpp decides whom): ends the sessions idle
// longest for logins that wait for a slot. Which candidates are idle, and since when, comes
// from pg_stat_activity (SPI, outside our lock); the plan is made under a shared lock; right
// before each signal the session is rechecked under the exclusive lock — still idle outside
// a transaction by its PGPROC (no transaction, waiting for its client), still that budget's,
// still needed — and marked. It ends by pg_terminate_backend()'s SIGTERM; its own
// emit_log_hook then names the budget in its FATAL (login_reports.cpp). Logins never wait
// for this: without the worker, waiting logins wait as they would without idle_reclaim.
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
}

namespace connbudget::pg {

// Ends the idle sessions waiting logins may take now; returns when to look again
// (DT_NOEND: not until a login starts waiting). Only the background worker calls this.
TimestampTz reclaim_idle_sessions();

}  // namespace connbudget::pg
