#include "recent_invalidations.h"

#include <algorithm>

#include "change_clock.h"

namespace bridge {
namespace {

// Cut at a UTF-8 character boundary, so the JSON stays valid text.
std::string excerpt_utf8(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end) + "…";
}

}  // namespace

RecentInvalidations::RecentInvalidations(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {
  ring_.reserve(capacity_);
}

void RecentInvalidations::record(std::span<const QueuedInvalidation> items, int64_t published_us) {
  // Only the last capacity_ of a large batch can stay: build those outside the lock.
  if (items.size() > capacity_) items = items.last(capacity_);
  std::vector<RecentInvalidation> entries;
  entries.reserve(items.size());
  for (const auto& item : items) {
    const Invalidation& inv = item.invalidation;
    entries.push_back({excerpt_utf8(inv.cache_key, kMaxKeyBytes), item.channel, inv.table, inv.action,
                       inv.seq, invalidated_at_of(inv.seq), published_us / 1000,
                       static_cast<double>(published_us - inv.seq) / 1000.0, inv.replay});
  }
  std::lock_guard lock(mutex_);
  for (auto& entry : entries) {
    if (ring_.size() < capacity_) {
      ring_.push_back(std::move(entry));
    } else {
      ring_[next_] = std::move(entry);
    }
    next_ = (next_ + 1) % capacity_;
  }
}

std::vector<RecentInvalidation> RecentInvalidations::newest_first() const {
  std::lock_guard lock(mutex_);
  std::vector<RecentInvalidation> out;
  out.reserve(ring_.size());
  // next_ is the slot after the newest one.
  for (size_t i = 0; i < ring_.size(); ++i) {
    out.push_back(ring_[(next_ + ring_.size() - 1 - i) % ring_.size()]);
  }
  return out;
}

}  // namespace bridge
