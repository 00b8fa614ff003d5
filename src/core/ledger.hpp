// The ledger: the shared books of budgets and sessions. It lives in one block of shared
// memory that it carves itself (header, budget states, match order, one session slot per
// PGPROC number), holds no heap pointers, and never allocates or blocks. Every member
// expects the caller to hold the adapter's lock (exclusive for the non-const ones).
//
// A session slot is free, active (it holds one of its budget's slots) or waiting (queued
// for one). Each budget's waiters form a FIFO list threaded through the session slots. A
// slot freed by an active session goes straight to its budget's oldest waiter (handoff):
// every function that frees capacity or changes limits grants all waiters that now fit
// and lists them in a Wakeups, whose latches the caller sets after releasing the lock.
//
// Entitlements: every counted session and every waiting login holds one of the server's
// backends (the capacity). A budget is entitled to its reservation, or, when every
// budget's max_connections fits the capacity (less the waiting room), to its
// max_connections. A login below its budget's entitlement is always admitted (its budget
// permitting). Beyond it, a session needs room in the capacity less the waiting room
// beside every other budget's unused entitlement, and a backend that is really free
// beside them (FreeBackends: PostgreSQL's own count, which sees logins still starting or
// on their way out); without the first, a login of a queueing budget waits for shared
// capacity, if such a backend is free for it. So waiting logins never take a backend
// another budget is entitled to. Capacity that frees goes to the waiters that can take it
// by budget priority, then arrival (FIFO within a budget). A login the server has no
// backend for takes the place of the youngest waiter of a budget with a lower priority,
// if there is one (that waiter is displaced, told so).
//
// Invariants: a budget's `active` and `waiting` equal the numbers of session slots naming
// it in that state, and its queue holds exactly its waiting slots, oldest first; the
// header's `occupied`, `unused_entitled` and the other sums are the sums over all budgets;
// `displaced` counts the displaced slots. Slots are the truth: reconfigure() recounts and
// rebuilds everything from them. Nobody waits while their budget could take one more
// session, unless it is paused.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "core/admission.hpp"
#include "core/budget.hpp"
#include "core/client_address.hpp"
#include "core/first_touch.hpp"
#include "core/fixed_string.hpp"
#include "core/free_backends.hpp"
#include "core/log_limiter.hpp"
#include "core/login_attributes.hpp"
#include "core/match_index.hpp"

namespace connbudget {

inline constexpr std::int32_t kNoBudget = -1;
inline constexpr std::int32_t kDefaultBudget = 0;  // logins no budget matches
inline constexpr std::int32_t kExemptBudget = 1;   // superusers, never limited
inline constexpr std::int32_t kFirstConfiguredBudget = 2;
inline constexpr std::int32_t kNoSession = -1;

// Waits (of logins admitted after waiting) by length: up to 1 ms, 10 ms, 100 ms, 1 s,
// 10 s, and longer.
inline constexpr std::array<std::int64_t, 5> kWaitBucketBoundsUs = {1'000, 10'000, 100'000, 1'000'000,
                                                                    10'000'000};
inline constexpr std::size_t kWaitBuckets = kWaitBucketBoundsUs.size() + 1;

// The bucket of a wait of waited_us.
std::size_t wait_bucket(std::int64_t waited_us) noexcept;

// What happened to a budget's logins since stats_reset_us. Plain data: it is saved to disk
// at a clean shutdown and loaded at start, so a change of layout needs a new file format.
struct BudgetCounters {
  std::int64_t admitted = 0;
  std::int64_t rejected_full = 0;        // the budget was full and refuses
  std::int64_t rejected_queue_full = 0;  // full, and so was its queue
  std::int64_t rejected_reserved = 0;    // the rest was reserved for others (waiters displaced too)
  std::int64_t rejected_paused = 0;      // the budget was paused and refuses
  std::int64_t rejected_server_full = 0;  // the server had no backend left for an ordinary login
  std::int64_t queued = 0;
  std::int64_t timed_out = 0;
  std::int64_t abandoned = 0;   // left the queue: client gone
  std::int64_t terminated = 0;  // left the queue: backend terminated
  std::int64_t reclaimed = 0;   // its sessions ended while idle, for waiting logins (core/reclaim)
  std::int64_t mismatched = 0;  // logins that claimed its application_name with another role
  std::int64_t would_reject = 0;  // admitted by monitor mode, enforcement would have refused
  std::int64_t would_queue = 0;   // admitted by monitor mode, enforcement would have queued
  std::int64_t waits = 0;  // admitted after waiting; the denominator of the mean wait
  std::int64_t wait_total_us = 0;
  std::int64_t wait_max_us = 0;
  std::array<std::int64_t, kWaitBuckets> wait_histogram{};
  std::int32_t peak = 0;
  std::int64_t peak_at_us = 0;
  std::int64_t last_refusal_us = 0;  // 0: none (refusals at login, timeouts, displacements)
  std::int64_t stats_reset_us = 0;

