// RecentInvalidations: the last few invalidations Soketi accepted, for the operators' status
// page. A fixed ring: recording costs a lock and a copy of a few strings, whatever the rate.
// Thread-safe (the publisher's workers record, the ops server's handlers read).
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "coalescing_queue.h"

namespace bridge {

struct RecentInvalidation {
  std::string cache_key;
  std::string channel;
  std::string table;   // empty when unknown
  std::string action;  // empty when unknown
  int64_t seq = 0;
  int64_t invalidated_at_ms = 0;
  int64_t published_at_ms = 0;
  // From the stamp (taken at receipt, after the commit) to Soketi's acceptance. For a replay
  // this is the stamp's age, not a latency: the page says which one it is.
  double latency_ms = 0;
  bool replay = false;
};

class RecentInvalidations {
 public:
  static constexpr size_t kDefaultCapacity = 20;
  // Keys longer than this are cut (the page shows an excerpt; the bridge allows 1,024 bytes).
  static constexpr size_t kMaxKeyBytes = 256;

  explicit RecentInvalidations(size_t capacity = kDefaultCapacity);
  RecentInvalidations(const RecentInvalidations&) = delete;
  RecentInvalidations& operator=(const RecentInvalidations&) = delete;

  // Remembers `items`, published together at `published_us` (epoch µs). Only the last
  // `capacity` of everything recorded stay.
  void record(std::span<const QueuedInvalidation> items, int64_t published_us);
  // Newest first.
  std::vector<RecentInvalidation> newest_first() const;

 private:
  const size_t capacity_;  // constant after construction
  mutable std::mutex mutex_;
  // State below is protected by mutex_.
  std::vector<RecentInvalidation> ring_;  // grows to capacity_, then next_ overwrites the oldest
  size_t next_ = 0;
};

}  // namespace bridge
