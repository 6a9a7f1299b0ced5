// cache-bridge: PostgreSQL changes (NOTIFY or the WAL) -> Soketi (Pusher HTTP API) cache invalidations.
// Wires the modules together; each one's header says what it does.
#include <malloc.h>
#include <signal.h>

#include <cstring>
#include <string>

#include "change_clock.h"
#include "coalescing_queue.h"
#include "config.h"
#include "env_file.h"
#include "http_server.h"
#include "leadership.h"
#include "log.h"
#include "metrics.h"
#include "ops_server.h"
#include "pg_connection.h"
#include "pg_listener.h"
#include "preflight.h"
#include "publisher.h"
#include "sink_http.h"
#include "sink_soketi.h"
#include "replayer.h"
#include "secret_redactor.h"
#include "snapshot.h"
#include "source_wal.h"
#include "stamp_writer.h"

#ifndef CACHE_BRIDGE_VERSION
#define CACHE_BRIDGE_VERSION "dev"
#endif

namespace {

constexpr int kExitConfigError = 2;

void print_usage() {
  fmt::print(
      "usage: cache-bridge [--env-file PATH] [--check] [--version]\n"
      "  --env-file PATH  read configuration from PATH (default ./.env); environment variables win\n"
      "  --check          validate the configuration, PostgreSQL (LISTEN, or the replication slot\n"
      "                   with BRIDGE_SOURCE=wal) and Soketi, then exit\n"
      "exit codes: 0 ok (--check: every check passed), 1 a check or startup failed,\n"
      "            2 invalid configuration or arguments\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace bridge;
  std::string env_path = ".env";
  bool env_path_given = false;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--env-file" && i + 1 < argc) {
      env_path = argv[++i];
      env_path_given = true;
    } else if (arg.rfind("--env-file=", 0) == 0) {
      env_path = arg.substr(11);
      env_path_given = true;
    } else if (arg == "--check") {
      check_only = true;
    } else if (arg == "--version") {
      fmt::print("cache-bridge {}\n", CACHE_BRIDGE_VERSION);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      print_usage();
      return 0;
    } else {
      fmt::print(stderr, "cache-bridge: unknown argument \"{}\"\n", log::excerpt(arg, 60));
      print_usage();
      return kExitConfigError;
    }
  }

  // Configuration: every problem at once, then exit 2.
  EnvFileResult file = read_env_file(env_path, env_path_given);
  ConfigResult parsed = parse_config(overlay_process_environment(std::move(file.values)));
  std::vector<std::string> problems = std::move(file.errors);
  problems.insert(problems.end(), parsed.errors.begin(), parsed.errors.end());
  if (!problems.empty()) {
    for (const auto& p : problems) fmt::print(stderr, "config error: {}\n", p);
    return kExitConfigError;
  }
  const Config& config = parsed.config;
  log::configure(config.debug ? log::Level::kDebug : log::Level::kInfo, config.log_format);
  std::vector<std::string> secrets = conninfo_secrets(config.database_url);
  secrets.push_back(config.app_secret);
  if (!config.http_sink_secret.empty()) secrets.push_back(config.http_sink_secret);
  log::hide_secrets(std::move(secrets));
  pg_set_answer_deadline(config.pg_answer_timeout);

  if (check_only) return run_preflight(config);

  // glibc gives every thread that allocates an arena of its own; a dozen mostly idle threads
  // then hold several MB each. Two arenas are plenty for this workload.
  mallopt(M_ARENA_MAX, 2);

  // Signals only wake the main thread; every other thread inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  log::info("cache-bridge {} starting: Soketi {}{} app {}, channel template \"{}\", event \"{}\", "
            "coalescing window {} ms",
            CACHE_BRIDGE_VERSION, config.soketi_base_urls(),
            config.soketi_path_prefix.empty() ? "" : " (path prefix " + config.soketi_path_prefix + ")", config.app_id,
            config.channel_template, config.event_name, config.coalesce_window.count());

  Metrics metrics(config.pg_channels);
  CoalescingQueue queue(config.coalesce_window, config.queue_max_keys, config.queue_max_bytes);
  ChangeClock clock(std::chrono::duration_cast<std::chrono::microseconds>(config.clock_margin).count(),
                    config.frozen_clock_ms);
  StampWriter stamps(config.database_url, config.cursor_name, config.queue_max_keys, metrics);
  SoketiSink soketi_sink(config, metrics);
  std::unique_ptr<HttpSink> http_sink;
  std::vector<Sink*> sinks = {&soketi_sink};
  if (!config.http_sink_url.empty()) {
    http_sink = std::make_unique<HttpSink>(config, metrics);
    sinks.push_back(http_sink.get());
    metrics.http_sink_enabled = true;
    log::info("HTTP sink: POSTing live invalidations to {} (up to {} per request) besides Soketi",
              http_sink->display_url(), config.http_sink_max_batch);
  }
  Publisher publisher(std::move(sinks), queue, config.publish_concurrency, config.publish_linger);
  // One bridge of a cursor (wal: of a slot) publishes changes; the others wait (leadership.h).
  Leadership leadership(config.source == Config::Source::kWal ? fmt::format("replication slot {}", config.slot_name)
                                                               : fmt::format("cursor {}", config.cursor_name),
                        metrics);
  std::unique_ptr<ChangeSource> source;
  if (config.source == Config::Source::kWal) {
    source = std::make_unique<WalSource>(config, queue, clock, stamps, metrics, leadership);
  } else {
    source = std::make_unique<PgListener>(config, queue, clock, stamps, metrics, leadership);
  }
  Replayer replayer(config, queue, stamps, metrics);
  SnapshotService snapshots(config, stamps, metrics);
  HttpServer http(config, metrics, replayer, snapshots);
  OpsServer ops(config, metrics, queue, *source, leadership, CACHE_BRIDGE_VERSION);

  for (Status s : {http.start(), ops.start()}) {
    if (!s) {
      log::error("{}", s.message());
      return 1;
    }
  }
  stamps.start();
  publisher.start();
  source->start();
  replayer.start();

  int received = 0;
  sigwait(&signals, &received);
  log::info("received {}, shutting down: publishing what is queued (up to 5 s)", strsignal(received));
  // The 5 s start now, whatever the other modules take to stop.
  publisher.set_drain_deadline(std::chrono::seconds(5));
  http.stop();
  // A last barrier while the queue still takes notifications: what came before it is what
  // the final cursor may pass (so a restart re-sends next to nothing).
  source->finish_receiving(std::chrono::seconds(2));
  // Closing the queue releases a listener or replayer blocked on a full queue; what they
  // could not queue is still after the cursor, so the next start catches it up.
  queue.close();
  stamps.close();
  replayer.stop();
  source->stop();
  publisher.drain_and_stop();
  bool stamps_written = stamps.stop(std::chrono::seconds(2));
  source->save_final_cursor(publisher.gave_up_nothing() && stamps_written);
  // Last: stopping the ops server joins its Soketi prober, which may be inside a request to a
  // hung address (one HTTP timeout each); meanwhile the barrier and the drain ran (and /readyz
  // kept answering).
  ops.stop();
  log::info("stopped");
  return 0;
}
