#include "snapshot.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "change_clock.h"
#include "channel_name.h"
#include "event_encoder.h"
#include "invalidation_store.h"
#include "log.h"
#include "pusher_signer.h"

namespace bridge {
namespace {

constexpr std::chrono::milliseconds kFlushWait{2000};
constexpr std::chrono::milliseconds kConnectionWait{1000};

// Pusher socket ids are "<digits>.<digits>".
bool valid_socket_id(std::string_view id) {
  size_t dot = id.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot + 1 == id.size() || id.size() > 64) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    if (i != dot && (id[i] < '0' || id[i] > '9')) return false;
  }
  return true;
}

SnapshotAnswer refusal(int status, std::string why, int retry_after_s = 0) {
  return {status, std::move(why) + "\n", retry_after_s};
}

}  // namespace

std::optional<SnapshotAnswer> check_snapshot_access(std::string_view app_key, std::string_view app_secret,
                                                    const SnapshotQuery& query) {
  if (!is_valid_channel_name(query.channel)) return refusal(400, "channel: missing or not a Pusher channel name");
  if (!query.since.empty()) {
    int64_t since = 0;
    auto [end, ec] = std::from_chars(query.since.data(), query.since.data() + query.since.size(), since);
    if (ec != std::errc() || end != query.since.data() + query.since.size() || since < 0) {
      return refusal(400, "since: must be epoch milliseconds");
    }
  }
  // The bridge publishes plaintext; it has nothing to say on an end-to-end encrypted channel.
  if (query.channel.rfind("private-encrypted-", 0) == 0) return refusal(400, "encrypted channels are not supported");
  bool presence = query.channel.rfind("presence-", 0) == 0;
  if (query.channel.rfind("private-", 0) != 0 && !presence) return std::nullopt;  // public
  if (query.socket_id.empty() || query.auth.empty()) {
    return refusal(401, "this channel needs socket_id and auth (the channel authorization of your socket)");
  }
  if (!valid_socket_id(query.socket_id)) return refusal(400, "socket_id: not a Pusher socket id");
  if (presence && query.channel_data.empty()) return refusal(401, "a presence channel needs channel_data");
  if (!channel_auth_valid(app_key, app_secret, query.socket_id, query.channel,
                          presence ? std::string_view(query.channel_data) : std::string_view(), query.auth)) {
    return refusal(401, "auth: not a valid authorization of this socket for this channel");
  }
  return std::nullopt;
}

SnapshotService::SnapshotService(const Config& config, StampWriter& stamps, Metrics& metrics)
    : config_(config), stamps_(stamps), metrics_(metrics), limiter_(config.snapshot_max_per_second) {}

SnapshotAnswer SnapshotService::answer(const SnapshotQuery& query) {
  auto refuse = [&](SnapshotAnswer a) {
    ++metrics_.snapshots_refused;
    return a;
  };
  if (auto denied = check_snapshot_access(config_.app_key, config_.app_secret, query)) return refuse(*denied);
  if (auto wait = limiter_.try_take(1); wait.count() > 0) {
    int seconds = static_cast<int>(std::ceil(std::chrono::duration<double>(wait).count()));
    return refuse(refusal(429, "too many snapshot requests", std::max(seconds, 1)));
  }

  // What went out live before this request is in the store once the writer has flushed.
  if (!stamps_.flush(kFlushWait)) return refuse(refusal(503, "stamps are still being written; retry", 1));
  int64_t min_seq = oldest_seq_within(config_.replay_max_age);
  if (!query.since.empty()) min_seq = std::max<int64_t>(min_seq, std::stoll(query.since) * 1000 - 1);

  std::vector<Invalidation> invalidations;
  bool truncated = false;
  std::unique_lock lock(conn_mutex_, std::defer_lock);
  if (!lock.try_lock_for(kConnectionWait)) return refuse(refusal(503, "busy; retry", 1));
  Status s;
  if (!conn_) s = pg_connect(config_.database_url, &conn_);
  if (s) {
    s = store::read_channel_stamps(conn_.get(), config_.cursor_name, query.channel, min_seq,
                                   config_.snapshot_max_keys,
                                   [&](Invalidation inv) { invalidations.push_back(std::move(inv)); },
                                   &truncated);
  }
  if (!s) {
    conn_.reset();
    log::warn("snapshot of {}: {}", query.channel, s.message());
    return refuse(refusal(503, "the store is unavailable; retry", 2));
  }
  ++metrics_.snapshots_served;
  return {200, encode_snapshot(query.channel, invalidations, truncated), 0};
}

}  // namespace bridge
