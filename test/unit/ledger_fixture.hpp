// The ledger test fixture: a ledger in a heap block, helpers that log in, release and
// leave the queue, and a check of every invariant of ledger.hpp after each step.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "core/ledger.hpp"

namespace connbudget::testing_support {

inline BudgetDefinition budget(std::string_view name, std::optional<std::string_view> app, int max,
                        std::string_view on_full = "reject") {
  BudgetRow row;
  row.name = name;
  row.application_name = app;
  row.max_connections = max;
  row.on_full = on_full;
  BudgetDefinition def;
  EXPECT_FALSE(build_definition(row, def).has_value());
  return def;
}

inline BudgetDefinition queueing(std::string_view name, std::string_view app, int max, int max_queue = 10) {
  BudgetDefinition def = budget(name, app, max, "queue");
  def.limits.max_queue = max_queue;
  return def;
}

inline BudgetDefinition reclaiming(BudgetDefinition def, int idle_reclaim_ms) {
  def.limits.idle_reclaim_ms = idle_reclaim_ms;
  return def;
}

inline BudgetDefinition with(BudgetDefinition def, int reserved, int priority = 0) {
  def.limits.reserved = reserved;
  def.limits.priority = priority;
  return def;
}

// The server as the tests have it: every backend the ledger counts, displaced waiters
// until they exit, and `starting_or_ending` more that the ledger does not see (logins still
// authenticating, refused ones on their way out).
class FakeServer : public FreeBackends {
 public:
  explicit FakeServer(const Ledger& ledger) : ledger_(ledger) {}
  bool at_least(std::int32_t n) const noexcept override {
    const LedgerHeader& h = ledger_.header();
    return h.capacity - h.occupied - h.displaced - starting_or_ending - 1 >= n;
  }
  int starting_or_ending = 0;

 private:
  const Ledger& ledger_;
};

class LedgerTest : public ::testing::Test {
 protected:
  static constexpr int kMaxBudgets = 8;
  static constexpr int kSessions = 16;

  LedgerTest()
      : block_(Ledger::bytes_needed(kMaxBudgets, kSessions) / sizeof(std::max_align_t) + 1),
        scratch_(Ledger::scratch_entries(kMaxBudgets, kSessions)),
        buffer_(kSessions),
        ledger_(block_.data(), kMaxBudgets, kSessions),
        server_(ledger_) {
    ledger_.initialize(1);
  }

  using Woken = std::vector<std::int32_t>;

  ReconfigureResult configure(std::vector<BudgetDefinition> defs) {
    Wakeups wakeups(buffer_);
    const ReconfigureResult result = ledger_.reconfigure(defs, policy_, scratch_, ++now_, wakeups);
    woken_.assign(wakeups.sessions().begin(), wakeups.sessions().end());
    check_invariants();
    return result;
  }

  Admission login_as(int session, std::string_view app, bool exempt = false) {
    const LoginAttributes login{app, "role", "db", {}, {}};
    Wakeups wakeups(buffer_);
    const Admission admission = ledger_.admit(session, ledger_.classify(login, exempt), login,
                                              1000 + session, policy_, server_, ++now_, wakeups);
    woken_.assign(wakeups.sessions().begin(), wakeups.sessions().end());
    check_invariants();
    return admission;
  }

  // Returns the sessions the release granted a slot to.
  Woken release(int session) {
    Wakeups wakeups(buffer_);
    ledger_.release(session, ++now_, wakeups);
    check_invariants();
    return Woken(wakeups.sessions().begin(), wakeups.sessions().end());
  }

  Departed leave(int session, Departure why) {
    Wakeups wakeups(buffer_);
    const Departed departed = ledger_.leave_queue(session, why, ++now_, wakeups);
    woken_.assign(wakeups.sessions().begin(), wakeups.sessions().end());
    check_invariants();
    return departed;
  }

  SessionPhase phase(int session) const { return ledger_.sessions()[session].phase; }

  // Counters saved at a clean shutdown, given back as the server starts (one index for all).
  bool restore(std::string_view name, const BudgetCounters& counters) {
    if (!restore_index_) {
      restore_scratch_.resize(Ledger::restore_index_entries(kMaxBudgets));
      restore_index_ = ledger_.restore_index(restore_scratch_);
    }
    return ledger_.restore(name, counters, *restore_index_);
  }

