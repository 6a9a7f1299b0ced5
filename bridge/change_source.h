// ChangeSource: where the bridge's changes come from. PgListener reads NOTIFY (triggers write
// the store and notify), WalSource reads the write-ahead log through a logical replication
// slot. Either stamps every change (ChangeClock), records the stamp (StampWriter) and queues
// it (CoalescingQueue); main starts one and stops it at SIGTERM, and /readyz asks it.
#pragma once

#include <chrono>
#include <string>

namespace bridge {

class ChangeSource {
 public:
  virtual ~ChangeSource() = default;

  virtual void start() = 0;
  // At SIGTERM, while the queue still takes changes: waits (at most `timeout`) until what the
  // source received so far can be covered by save_final_cursor().
  virtual void finish_receiving(std::chrono::milliseconds timeout) = 0;
  virtual void stop() = 0;  // joins the source's thread
  // After stop() and the publisher's drain: records how far the source got, when everything
  // received was published (`all_published`), so a restart re-sends next to nothing.
  virtual void save_final_cursor(bool all_published) = 0;

  // Connected and receiving; otherwise false with the reason. Thread-safe.
  virtual bool ready(std::string* reason) const = 0;
};

}  // namespace bridge
