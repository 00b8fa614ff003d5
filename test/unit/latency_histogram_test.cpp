// The latency histogram: bucket boundaries, percentiles within a bucket's width, reset.
#include "core/latency_histogram.hpp"

#include <gtest/gtest.h>

using connbudget::LatencyHistogram;

TEST(LatencyHistogram, BucketsCoverEveryDurationInOrder) {
  int previous = -1;
  for (std::uint64_t ns = 0; ns < 100000; ++ns) {
    const int b = LatencyHistogram::bucket_of(ns);
    EXPECT_GE(b, previous);
    EXPECT_LE(ns, LatencyHistogram::upper_bound(b)) << ns;
    if (b > 0) {
      EXPECT_GT(ns, LatencyHistogram::upper_bound(b - 1)) << ns;
    }
    previous = b;
  }
  EXPECT_EQ(LatencyHistogram::bucket_of(~std::uint64_t{0}), LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogram, PercentilesAreWithinOneEighth) {
  LatencyHistogram h;
  for (std::uint64_t us = 1; us <= 1000; ++us) h.record(us * 1000);
  const auto s = h.summary();
  EXPECT_EQ(s.count, 1000u);
  EXPECT_NEAR(s.mean_ns, 500500, 1);
  EXPECT_GE(s.p50_ns, 500000);
  EXPECT_LE(s.p50_ns, 500000 * 1.125);
  EXPECT_GE(s.p99_ns, 990000);
  EXPECT_LE(s.p99_ns, 990000 * 1.125);
  EXPECT_EQ(s.max_ns, 1000000);
}

TEST(LatencyHistogram, ResetEmptiesIt) {
  LatencyHistogram h;
  h.record(42);
  h.reset();
  EXPECT_EQ(h.summary().count, 0u);
  EXPECT_EQ(h.summary().max_ns, 0);
}
