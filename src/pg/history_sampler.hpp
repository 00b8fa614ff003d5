// The worker's side of connbudget.history: samples every budget each
// connbudget.sample_interval.
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
}

namespace connbudget::pg {

// Samples every budget into the history if a sample is due at `now`; returns when the next
// one is (DT_NOEND when there is no history). A changed connbudget.sample_interval counts
// from the last sample at once. Only the background worker calls this.
TimestampTz sample_history_when_due(TimestampTz now);

}  // namespace connbudget::pg