  // The invariants of ledger.hpp, recomputed from the session slots.
  void check_invariants() const {
    int occupied = 0, unused = 0, sessions = 0, unused_sessions = 0, waiting_total = 0, displaced = 0;
    const LedgerHeader& h = ledger_.header();
    std::int64_t wanted = 0;  // every budget's max_connections: do they fit?
    for (const std::int32_t index : ledger_.match_order())
      wanted += ledger_.budgets()[index].definition.limits.max_connections;
    if (ledger_.limits_of(kDefaultBudget).max_connections != BudgetLimits::kUnlimited)
      wanted += ledger_.limits_of(kDefaultBudget).max_connections;
    ASSERT_EQ(h.fits, wanted <= h.capacity - h.waiting_room);
    for (std::size_t b = 0; b < ledger_.budgets().size(); ++b) {
      const BudgetState& budget = ledger_.budgets()[b];
      const int max = ledger_.limits_of(static_cast<int>(b)).max_connections;
      const int entitled = h.fits && b != kExemptBudget && max != BudgetLimits::kUnlimited && budget.configured
                               ? std::max(max, budget.reserved)
                               : budget.reserved;
      ASSERT_EQ(budget.entitled, entitled) << "budget " << b;
      occupied += budget.active + budget.waiting;
      unused += std::max(0, budget.entitled - budget.active - budget.waiting);
      sessions += budget.active;
      unused_sessions += std::max(0, budget.entitled - budget.active);
      waiting_total += budget.waiting;
    }
    for (const SessionState& s : ledger_.sessions()) displaced += s.phase == SessionPhase::Displaced;
    for (std::size_t b = 0; b < ledger_.budgets().size(); ++b) {
      int reclaiming = 0;
      for (const SessionState& s : ledger_.sessions())
        reclaiming += s.phase == SessionPhase::Active && s.reclaimed && s.reclaimed_for == static_cast<int>(b);
      ASSERT_EQ(ledger_.budgets()[b].reclaiming, reclaiming) << "budget " << b;
    }
    ASSERT_EQ(h.occupied, occupied);
    ASSERT_EQ(h.unused_entitled, unused);
    ASSERT_EQ(h.sessions, sessions);
    ASSERT_EQ(h.unused_entitled_sessions, unused_sessions);
    ASSERT_EQ(h.waiting, waiting_total);
    ASSERT_EQ(h.displaced, displaced);
    int listed_budgets = 0;
    for (std::int32_t b = h.waiting_budgets; b != kNoBudget; b = ledger_.budgets()[b].next_waiting) {
      ASSERT_GT(ledger_.budgets()[b].waiting, 0) << "budget " << b;
      ++listed_budgets;
    }
    int budgets_waited_for = 0;
    for (const BudgetState& budget : ledger_.budgets()) budgets_waited_for += budget.waiting > 0;
    ASSERT_EQ(listed_budgets, budgets_waited_for);
    for (std::size_t b = 0; b < ledger_.budgets().size(); ++b) {
      const BudgetState& budget = ledger_.budgets()[b];
      int active = 0, waiting = 0;
      for (const SessionState& s : ledger_.sessions()) {
        if (s.budget != static_cast<int>(b)) continue;
        active += s.phase == SessionPhase::Active;
        waiting += s.phase == SessionPhase::Waiting;
      }
      ASSERT_EQ(budget.active, active) << "budget " << b;
      ASSERT_EQ(budget.waiting, waiting) << "budget " << b;
      int listed = 0;
      std::uint64_t last_ticket = 0;
      for (std::int32_t s = budget.queue_head; s != kNoSession; s = ledger_.sessions()[s].next) {
        const SessionState& w = ledger_.sessions()[s];
        ASSERT_EQ(w.phase, SessionPhase::Waiting);
        ASSERT_EQ(w.budget, static_cast<int>(b));
        ASSERT_GT(w.ticket, last_ticket) << "queue not in arrival order";
        last_ticket = w.ticket;
        ++listed;
      }
      ASSERT_EQ(listed, waiting) << "budget " << b;
      if (waiting > 0 && !budget.paused && h.enforcement_enabled && ledger_.limits_of(static_cast<int>(b)).mode == Mode::Enforce) {
        // No waiter could start: its budget is full, or the server has no session for it.
        const bool own_room = has_room(ledger_.limits_of(static_cast<int>(b)), budget.active);
        const bool session_room = h.waiting_room == 0 || budget.active < budget.entitled ||
                                  h.capacity - h.waiting_room - h.sessions - 1 >= h.unused_entitled_sessions;
        ASSERT_FALSE(own_room && session_room) << "budget " << b;
      }
    }
  }

  int active(std::string_view name) const { return ledger_.budgets()[ledger_.find(name)].active; }
  const BudgetCounters& counters(std::string_view name) const {
    return ledger_.budgets()[ledger_.find(name)].counters;
  }
  int booked_sessions() const {
    int n = 0;
    for (const SessionState& s : ledger_.sessions()) n += s.budget != kNoBudget;
    return n;
  }

  std::vector<std::max_align_t> block_;
  std::vector<std::int32_t> scratch_;
  std::vector<std::int32_t> buffer_;
  Woken woken_;  // granted by the last configure, login_as or leave
  std::vector<std::int32_t> restore_scratch_;
  std::optional<Ledger::RestoreIndex> restore_index_;
  Ledger ledger_;
  FakeServer server_;
  Policy policy_{};
  std::int64_t now_ = 1;
};

}  // namespace connbudget::testing_support