  // Logins turned away at once (timeouts are counted apart).
  std::int64_t rejected() const noexcept {
    return rejected_full + rejected_queue_full + rejected_reserved + rejected_paused + rejected_server_full;
  }
};

struct BudgetState {
  // A login's first access to the slot, at each end of it (it may span two pages).
  FirstTouch touch_head;
  BudgetDefinition definition;  // for default: the limits of the last login's settings
  bool configured = false;  // part of the live configuration (always true for the implicit two)
  std::int32_t reserved = 0;  // the reservation honoured: definition's, cut if the server is short
  // Backends it is owed: its honoured reservation, or its max_connections when every
  // budget's fits the capacity (LedgerHeader::fits).
  std::int32_t entitled = 0;
  std::int32_t active = 0;
  std::int32_t waiting = 0;
  std::int32_t queue_head = kNoSession;  // oldest waiter
  std::int32_t queue_tail = kNoSession;  // newest waiter
  std::int32_t next_waiting = kNoBudget;  // the list of budgets with waiters (header)
  std::int32_t prev_waiting = kNoBudget;
  std::int32_t reclaiming = 0;  // sessions being ended for its waiters that have not exited yet
  bool paused = false;    // connbudget.pause(): no new sessions until resumed
  bool restored = false;  // not configured: counters loaded from disk, kept for its name
  BudgetCounters counters;
  LogLimiter log;  // the server log lines about its refusals
  FirstTouch touch_tail;

  void touch() const noexcept {
    touch_head.touch();
    touch_tail.touch();
  }
};

// Displaced: was waiting, gave its place to a higher-priority login; counted nowhere, its
// backend is about to exit.
enum class SessionPhase : std::uint8_t { Free, Waiting, Active, Displaced };

struct SessionState {
  // A login's first access to its slot, at each end of it (it may span two pages): with
  // more than about a hundred connections the slots run past the first window.
  FirstTouch touch_head;
  SessionPhase phase = SessionPhase::Free;
  std::int32_t budget = kNoBudget;
  std::int32_t pid = 0;
  std::int64_t since_us = 0;     // when it began to wait, or to hold its slot
  std::int64_t waited_us = 0;    // active: how long it waited before its slot was granted
  std::int64_t granted_us = 0;   // active after waiting: when the slot was handed to it
  std::uint64_t ticket = 0;      // waiting: arrival order across all budgets
  // Waiting (or active after it): a login of a full budget that refuses, in its grace
  // (Policy::reject_grace_ms). Never counted as queued: it is admitted, or refused as the
  // budget is full (rejected_full) however it leaves; if the grace runs out it is told so.
  bool grace = false;
  std::int32_t next = kNoSession;  // waiting: the next (younger) waiter of the budget
  std::int32_t prev = kNoSession;
  std::int32_t displaced_by = kNoBudget;  // displaced: the budget it gave its place to, if any
  LogLimiter::Decision displaced_log;    // displaced: whether to log the refusal
  // Active, being ended while idle (core/reclaim): for the waiters of this budget (kNoBudget
  // once that budget is gone), its name, and how long the session had been idle. Read by
  // the session itself, without the lock, as it ends: written before it is signalled.
  std::int32_t reclaimed_for = kNoBudget;
  bool reclaimed = false;
  std::int64_t reclaimed_idle_us = 0;
  std::int32_t reclaimed_after_ms = 0;     // its budget's idle_reclaim then
  LogLimiter::Decision reclaimed_log;     // whether its message goes to the server log
  // (And the budgets' names, in ReclaimNames: apart, so that the slots every login writes
  // stay small.)
  FixedString<kNameMax> application_name;  // truncated like pg_stat_activity's
  FixedString<kNameMax> role_name;
  FixedString<kNameMax> database_name;
  ClientAddress client_addr;
  FirstTouch touch_tail;

