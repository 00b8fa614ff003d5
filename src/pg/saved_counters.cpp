// Saves the budgets' cumulative counters at a clean shutdown and loads them at the next
// start, as pg_stat_statements does: the postmaster writes pg_stat/pg_connbudget.stat when
// it exits normally and reads (then removes) it when it creates shared memory. After a
// crash nothing is written and the file is gone, so the counters start from zero. (An
// immediate shutdown ends the postmaster normally, so it saves them, as pg_stat_statements
// does.) Only the postmaster runs this, at start and at exit, when no backend touches the
// ledger. A damaged or foreign file is reported and ignored; it never stops the server.
extern "C" {
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"
}

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "pg/saved_counters.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"

namespace connbudget::pg {
namespace {

constexpr const char* kFile = "pg_stat/pg_connbudget.stat";
constexpr const char* kTemporaryFile = "pg_stat/pg_connbudget.stat.tmp";
constexpr std::uint32_t kMagic = 0x43425354;  // "CBST"
constexpr std::uint32_t kFormat = 3;          // bump when BudgetCounters changes

struct FileHeader {
  std::uint32_t magic;
  std::uint32_t format;
  std::uint32_t record_size;
  std::int32_t count;
};

struct SavedBudget {
  char name[kNameMax + 1];
  BudgetCounters counters;
};

// False for counters no server could have written: negative counts, impossible times.
bool plausible(const BudgetCounters& c) {
  for (const std::int64_t n : {c.admitted, c.rejected_full, c.rejected_queue_full, c.rejected_reserved,
                               c.rejected_paused, c.rejected_server_full, c.reclaimed, c.mismatched, c.queued, c.timed_out, c.abandoned, c.terminated, c.would_reject,
                               c.would_queue, c.waits, c.wait_total_us, c.wait_max_us, std::int64_t{c.peak}})
    if (n < 0) return false;
  for (const std::int64_t n : c.wait_histogram)
    if (n < 0) return false;
  for (const TimestampTz t : {c.peak_at_us, c.last_refusal_us, c.stats_reset_us})
    if (t != 0 && !IS_VALID_TIMESTAMP(t)) return false;
  return true;
}

void save(int code, Datum) {
  if (code != 0 || !shared_state()) return;  // a crash: nothing is saved
  FILE* file = AllocateFile(kTemporaryFile, PG_BINARY_W);
  if (!file) {
    ereport(LOG, (errcode_for_file_access(), errmsg("could not write file \"%s\": %m", kTemporaryFile)));
    return;
  }
  std::int32_t count = 0;
  for (const BudgetState& budget : ledger().budgets()) count += budget.configured || budget.restored;
  const FileHeader header{kMagic, kFormat, sizeof(SavedBudget), count};
  bool written = std::fwrite(&header, sizeof header, 1, file) == 1;
  for (const BudgetState& budget : ledger().budgets()) {
    if (!written || !(budget.configured || budget.restored)) continue;
    SavedBudget record{};
    strlcpy(record.name, budget.definition.name.c_str(), sizeof record.name);
    record.counters = budget.counters;
    written = std::fwrite(&record, sizeof record, 1, file) == 1;
  }
  if (FreeFile(file) != 0) written = false;
  if (!written) {
    ereport(LOG, (errcode_for_file_access(), errmsg("could not write file \"%s\": %m", kTemporaryFile)));
    unlink(kTemporaryFile);
    return;
  }
  durable_rename(kTemporaryFile, kFile, LOG);
}

void load() {
  FILE* file = AllocateFile(kFile, PG_BINARY_R);
  if (!file) {
    if (errno != ENOENT)
      ereport(LOG, (errcode_for_file_access(), errmsg("could not read file \"%s\": %m", kFile)));
    return;
  }
  FileHeader header{};
  bool valid = std::fread(&header, sizeof header, 1, file) == 1 && header.magic == kMagic &&
               header.format == kFormat && header.record_size == sizeof(SavedBudget) && header.count >= 0;
  std::int32_t restored = 0, dropped = 0;
  const std::size_t entries = Ledger::restore_index_entries(max_budgets);
  auto* scratch = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * entries));
  Ledger::RestoreIndex index = ledger().restore_index(std::span<std::int32_t>(scratch, entries));
  for (std::int32_t i = 0; valid && i < header.count; ++i) {
    SavedBudget record{};
    valid = std::fread(&record, sizeof record, 1, file) == 1 && plausible(record.counters);
    record.name[kNameMax] = '\0';
    if (valid) (ledger().restore(record.name, record.counters, index) ? restored : dropped) += 1;
  }
  FreeFile(file);
  pfree(scratch);
  unlink(kFile);
  if (!valid)
    ereport(LOG, (errmsg("ignoring the rest of \"%s\": it is damaged or from another version of pg_connbudget", kFile),
                  errdetail("The counters of connbudget.status start from zero for the budgets not read.")));
  if (dropped > 0)
    ereport(LOG, (errmsg("pg_connbudget could not restore the counters of %d budgets", dropped),
                  errhint("connbudget.max_budgets is smaller than the number of budgets saved.")));
}

}  // namespace

void restore_saved_counters() {
  load();
  on_shmem_exit(save, 0);
}

}  // namespace connbudget::pg
