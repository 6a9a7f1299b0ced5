#include <pthread.h>

#include "stamp_writer.h"

#include <algorithm>

#include "log.h"
#include "pg_connection.h"

namespace bridge {
namespace {

constexpr size_t kBatchRows = 1000;
constexpr std::chrono::milliseconds kLinger{20};
constexpr std::chrono::milliseconds kRetryDelay{1000};

}  // namespace

StampWriter::StampWriter(std::string database_url, std::string bridge_name, size_t max_pending,
                         Metrics& metrics)
    : database_url_(std::move(database_url)),
      bridge_name_(std::move(bridge_name)),
      max_pending_(std::max<size_t>(max_pending, 1)),
      metrics_(metrics) {}

StampWriter::~StampWriter() { stop(std::chrono::milliseconds(0)); }

void StampWriter::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "stamp-writer");
    run();
  });
}

void StampWriter::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  written_.notify_all();
}

bool StampWriter::stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) give_up_at_ = std::chrono::steady_clock::now() + grace;
    closed_ = true;
    stopping_ = true;
  }
  work_.notify_all();
  written_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  return pending_.empty();
}

bool StampWriter::record(const std::string& channel, const Invalidation& invalidation) {
  std::unique_lock lock(mutex_);
  if (closed_) return false;
  auto it = pending_.find(invalidation.cache_key);
  if (it == pending_.end()) {
    // A new key needs room; one already waiting is only overwritten.
    written_.wait(lock, [&] { return closed_ || pending_.size() < max_pending_; });
    if (closed_) return false;
    it = pending_.try_emplace(invalidation.cache_key).first;
  }
  Pending& row = it->second;
  if (invalidation.seq > row.seq) {
    row.channel = channel;
    row.table = invalidation.table;
    row.seq = invalidation.seq;
  }
  ++recorded_;
  // The writer needs waking only when it waits for a first stamp, or when the batch just
  // filled: while it lets stamps gather, a wake-up per change would cost a context switch each.
  size_t full = std::min(kBatchRows, max_pending_);
  if (pending_.size() == 1 || pending_.size() == full) work_.notify_one();
  return true;
}

bool StampWriter::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  uint64_t target = recorded_;
  ++flushes_waiting_;
  work_.notify_one();  // no lingering while someone waits
  bool done = written_.wait_for(lock, timeout, [&] { return durable_ >= target || stopped_; }) &&
              durable_ >= target;
  --flushes_waiting_;
  return done;
}

void StampWriter::run() {
  PgConnPtr conn;
  bool installed = false;
  bool reported_down = false;
  std::vector<store::StampRow> batch;
  while (true) {
    uint64_t covers;
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
      // A steady trickle of changes would otherwise cost a transaction each: let stamps
      // gather for kLinger after the last write, unless a flush() waits or the batch is full.
      auto urgent = [&] {
        return stopping_ || flushes_waiting_ > 0 || pending_.size() >= std::min(kBatchRows, max_pending_);
      };
      if (!urgent()) work_.wait_until(lock, last_write_ + kLinger, urgent);
      if (stopping_ && (pending_.empty() || std::chrono::steady_clock::now() >= give_up_at_)) {
        if (!pending_.empty()) {
          log::warn("stopping: {} stamp(s) not written; the next start catches their keys up",
                    pending_.size());
        }
        stopped_ = true;
        written_.notify_all();
        return;
      }
      // Everything that waits, so that once it is written every record() so far is durable
      // (a flush() then never waits behind a steady stream of new stamps).
      batch.clear();
      batch.reserve(pending_.size());
      while (!pending_.empty()) {
        auto node = pending_.extract(pending_.begin());
        Pending& row = node.mapped();
        batch.push_back({std::move(node.key()), std::move(row.channel), std::move(row.table), row.seq});
      }
      covers = recorded_;
      written_.notify_all();  // room for record()
    }

    Status status;
    if (!conn) {
      status = pg_connect(database_url_, &conn);
      // Without waiting for the WAL flush: a stamp batch commits about as often as changes
      // arrive, and a flush each would double the fsyncs of writers committing one row at a
      // time on the same server. Visible at commit all the same (flush() means that); what a
      // server crash takes of the last moment's stamps is published again from the catch-up
      // cursor or the slot, which the same crash sets back, and stamped anew.
      if (status) status = pg_exec(conn.get(), "SET synchronous_commit = off");
      if (status) status = store::check_stamps_installed(conn.get(), &installed);
      if (status && !installed) {
        log::warn("PostgreSQL: table cache_bridge_stamp not found (rerun sql/cache_invalidation.sql); "
                  "replays and snapshots will not see what the bridge publishes");
      }
    }
    size_t written = 0;
    while (status && installed && written < batch.size()) {
      size_t n = std::min(kBatchRows, batch.size() - written);
      status = store::write_stamps(conn.get(), bridge_name_, std::span(batch).subspan(written, n));
      if (status) written += n;
    }
    if (status && !installed) written = batch.size();  // nowhere to write: dropped, said above

    std::unique_lock lock(mutex_);
    if (status) {
      if (reported_down) log::info("stamps: writing again");
      reported_down = false;
      metrics_.stamps_written += installed ? written : 0;
      durable_ = std::max(durable_, covers);
      last_write_ = std::chrono::steady_clock::now();
      written_.notify_all();
      continue;
    }
    // Put back what was not written (a newer stamp recorded meanwhile wins); try again later.
    if (!reported_down) log::warn("stamps: cannot write to PostgreSQL ({}); retrying", status.message());
    reported_down = true;
    conn.reset();
    metrics_.stamps_written += written;
    for (auto it = batch.begin() + static_cast<std::ptrdiff_t>(written); it != batch.end(); ++it) {
      auto [waiting, inserted] = pending_.try_emplace(it->cache_key);
      if (inserted || waiting->second.seq < it->seq) {
        waiting->second = Pending{std::move(it->channel), std::move(it->table), it->seq};
      }
    }
    if (!stopping_) work_.wait_for(lock, kRetryDelay, [&] { return stopping_; });
  }
}

}  // namespace bridge