  void touch() const noexcept {
    touch_head.touch();
    touch_tail.touch();
  }
};

// For an active session being ended while idle: the names its message gives, as they were
// when it was marked (its budget may be gone by the time it reads them).
struct ReclaimNames {
  FixedString<kNameMax> for_budget;  // whose waiters it is ended for
  FixedString<kNameMax> own_budget;
};

struct LedgerHeader {
  std::uint64_t generation = 0;  // bumped by every reconfigure() that changes something
  std::uint64_t next_ticket = 1;
  bool enforcement_enabled = true;  // connbudget.enabled, as the last login or reload saw it
  std::int32_t capacity = 0;         // the server's backends for ordinary logins (Policy)
  std::int32_t waiting_room = 0;     // of which sessions beyond reservations leave free (Policy)
  std::int32_t occupied = 0;         // sum of active + waiting over all budgets
  std::int32_t unused_entitled = 0;  // sum of entitled - active - waiting, where positive
  std::int32_t sessions = 0;         // sum of active over all budgets
  std::int32_t unused_entitled_sessions = 0;  // sum of entitled - active, where positive
  std::int32_t waiting = 0;          // sum of waiting over all budgets
  std::int32_t displaced = 0;        // displaced waiters whose backends have not exited yet
  // Every budget's max_connections (and default's, if limited) fits the capacity less the
  // waiting room: each budget is entitled to its max_connections, not only its reservation.
  bool fits = false;
  std::int32_t waiting_budgets = kNoBudget;  // first budget with waiters (linked list)
  std::int32_t configured_count = 0;
  bool uses_role_groups = false;  // some budget matches "+role": logins must supply member_of
  bool uses_idle_reclaim = false;  // some budget (default included) has an idle_reclaim
  std::int32_t live_table = 0;  // which of the two match index tables the live index header views
  bool index_current = false;   // and whether it is the live configuration's (else: scan)
  std::uint64_t index_builds = 0;  // builds of the spare block so far
};

struct Admission {
  Verdict verdict = Verdict::Admit;
  std::int32_t budget = kNoBudget;
  std::int32_t active = 0;   // sessions the budget held when the login was decided
  std::int32_t waiting = 0;  // logins that waited for it then (not counting this one)
  std::int32_t limit = BudgetLimits::kUnlimited;
  std::int32_t reserved = 0;  // the budget's reservation
  std::int32_t queue_timeout_ms = 0;  // with Verdict::Queue: how long to wait at most
  bool grace = false;  // with Verdict::Queue: the budget refuses, the wait is its grace
  std::int32_t capacity = 0;          // the server then: its capacity,
  std::int32_t free = 0;              // how much of it the ledger counted free,
  std::int32_t reserved_for_others = 0;  // and how much of that other budgets were entitled to;
  std::int32_t waiting_room = 0;      // the part of the capacity kept for waiting logins;
  std::int32_t server_sessions = 0;   // the sessions (superusers' included),
  std::int32_t server_exempt = 0;     // the superusers' sessions,
  std::int32_t server_waiting = 0;    // the waiting logins
  std::int32_t server_displaced = 0;  // and the displaced ones still leaving it counted
  std::int32_t displaced = kNoSession;   // a lower-priority waiter that gave its place
  Verdict enforced = Verdict::Admit;     // what enforcement would do (differs in monitor mode), grace aside
  bool paused = false;                   // the budget is paused
  LogLimiter::Decision log;  // refused, or admitted over its limit in monitor mode: log it?
  // The budget whose application_name the login claimed with another role (kNoBudget if
  // none), and whether to log that.
  std::int32_t mismatched = kNoBudget;
  LogLimiter::Decision mismatch_log;
};

// The budget of a login, and the entitlement it claimed without being its role's.
struct Classification {
  std::int32_t budget = kDefaultBudget;
  // The first budget in match order before `budget` whose row names both an
  // application_name and a role, and that the login claimed (every condition but the
  // role's held) with another role; kNoBudget if none, or if `budget` is an entitlement
  // of the login's own.
  std::int32_t mismatched = kNoBudget;
};

// Why a waiting login leaves the queue without its slot.
// Terminated and Canceled (pg_terminate_backend, pg_cancel_backend, shutdown) are both
// counted as terminated.
enum class Departure : std::uint8_t { TimedOut, Abandoned, Terminated, Canceled };

struct Departed {
  enum class Outcome : std::uint8_t {
    Left,       // it left the queue
    Granted,    // too late: its slot had been granted, the login is admitted
    Displaced,  // too late: it had given its place to a higher-priority login
  };
  Outcome outcome = Outcome::Left;
  std::int32_t budget = kNoBudget;  // the budget it waited for at the end (reloads move waiters)
  LogLimiter::Decision log;         // with Left: whether to log it
  bool refused = false;             // with Left: its grace ran out; it is told the budget is full
};

// Why a budget's oldest waiter is still waiting.
enum class WaitReason : std::uint8_t {
  None,            // nobody waits, or it may start now
  Full,            // the budget holds its max_connections
  SharedCapacity,  // the budget has room, the server's shared sessions do not (waiting room)
  Paused,          // an administrator paused the budget
};

struct Reclaim;

// A summary of log lines held back for a budget (LogLimiter).
struct SuppressedLines {
  FixedString<kNameMax> budget;
  std::int64_t count = 0;
};

// The sessions an operation granted a slot to; the caller wakes them after unlocking.
// A buffer of max_sessions entries never overflows: an operation grants a session once.
class Wakeups {
 public:
  explicit Wakeups(std::span<std::int32_t> buffer) noexcept : buffer_(buffer) {}
  void add(std::int32_t session) noexcept {
    if (count_ < buffer_.size()) buffer_[count_++] = session;
  }
  std::span<const std::int32_t> sessions() const noexcept { return buffer_.first(count_); }

