// FirstTouch: a word of shared memory a login writes before it first reads the place the
// word belongs to (its budget's slot, a bucket of the match index), so that a new backend
// maps that page by a write fault, which maps the page alone, and not by a read fault, which
// maps the 64 KB around it too (Linux's fault-around): neighbours the login never reads,
// that cost it more to map and again to unmap as it exits (15 pages fewer per place: TAP
// 007 counts them). No one reads it, and copying what holds it copies none of it, so that
// the login's store (atomic, under the shared lock) races with nothing.
#pragma once

#include <atomic>
#include <cstdint>

namespace connbudget {

class FirstTouch {
 public:
  FirstTouch() noexcept = default;
  FirstTouch(const FirstTouch&) noexcept {}
  FirstTouch& operator=(const FirstTouch&) noexcept { return *this; }

  void touch() const noexcept { word_.store(0, std::memory_order_relaxed); }

 private:
  mutable std::atomic<std::uint32_t> word_{0};
};

static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "shared memory needs lock-free atomics");

}  // namespace connbudget
