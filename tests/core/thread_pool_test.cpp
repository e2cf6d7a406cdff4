// ThreadPool::parallel_for: disjoint contiguous ranges covering [0, n), each at least `grain`
// long except the last; nested loops run inline.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "core/thread_pool.h"

namespace dsv4 {
namespace {

// Runs one parallel_for and checks the coverage and range contract.
void check_cover(ThreadPool& pool, size_t n, size_t grain) {
  std::vector<std::atomic<int>> hits(n);
  std::mutex mutex;
  std::vector<std::pair<size_t, size_t>> ranges;
  pool.parallel_for(n, grain, [&](size_t begin, size_t end) {
    {
      std::lock_guard lock(mutex);
      ranges.emplace_back(begin, end);
    }
    for (size_t i = begin; i < end; ++i) hits[i].fetch_add(1);
  });
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(hits[i].load(), 1) << "index " << i << " n " << n << " grain " << grain;
  }
  size_t short_ranges = 0;
  for (const auto& [begin, end] : ranges) {
    ASSERT_LT(begin, end) << "empty range, n " << n << " grain " << grain;
    ASSERT_LE(end, n);
    // Only the range that ends at n may be shorter than the grain.
    if (end - begin < grain && end != n) ++short_ranges;
  }
  EXPECT_EQ(short_ranges, 0u) << "n " << n << " grain " << grain;
  if (n == 0) {
    EXPECT_TRUE(ranges.empty());
  }
}

TEST(ThreadPool, ParallelForCoversEveryIndexExactlyOnce) {
  for (size_t threads : {1u, 2u, 3u, 4u, 7u, 16u}) {
    ThreadPool pool(threads);
    for (size_t n : {0u, 1u, 2u, 3u, 5u, 7u, 8u, 15u, 16u, 17u, 63u, 100u, 1000u, 1023u, 4097u}) {
      for (size_t grain : {0u, 1u, 2u, 3u, 7u, 64u, 1000u, 5000u}) {
        check_cover(pool, n, grain);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

TEST(ThreadPool, SizeCountsCallerThread) {
  EXPECT_EQ(ThreadPool(1).size(), 1u);
  EXPECT_EQ(ThreadPool(4).size(), 4u);
  EXPECT_EQ(ThreadPool(0).size(), 1u);
}

TEST(ThreadPool, ZeroLengthNeverCallsBody) {
  ThreadPool pool(4);
  bool called = false;
  pool.parallel_for(0, 1, [&](size_t, size_t) { called = true; });
  EXPECT_FALSE(called);
}

TEST(ThreadPool, UsesSeveralThreadsForLargeLoops) {
  ThreadPool pool(4);
  std::mutex mutex;
  std::set<std::thread::id> ids;
  pool.parallel_for(4, 1, [&](size_t, size_t) {
    std::lock_guard lock(mutex);
    ids.insert(std::this_thread::get_id());
  });
  // Four chunks of one index each, one per thread of the pool.
  EXPECT_EQ(ids.size(), 4u);
}

TEST(ThreadPool, RepeatedCallsReuseThePool) {
  ThreadPool pool(3);
  std::atomic<long> total{0};
  for (int round = 0; round < 2000; ++round) {
    pool.parallel_for(10, 1, [&](size_t begin, size_t end) { total.fetch_add(long(end - begin)); });
  }
  EXPECT_EQ(total.load(), 20000);
}

TEST(ThreadPool, NestedParallelForRunsEveryInnerIndexOnce) {
  ThreadPool pool(4);
  constexpr size_t kOuter = 12, kInner = 300;
  std::vector<std::atomic<int>> hits(kOuter * kInner);
  pool.parallel_for(kOuter, 1, [&](size_t begin, size_t end) {
    for (size_t o = begin; o < end; ++o) {
      pool.parallel_for(kInner, 8, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) hits[o * kInner + i].fetch_add(1);
      });
    }
  });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << i;
}

TEST(ThreadPool, NestedCallInsideSerialOuterStillWorks) {
  // The outer loop is small enough to run inline on the caller; the inner one may then use
  // the workers.
  ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(1, 1, [&](size_t, size_t) {
    pool.parallel_for(1000, 1, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
  });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << i;
}

TEST(ThreadPool, ExceptionInBodyPropagatesAfterAllRangesFinish) {
  // Whichever thread's range throws, parallel_for rethrows on the caller only after every
  // range has returned, and the pool stays usable (also for plain parallel calls afterwards).
  ThreadPool pool(4);
  for (size_t thrower = 0; thrower < 4; ++thrower) {
    std::atomic<int> finished{0};
    EXPECT_THROW(pool.parallel_for(4, 1,
                                   [&](size_t begin, size_t) {
                                     if (begin == thrower) throw std::runtime_error("boom");
                                     std::this_thread::sleep_for(std::chrono::milliseconds(20));
                                     finished.fetch_add(1);
                                   }),
                 std::runtime_error);
    EXPECT_EQ(finished.load(), 3) << "thrower " << thrower;
    std::mutex mutex;
    std::set<std::thread::id> ids;
    pool.parallel_for(4, 1, [&](size_t, size_t) {
      std::lock_guard lock(mutex);
      ids.insert(std::this_thread::get_id());
    });
    EXPECT_EQ(ids.size(), 4u) << "the caller is no longer treated as inside a parallel region";
  }
}

TEST(ThreadPool, GlobalPoolCoversEveryIndex) {
  ThreadPool& pool = ThreadPool::global();
  EXPECT_GE(pool.size(), 1u);
  EXPECT_EQ(&pool, &ThreadPool::global());
  check_cover(pool, 12345, 16);
}

}  // namespace
}  // namespace dsv4