 private:
  std::span<std::int32_t> buffer_;
  std::size_t count_ = 0;
};

struct ReconfigureResult {
  enum class Status : std::uint8_t { Applied, Unchanged, TooManyBudgets, DuplicateName };
  Status status = Status::Unchanged;
  std::int32_t moved_to_default = 0;  // sessions of deleted budgets, now counted under default
  std::int32_t corrected = 0;         // budgets whose counts disagreed with their sessions
  std::int32_t reservation_shortfall = 0;  // reserved slots the capacity cannot honour
  std::int32_t displaced = 0;     // waiters that gave their place to raised reservations
  std::int32_t overcommitted = 0;  // backends in use beyond what the reservations leave
  std::string_view duplicate;         // with DuplicateName: the name (a view into the input)
};

// A waiting session's place in its budget's queue (1 = next), or 0 if it is not waiting;
// `sessions` may be the ledger's or a copy of them.
std::int32_t queue_position(std::span<const SessionState> sessions, std::int32_t session) noexcept;

class Ledger {
 public:
  static std::size_t bytes_needed(std::int32_t max_budgets, std::int32_t max_sessions) noexcept;
  // Scratch entries reconfigure() needs, so that nothing is allocated under the lock.
  static std::size_t scratch_entries(std::int32_t max_budgets, std::int32_t max_sessions) noexcept;

