// At most one log line per budget per second (see log_limiter.hpp).
#include "core/log_limiter.hpp"

#include "core/core_only.hpp"

namespace connbudget {

LogLimiter::Decision LogLimiter::note(std::int64_t now_us) noexcept {
  Decision decision;
  if (window_over(now_us)) {
    decision.suppressed_before = suppressed_;
    suppressed_ = 0;
    last_logged_us_ = now_us;
    return decision;
  }
  decision.log = false;
  decision.first_suppressed = suppressed_ == 0;
  ++suppressed_;
  return decision;
}

std::int64_t LogLimiter::take_due(std::int64_t now_us, std::int64_t* due_us) noexcept {
  if (suppressed_ == 0) return 0;
  if (!window_over(now_us)) {
    *due_us = last_logged_us_ + kLogIntervalUs;
    return 0;
  }
  const std::int64_t count = suppressed_;
  suppressed_ = 0;
  return count;
}

}  // namespace connbudget
