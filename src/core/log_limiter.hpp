// LogLimiter: at most one server log line per budget per second about its refusals (or, in
// monitor mode, what enforcement would have done); the lines it holds back are counted and
// summarised later ("N more suppressed"). Plain data: it lives in shared memory, in each
// budget's state, and is used under the ledger's lock.
#pragma once

#include <cstdint>
#include <limits>

namespace connbudget {

inline constexpr std::int64_t kLogIntervalUs = 1'000'000;

class LogLimiter {
 public:
  struct Decision {
    bool log = true;                    // write this line
    std::int64_t suppressed_before = 0;  // lines held back since the last one written
    bool first_suppressed = false;       // this line starts a run of held-back lines
  };

  // A line is about to be written at now_us: may it be?
  Decision note(std::int64_t now_us) noexcept;

  // Lines held back that are due for a summary at now_us (their second is over), now
  // reported: 0 if none; if some are not due yet, *due_us gets when they will be. The
  // summary does not use up the budget's line: the next refusal is logged in full.
  std::int64_t take_due(std::int64_t now_us, std::int64_t* due_us) noexcept;

  std::int64_t suppressed() const noexcept { return suppressed_; }

 private:
  bool window_over(std::int64_t now_us) const noexcept {
    // A clock stepped back ends the window too, rather than silencing the budget.
    return last_logged_us_ == kNever || now_us < last_logged_us_ || now_us - last_logged_us_ >= kLogIntervalUs;
  }
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();
  std::int64_t last_logged_us_ = kNever;
  std::int64_t suppressed_ = 0;
};

}  // namespace connbudget