  // Views a block of bytes_needed() bytes; initialize() it once, when the block is new.
  Ledger(void* block, std::int32_t max_budgets, std::int32_t max_sessions) noexcept;
  void initialize(std::int64_t now_us) noexcept;

  // The budget of a login: exempt ones go to kExemptBudget, else the first configured
  // budget (in match order) whose rule matches, else kDefaultBudget; and the first
  // entitlement on the way that it claimed with another role. Looks at the live match
  // index's candidates only; scans every rule when there is no live index or it cannot
  // answer for this login. Needs the lock, shared at least.
  Classification classify(const LoginAttributes& login, bool exempt) const noexcept;
  // The same by looking at every rule: what the index must always agree with.
  Classification classify_by_scan(const LoginAttributes& login, bool exempt) const noexcept;

  // A match index built for one array of definitions (see prepare_index).
  struct PreparedIndex {
    const BudgetDefinition* definitions = nullptr;
    std::size_t count = 0;
    std::uint64_t serial = 0;  // which build of the spare block
    bool built = false;
  };
  // Builds the match index of definitions into the block that is not live. Without the
  // lock: only the one process that loads configurations calls it, and no login reads
  // that block.
  PreparedIndex prepare_index(std::span<const BudgetDefinition> definitions,
                              std::span<MatchIndex::BuildEntry> scratch) noexcept;
  // Right after reconfigure() applied (or found unchanged) `definitions`, under the same
  // exclusive lock: makes the prepared index live, if it was built from that very array
  // and the spare block has not been built again since. Every reconfigure() that changes
  // the configuration stops using the old one (logins are then scanned).
  void publish_index(const PreparedIndex& prepared, std::span<const BudgetDefinition> definitions) noexcept;
  // The live index's figures (all zero when there is none).
  MatchIndex::Summary index_summary() const noexcept;

  // What a login into `budget` would get now, with the numbers; changes nothing. `free`
  // says what the server really has free for it.
  Admission evaluate(std::int32_t budget, const Policy& policy, const FreeBackends& free) const noexcept;

  // The waiter that would give its place to a login of `budget` the server has no backend
  // for: the youngest of the lowest-priority budget below it, provided that one backend is
  // all the login lacks (displacing frees a backend, never a session). kNoSession if none.
  std::int32_t victim_for(std::int32_t budget, const Policy& policy, const FreeBackends& free) const noexcept;

  // Decides the login of session slot `session` into its budget and books the slot as
  // active (admitted) or waiting (queued), or books nothing (refused); may displace a
  // lower-priority waiter (listed in wakeups). A slot still booked is released first. A
  // mismatch is counted on the entitlement it claimed, and with OnMismatch::Refuse refused
  // in that budget's name. Also records the policy's default limits, enforcement switch
  // and capacity.
  Admission admit(std::int32_t session, const Classification& classification, const LoginAttributes& login,
                  std::int32_t pid, const Policy& policy, const FreeBackends& free,
                  std::int64_t now_us, Wakeups& wakeups) noexcept;

  // Gives back what session slot `session` holds, if anything (a waiter leaving this way
  // counts as abandoned). Idempotent.
  void release(std::int32_t session, std::int64_t now_us, Wakeups& wakeups) noexcept;

  // A waiting login gives up its place. If its slot was granted meanwhile it stays
  // admitted (left = false); the caller decides that race under the lock.
  Departed leave_queue(std::int32_t session, Departure why, std::int64_t now_us,
                       Wakeups& wakeups) noexcept;

  // A waiting login that ends although its slot was just handed to it (terminated or
  // canceled as the slot came): gives the slot back and counts it as leaving the queue
  // for `why`, not as admitted. For a login still waiting, leave_queue(). Granted (and
  // nothing changes) if the login was admitted without waiting. Only the login itself
  // calls it, before it leaves the login hook.
  Departed forgo_grant(std::int32_t session, Departure why, std::int64_t now_us, Wakeups& wakeups) noexcept;

