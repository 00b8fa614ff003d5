// LatencyHistogram: a lock-free, fixed-size histogram of durations for shared memory
// (lock-free std::atomic is address-free, so processes can share it). Buckets are
// log-linear: 8 per power of two, so a percentile is exact to within 12.5%. Recording is
// three relaxed atomic adds and a compare-exchange for the maximum; it never blocks.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace connbudget {

class LatencyHistogram {
 public:
  static constexpr int kSubBuckets = 8;
  static constexpr int kBuckets = 45 * kSubBuckets;  // up to 2^45 ns (about 9.8 hours)

  struct Summary {
    std::uint64_t count = 0;
    double mean_ns = 0;
    double p50_ns = 0;  // upper bound of the bucket holding the percentile
    double p99_ns = 0;
    double max_ns = 0;
  };

  void record(std::uint64_t ns) noexcept;
  Summary summary() const noexcept;
  void reset() noexcept;

  // The bucket of a duration, and the largest duration a bucket holds.
  static int bucket_of(std::uint64_t ns) noexcept;
  static std::uint64_t upper_bound(int bucket) noexcept;

 private:
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> total_ns_{0};
  std::atomic<std::uint64_t> max_ns_{0};
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared memory needs lock-free atomics");

}  // namespace connbudget
