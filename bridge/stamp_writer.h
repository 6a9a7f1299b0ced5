// StampWriter: writes what the bridge stamped to the store (cache_bridge_stamp), so replays,
// catch-ups and snapshots carry the same seq and invalidatedAt as the live events.
//
// Outside the writers' transactions: a thread of its own with its own connection writes
// what waits in UPSERTs of up to 1,000 keys, on a table no trigger touches, so a writer
// never waits on the bridge's locks. Stamps gather for up to 20 ms after a write (not while a
// flush() waits), so a trickle of changes costs a few transactions a second. Its commits do not wait for the WAL flush
// (synchronous_commit off; see stamp_writer.cc). Per key only the newest stamp waits; at most
// max_pending keys wait (record() blocks beyond that: backpressure on the listener, never a drop). While
// PostgreSQL is unreachable the stamps wait and are written once it answers.
//
// Thread-safe: every member function may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "invalidation.h"
#include "invalidation_store.h"
#include "metrics.h"

namespace bridge {

class StampWriter {
 public:
  StampWriter(std::string database_url, std::string bridge_name, size_t max_pending, Metrics& metrics);
  ~StampWriter();  // stops and joins
  StampWriter(const StampWriter&) = delete;
  StampWriter& operator=(const StampWriter&) = delete;

  void start();
  // Refuses new stamps from now on (record() returns false, also one blocked waiting for
  // room); what waits is still written by stop(). Shutdown calls it first, so a listener
  // blocked on a full writer while PostgreSQL is away cannot hold the process.
  void close();
  // Writes what waits (for at most `grace`), then stops. True when nothing was left unwritten.
  bool stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

  // Remembers a stamped invalidation of `channel` for writing. Blocks while max_pending keys
  // wait. Returns false once closed (the change is then not published either: the catch-up
  // cursor has not passed it, so the next start publishes it).
  bool record(const std::string& channel, const Invalidation& invalidation);

  // Waits until every stamp recorded before the call is written (true), or `timeout`
  // passes (false). Replays and snapshots call it first, so they see what went out live.
  bool flush(std::chrono::milliseconds timeout);

 private:
  void run();

  const std::string database_url_;
  const std::string bridge_name_;
  const size_t max_pending_;
  Metrics& metrics_;
  std::thread thread_;

  std::mutex mutex_;
  std::condition_variable work_;     // signalled on record() and stop()
  std::condition_variable written_;  // signalled when a batch is written, or on stop()
  // State below is protected by mutex_.
  struct Pending {
    std::string channel;
    std::string table;
    int64_t seq = 0;
  };
  std::unordered_map<std::string, Pending> pending_;  // by cache key (held once, as the map's key)
  uint64_t recorded_ = 0;  // record() calls so far
  uint64_t durable_ = 0;   // every record() up to this count is written
  int flushes_waiting_ = 0;  // flush() calls waiting: write at once
  std::chrono::steady_clock::time_point last_write_{};  // the last batch written
  bool closed_ = false;  // close() or stop() was called
  bool stopping_ = false;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point give_up_at_{};
};

}  // namespace bridge