  // Makes `definitions` (validated, in match order) and the policy's default limits,
  // enforcement switch and capacity the live configuration. Budgets keep their counters by
  // name; sessions and waiters of deleted budgets move to default; reservations are
  // honoured in match order as far as the capacity goes; counts and queues are rebuilt
  // from the session slots; waiters that now fit are granted their slot. On an error
  // status nothing has changed.
  ReconfigureResult reconfigure(std::span<const BudgetDefinition> definitions, const Policy& policy,
                                std::span<std::int32_t> scratch, std::int64_t now_us,
                                Wakeups& wakeups) noexcept;

  // Zeroes the cumulative counters of one budget (by name) or of all (restored ones not
  // yet claimed by a configuration are dropped); false if unknown.
  bool reset_stats(std::optional<std::string_view> budget, std::int64_t now_us) noexcept;

  // Pauses (no new sessions: its logins queue or are refused) or resumes a budget;
  // resuming grants the waiters that now fit. Existing sessions are never touched.
  void set_paused(std::int32_t budget, bool paused, std::int64_t now_us, Wakeups& wakeups) noexcept;

  // Gives counters saved at the last clean shutdown to the budget called name: to default
  // or exempt at once, else kept (restored) until a configuration names that budget. A
  // name given again overwrites its counters. False if there is no slot left. All the
  // saved budgets go through one RestoreIndex (scratch of restore_index_entries(), which
  // finds a name in O(1)), at start, before the first configuration.
  struct RestoreIndex {
    std::span<std::int32_t> table;  // budget slots by name hash; kNoBudget = empty
    std::size_t next_free = kFirstConfiguredBudget;
  };
  static std::size_t restore_index_entries(std::int32_t max_budgets) noexcept;
  RestoreIndex restore_index(std::span<std::int32_t> scratch) const noexcept;
  bool restore(std::string_view name, const BudgetCounters& counters, RestoreIndex& index) noexcept;

  // Budgets whose held-back log lines are due for a summary: up to out.size() of them are
  // written to out and taken (counted as logged); returns how many. *next_due_us gets
  // when the next summary will be due (unchanged if none pending).
  std::size_t take_suppressed(std::int64_t now_us, std::span<SuppressedLines> out,
                              std::int64_t* next_due_us) noexcept;

  // Why the oldest waiter of `budget` waits.
  WaitReason why_waiting(std::int32_t budget) const noexcept;

  // Right before the session of `reclaim` is signalled (core/reclaim.hpp): if the plan
  // still holds (that session is still that budget's and not being ended already, and
  // its waiters still need it), marks it, counts it, decides whether its message is
  // logged (SessionState::reclaimed_log), and returns true.
  bool mark_reclaimed(const Reclaim& reclaim, std::int64_t now_us) noexcept;
  // The names a session being ended while idle gives in its message (see mark_reclaimed).
  const ReclaimNames& reclaim_names(std::int32_t session) const noexcept {
    return reclaim_names_[static_cast<std::size_t>(session)];
  }

  // Index of the budget called name (configured or implicit), or kNoBudget.
  std::int32_t find(std::string_view name) const noexcept;

  // The limits a budget is held to (for default: those the last login's settings gave).
  const BudgetLimits& limits_of(std::int32_t budget) const noexcept;


  const LedgerHeader& header() const noexcept { return *header_; }
  std::span<const BudgetState> budgets() const noexcept { return budgets_; }
  std::span<const std::int32_t> match_order() const noexcept {
    return match_order_.first(static_cast<std::size_t>(header_->configured_count));
  }
  std::span<const SessionState> sessions() const noexcept { return sessions_; }

  // How many budgets connbudget.status shows, and visit(slot) for each in its order:
  // match order, then default and exempt.
  std::size_t status_count() const noexcept { return match_order().size() + 2; }
  template <typename Visit>
  void visit_in_status_order(Visit&& visit) const noexcept {
    for (const std::int32_t slot : match_order()) visit(slot);
    visit(kDefaultBudget);
    visit(kExemptBudget);
  }

