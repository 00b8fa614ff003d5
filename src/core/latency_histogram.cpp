// The log-linear latency histogram (see latency_histogram.hpp).
#include "core/latency_histogram.hpp"

#include <bit>

#include "core/core_only.hpp"

namespace connbudget {

int LatencyHistogram::bucket_of(std::uint64_t ns) noexcept {
  if (ns < kSubBuckets) return static_cast<int>(ns);  // 0..7 ns: one bucket each
  const int octave = std::bit_width(ns) - 1;           // ns in [2^octave, 2^(octave+1))
  const int sub = static_cast<int>((ns >> (octave - 3)) & (kSubBuckets - 1));
  const int bucket = (octave - 2) * kSubBuckets + sub;
  return bucket < kBuckets ? bucket : kBuckets - 1;
}

std::uint64_t LatencyHistogram::upper_bound(int bucket) noexcept {
  if (bucket < kSubBuckets) return static_cast<std::uint64_t>(bucket);
  const int octave = bucket / kSubBuckets + 2;
  const std::uint64_t sub = static_cast<std::uint64_t>(bucket % kSubBuckets);
  return ((kSubBuckets + sub + 1) << (octave - 3)) - 1;
}

void LatencyHistogram::record(std::uint64_t ns) noexcept {
  count_.fetch_add(1, std::memory_order_relaxed);
  total_ns_.fetch_add(ns, std::memory_order_relaxed);
  buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
  std::uint64_t max = max_ns_.load(std::memory_order_relaxed);
  while (ns > max && !max_ns_.compare_exchange_weak(max, ns, std::memory_order_relaxed)) {
  }
}

LatencyHistogram::Summary LatencyHistogram::summary() const noexcept {
  Summary s;
  std::array<std::uint64_t, kBuckets> counts;
  std::uint64_t counted = 0;
  for (int b = 0; b < kBuckets; ++b) counted += counts[b] = buckets_[b].load(std::memory_order_relaxed);
  s.count = count_.load(std::memory_order_relaxed);
  if (s.count == 0 || counted == 0) return s;
  s.mean_ns = static_cast<double>(total_ns_.load(std::memory_order_relaxed)) / static_cast<double>(s.count);
  s.max_ns = static_cast<double>(max_ns_.load(std::memory_order_relaxed));
  std::uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts[b];
    if (s.p50_ns == 0 && seen * 2 >= counted) s.p50_ns = static_cast<double>(upper_bound(b));
    if (seen * 100 >= counted * 99) {
      s.p99_ns = static_cast<double>(upper_bound(b));
      break;
    }
  }
  return s;
}

void LatencyHistogram::reset() noexcept {
  count_.store(0, std::memory_order_relaxed);
  total_ns_.store(0, std::memory_order_relaxed);
  max_ns_.store(0, std::memory_order_relaxed);
  for (auto& bucket : buckets_) bucket.store(0, std::memory_order_relaxed);
}

}  // namespace connbudget
