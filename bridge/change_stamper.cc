#include "change_stamper.h"

#include "channel_name.h"
#include "log.h"

namespace bridge {

bool ChangeStamper::stamp(Invalidation& invalidation, std::string* channel) {
  invalidation.seq = clock_.next();
  *channel = expand_channel(channel_template_, invalidation.table, invalidation.cache_key);
  log::debug("invalidation of {} on {}: seq {}, invalidatedAt {}", log::excerpt(invalidation.cache_key),
             *channel, invalidation.seq, invalidated_at_of(invalidation.seq));
  if (!invalidation.data_json.empty() && !warned_public_rows_ && channel->rfind("private-", 0) != 0 &&
      channel->rfind("presence-", 0) != 0) {
    warned_public_rows_ = true;
    log::warn("row data of {} goes to the public channel {}: anyone with the app key reads it "
              "(attach without row_data, or route to a private- channel)",
              invalidation.table.empty() ? "a notification" : "table " + invalidation.table, *channel);
  }
  return stamps_.record(*channel, invalidation);
}

}  // namespace bridge