 private:
  static std::size_t budget_slots(std::int32_t max_budgets) noexcept;
  static void record_peak(BudgetState& budget, std::int64_t now_us) noexcept;
  std::size_t table_size() const noexcept;
  void enqueue(std::int32_t session) noexcept;
  void unlink(std::int32_t session) noexcept;
  // The list of budgets that have waiters, which grant_waiters and displacement scan.
  void link_waiting_budget(std::int32_t budget) noexcept;
  void unlink_waiting_budget(std::int32_t budget) noexcept;
  // The part of a budget's entitlement it does not use (counting its waiters).
  std::int32_t unused_entitlement(std::int32_t budget) const noexcept;
  // Sets every budget's entitlement from the configuration and the capacity, the header's
  // sums from the counts, and whether any budget reclaims idle sessions.
  void refresh_entitlements() noexcept;
  // Changes a budget's counts, keeping the header's sums true.
  void occupy(std::int32_t budget, std::int32_t active_delta, std::int32_t waiting_delta) noexcept;
  // True if one more session of `budget` leaves the waiting room and every other unused
  // entitlement free (as the ledger counts).
  bool session_room(std::int32_t budget) const noexcept;
  // True if one more backend of `budget` leaves every other unused entitlement free, as
  // the ledger counts and as the server really has them (`free`; asked only if needed).
  bool backend_room(std::int32_t budget, const FreeBackends& free) const noexcept;
  // Pressure on `budget` for a login now.
  Pressure pressure_on(std::int32_t budget, const FreeBackends& free) const noexcept;
  // The youngest waiter of the lowest-priority budget whose priority is below `priority`.
  std::int32_t youngest_waiter_below(std::int32_t priority) const noexcept;
  // Takes a waiter out of its queue: it gave its place (to `by`, or to reservations).
  void displace(std::int32_t waiter, std::int32_t by, std::int64_t now_us) noexcept;
  // Counts a waiting login leaving for `why`; one in its grace, as refused for a full budget.
  static void count_departure(BudgetCounters& counters, bool grace, Departure why, std::int64_t now_us) noexcept;
  // Counts a login turned away for `verdict` (or a displaced waiter); the log decision.
  LogLimiter::Decision count_refusal(std::int32_t budget, Verdict verdict, std::int64_t now_us) noexcept;
  // Applies the policy's settings to the ledger (entitlements follow a changed capacity,
  // waiting room or default limit).
  void adopt(const Policy& policy) noexcept;
  // True if `budget` is enforced (neither in monitor mode nor with enforcement off).
  bool enforced(std::int32_t budget) const noexcept;
  // True if the oldest waiter of `budget` may become a session now.
  bool head_may_start(std::int32_t budget) const noexcept;
  // Hands every slot that can now be given to waiters: by budget priority, then arrival.
  void grant_waiters(std::int64_t now_us, Wakeups& wakeups) noexcept;

  // Visits the rule of budget `slot` for classify(); true once decided.
  bool consider(std::int32_t slot, const LoginAttributes& login, Classification& c) const noexcept;
  // The live match index, and the spare one the next configuration's is built in.
  MatchIndex live_index() const noexcept;
  MatchIndex spare_index() const noexcept;

  LedgerHeader* header_;
  // Two match indexes: the spare one is built, then its header is copied to the live
  // header's place (every login reads that one) and the two swap tables.
  void* live_index_header_ = nullptr;
  void* spare_index_header_ = nullptr;
  std::array<void*, 2> index_tables_{};
  std::span<BudgetState> budgets_;       // [default, exempt, configurable slots...]
  std::span<std::int32_t> match_order_;  // budget indexes, first configured_count in use
  std::span<SessionState> sessions_;     // indexed by PGPROC number
  std::span<ReclaimNames> reclaim_names_;  // indexed like sessions_
};

}  // namespace connbudget
