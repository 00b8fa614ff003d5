// The ledger: the shared books of budgets and sessions. It lives in one block of shared
// memory that it carves itself (header, budget states, match order, one session slot per
// PGPROC number), holds no heap pointers, and never allocates or blocks. Every member
// expects the caller to hold the adapter's lock (exclusive for the non-const ones).
//
// Invariant: a budget's `active` equals the number of session slots naming it. Slots are
// the truth; reconfigure() recounts from them, so any drift is found and corrected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "core/admission.hpp"
#include "core/budget.hpp"
#include "core/client_address.hpp"
#include "core/fixed_string.hpp"
#include "core/login_attributes.hpp"

namespace connbudget {

inline constexpr std::int32_t kNoBudget = -1;
inline constexpr std::int32_t kDefaultBudget = 0;  // logins no budget matches
inline constexpr std::int32_t kExemptBudget = 1;   // superusers, never limited
inline constexpr std::int32_t kFirstConfiguredBudget = 2;

struct BudgetCounters {
  std::int64_t admitted = 0;
  std::int64_t rejected = 0;
  std::int64_t queued = 0;
  std::int64_t timed_out = 0;
  std::int64_t abandoned = 0;
  std::int64_t waits = 0;  // admitted after waiting; the denominator of the mean wait
  std::int64_t wait_total_us = 0;
  std::int64_t wait_max_us = 0;
  std::int32_t peak = 0;
  std::int64_t stats_reset_us = 0;
};

struct BudgetState {
  BudgetDefinition definition;
  bool configured = false;  // part of the live configuration (always true for the implicit two)
  std::int32_t active = 0;
  BudgetCounters counters;
};

struct SessionState {
  std::int32_t budget = kNoBudget;  // kNoBudget: the slot is free
  std::int32_t pid = 0;
  std::int64_t since_us = 0;
  FixedString<kNameMax> application_name;  // truncated like pg_stat_activity's
  FixedString<kNameMax> role_name;
  FixedString<kNameMax> database_name;
  ClientAddress client_addr;
};

struct LedgerHeader {
  std::uint64_t generation = 0;  // bumped by every reconfigure() that changes something
  std::int32_t configured_count = 0;
  bool uses_role_groups = false;  // some budget matches "+role": logins must supply member_of
};

struct Admission {
  Verdict verdict = Verdict::Admit;
  std::int32_t budget = kNoBudget;
  std::int32_t active = 0;  // sessions the budget held when the login was decided
  std::int32_t limit = BudgetLimits::kUnlimited;
};

struct ReconfigureResult {
  enum class Status : std::uint8_t { Applied, Unchanged, TooManyBudgets, DuplicateName };
  Status status = Status::Unchanged;
  std::int32_t moved_to_default = 0;  // sessions of deleted budgets, now counted under default
  std::int32_t corrected = 0;         // budgets whose count disagreed with their sessions
  std::string_view duplicate;         // with DuplicateName: the name (a view into the input)
};

class Ledger {
 public:
  static std::size_t bytes_needed(std::int32_t max_budgets, std::int32_t max_sessions) noexcept;
  // Scratch entries reconfigure() needs, so that nothing is allocated under the lock.
  static std::size_t scratch_entries(std::int32_t max_budgets) noexcept;

  // Views a block of bytes_needed() bytes; initialize() it once, when the block is new.
  Ledger(void* block, std::int32_t max_budgets, std::int32_t max_sessions) noexcept;
  void initialize(std::int64_t now_us) noexcept;

  // The budget of a login: exempt ones go to kExemptBudget, else the first configured
  // budget (in match order) whose rule matches, else kDefaultBudget.
  std::int32_t classify(const LoginAttributes& login, bool exempt) const noexcept;

  // Decides the login of session slot `session` into `budget` and, unless refused, books
  // the slot. default_limits are the implicit budget's (from settings).
  Admission admit(std::int32_t session, std::int32_t budget, const LoginAttributes& login,
                  std::int32_t pid, const BudgetLimits& default_limits, bool enforcement_enabled,
                  std::int64_t now_us) noexcept;

  // Gives back what session slot `session` holds, if anything. Idempotent.
  void release(std::int32_t session) noexcept;

  // Makes `definitions` (validated, in match order) the live configuration. Budgets keep
  // their counters by name; sessions of deleted budgets move to default; counts are
  // recounted from the session slots. On an error status nothing has changed.
  ReconfigureResult reconfigure(std::span<const BudgetDefinition> definitions,
                                std::span<std::int32_t> scratch, std::int64_t now_us) noexcept;

  // Zeroes the cumulative counters of one budget (by name) or of all; false if unknown.
  bool reset_stats(std::optional<std::string_view> budget, std::int64_t now_us) noexcept;

  // Index of the budget called name (configured or implicit), or kNoBudget.
  std::int32_t find(std::string_view name) const noexcept;

  // The limits admit() applies to a budget.
  const BudgetLimits& limits_of(std::int32_t budget, const BudgetLimits& default_limits) const noexcept;

  const LedgerHeader& header() const noexcept { return *header_; }
  std::span<const BudgetState> budgets() const noexcept { return budgets_; }
  std::span<const std::int32_t> match_order() const noexcept {
    return match_order_.first(static_cast<std::size_t>(header_->configured_count));
  }
  std::span<const SessionState> sessions() const noexcept { return sessions_; }

 private:
  std::size_t table_size() const noexcept;

  LedgerHeader* header_;
  std::span<BudgetState> budgets_;       // [default, exempt, configurable slots...]
  std::span<std::int32_t> match_order_;  // budget indexes, first configured_count in use
  std::span<SessionState> sessions_;     // indexed by PGPROC number
};

}  // namespace connbudget
