#include "status_page.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include <openssl/evp.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string_view>

#include "log.h"
#include "notification_mapper.h"

namespace bridge {
namespace {

// The page's script. Every value from the bridge goes into the page through textContent (or
// className from a fixed set), never as markup: cache keys and log lines are untrusted text.
constexpr std::string_view kScript = R"JS(
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const set = (id, text, cls) => {
    const el = $(id);
    el.textContent = text;
    if (cls !== undefined) el.className = cls;
  };
  const time = (ms) => {
    if (!ms) return '';
    const d = new Date(ms);
    const two = (n) => String(n).padStart(2, '0');
    return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  };
  const seconds = (s) => (s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`);
  const bytes = (b) => (b < 1024 ? `${b} B` : b < 1048576 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 1048576).toFixed(1)} MiB`);
  const cell = (row, text, cls) => {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  };

  function render(s) {
    set('version', s.version);
    set('state', s.ready ? 'ready' : 'not ready', `big ${s.ready ? 'ok' : 'bad'}`);
    set('state-reason', s.ready ? `GET /readyz: 200, ${s.role}` : `GET /readyz: 503 ${s.readyReason}`);
    set('source', s.source);
    const pg = s.postgres;
    set('pg', `${pg.connected ? 'connected' : 'disconnected'}, ${pg.reconnects} reconnect(s)` +
      (s.source === 'notify' ? `, notification queue ${(pg.notifyQueueUsage * 100).toFixed(1)}% full` : ''),
      pg.connected ? 'muted' : 'bad');
    set('queue-depth', String(s.queue.depth));
    set('queue-detail', `keys waiting (at most ${s.queue.maxKeys}); ${s.queue.heldBack} change(s) held back so far`);
    if (s.source === 'wal') {
      set('lag-title', 'Slot lag');
      set('lag', bytes(s.lag.slotBytes));
      set('lag-detail', `WAL kept for the bridge; oldest unconfirmed change ${seconds(s.lag.slotSeconds)} old`);
    } else {
      set('lag-title', 'Cursor lag');
      set('lag', seconds(s.lag.cursorSeconds));
      set('lag-detail', 'age of the oldest change the saved cursor has not passed');
    }
    set('published', String(s.published.events));
    set('published-detail', `events in ${s.published.batches} request(s); ` +
      `${s.published.received} ${s.source === 'wal' ? 'WAL change(s)' : 'notification(s)'} received`);
    for (const kind of ['timeout', 'server', 'rejected', 'throttled', 'retries', 'dropped']) {
      set(`err-${kind}`, String(s.errors[kind]), s.errors[kind] > 0 ? 'num bad' : 'num');
    }
    const sink = s.httpSink;
    $('sink-card').hidden = !sink;
    if (sink) {
      set('sink', String(sink.delivered), sink.errors > 0 ? 'big bad' : 'big');
      set('sink-detail', `invalidations POSTed to ${sink.url} in ${sink.requests} request(s); ` +
        `${sink.errors} failed request(s), ${sink.retries} retried, ${sink.dropped} dropped`);
    }
    const p = s.errors.lastProblem;
    set('last-problem', p ? `${time(p.timeMs)} ${p.level}: ${p.message}` : 'none', p ? (p.level === 'error' ? 'bad' : '') : 'muted');

    const body = document.createElement('tbody');
    for (const r of s.recent) {
      const tr = document.createElement('tr');
      tr.className = r.replay ? 'replay' : 'live';
      cell(tr, time(r.publishedAt));
      cell(tr, r.cacheKey, 'key');
      cell(tr, r.channel);
      cell(tr, r.action || '');
      cell(tr, `${r.latencyMs.toFixed(1)} ms`, 'num latency');
      cell(tr, r.replay ? 'replay (age of the stamp)' : 'live', 'kind');
      body.appendChild(tr);
    }
    if (s.recent.length === 0) cell(body.insertRow(), 'nothing published yet', 'muted').colSpan = 6;
    const table = $('recent');
    table.replaceChild(body, table.tBodies[0]);
  }

  async function poll() {
    try {
      const response = await fetch('status.json', { cache: 'no-store' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      render(await response.json());
      set('poll', `updated ${time(Date.now())}, every 1.5 s`, 'muted');
    } catch (err) {
      set('poll', `cannot reach the bridge: ${err.message}`, 'bad');
    }
    setTimeout(poll, 1500);
  }
  poll();
})();
)JS";

constexpr std::string_view kHead = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cache-bridge status</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
h2 { font-size: 1em; margin: 1.2em 0 .4em; }
.cards { display: flex; flex-wrap: wrap; gap: .75em; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6em .9em; min-width: 12em; max-width: 24em; }
.card h2 { font-size: .75em; font-weight: 600; text-transform: uppercase; color: #666; margin: 0 0 .3em; }
.big { font-size: 1.4em; font-weight: 600; }
.ok { color: #17803d; } .bad { color: #b42318; } .muted { color: #777; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: .3em .5em; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #555; }
td.key { font-family: ui-monospace, monospace; word-break: break-all; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.replay td { color: #777; }
</style>
</head>
<body>
<h1>cache-bridge <span id="version" class="muted"></span></h1>
<p id="poll" class="muted">loading&hellip;</p>
<div class="cards">
<div class="card"><h2>State</h2><div id="state" class="big">&ndash;</div><div id="state-reason" class="muted"></div></div>
<div class="card"><h2>Source</h2><div id="source" class="big">&ndash;</div><div id="pg" class="muted"></div></div>
<div class="card"><h2>Queue depth</h2><div id="queue-depth" class="big">&ndash;</div><div id="queue-detail" class="muted"></div></div>
<div class="card"><h2 id="lag-title">Lag</h2><div id="lag" class="big">&ndash;</div><div id="lag-detail" class="muted"></div></div>
<div class="card"><h2>Published</h2><div id="published" class="big">&ndash;</div><div id="published-detail" class="muted"></div></div>
<div class="card" id="sink-card" hidden><h2>HTTP sink</h2><div id="sink" class="big">&ndash;</div><div id="sink-detail" class="muted"></div></div>
</div>
<h2>Publish errors (since start)</h2>
<table id="errors">
<thead><tr><th class="num">timeout</th><th class="num">server (5xx)</th><th class="num">rejected (4xx)</th><th class="num">throttled (429)</th><th class="num">retries</th><th class="num">events dropped</th></tr></thead>
<tbody><tr><td id="err-timeout" class="num"></td><td id="err-server" class="num"></td><td id="err-rejected" class="num"></td><td id="err-throttled" class="num"></td><td id="err-retries" class="num"></td><td id="err-dropped" class="num"></td></tr></tbody>
</table>
<p>Last warning or error logged: <span id="last-problem" class="muted">none</span></p>
<h2>Recent invalidations (newest first)</h2>
<table id="recent">
<thead><tr><th>published</th><th>cache key</th><th>channel</th><th>action</th><th class="num">commit &rarr; publish</th><th>kind</th></tr></thead>
<tbody></tbody>
</table>
<script>)HTML";

constexpr std::string_view kTail = "</script>\n</body>\n</html>\n";

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void put_string(JsonWriter& w, const std::string& text) {
  // Keys are checked UTF-8 upstream; anything else (a log line) is shown escaped, not dropped.
  std::string safe = is_valid_utf8(text) ? text : log::excerpt(text, text.size());
  w.String(safe.data(), static_cast<rapidjson::SizeType>(safe.size()));
}

void put(JsonWriter& w, const char* key, const std::string& value) {
  w.Key(key);
  put_string(w, value);
}
void put(JsonWriter& w, const char* key, uint64_t value) {
  w.Key(key);
  w.Uint64(value);
}
void put(JsonWriter& w, const char* key, int64_t value) {
  w.Key(key);
  w.Int64(value);
}
void put(JsonWriter& w, const char* key, double value) {
  w.Key(key);
  w.Double(value);
}
void put(JsonWriter& w, const char* key, bool value) {
  w.Key(key);
  w.Bool(value);
}

std::string base64_sha256(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  std::string out(4 * ((length + 2) / 3) + 1, '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), digest, static_cast<int>(length));
  out.resize(written > 0 ? static_cast<size_t>(written) : 0);
  return out;
}

}  // namespace

std::string render_status_json(const StatusSnapshot& s) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  put(w, "version", s.version);
  put(w, "source", s.source);
  put(w, "role", s.role);
  put(w, "nowMs", s.now_ms);
  put(w, "startedMs", s.started_ms);
  put(w, "ready", s.ready);
  put(w, "readyReason", s.ready ? std::string() : s.ready_reason);

  w.Key("postgres");
  w.StartObject();
  put(w, "connected", s.pg_connected);
  put(w, "reconnects", s.pg_reconnects);
  put(w, "notifyQueueUsage", s.notify_queue_usage);
  w.EndObject();

  w.Key("queue");
  w.StartObject();
  put(w, "depth", s.queue_depth);
  put(w, "maxKeys", s.queue_max_keys);
  put(w, "heldBack", s.held_back);
  w.EndObject();

  w.Key("published");
  w.StartObject();
  put(w, "received", s.changes_received);
  put(w, "events", s.events_published);
  put(w, "batches", s.batches_published);
  w.EndObject();

  w.Key("errors");
  w.StartObject();
  put(w, "timeout", s.errors_timeout);
  put(w, "server", s.errors_server);
  put(w, "rejected", s.errors_rejected);
  put(w, "throttled", s.errors_throttled);
  put(w, "retries", s.publish_retries);
  put(w, "dropped", s.events_dropped);
  w.Key("lastProblem");
  if (s.last_problem) {
    w.StartObject();
    put(w, "timeMs", s.last_problem->time_ms);
    put(w, "level", s.last_problem->level);
    put(w, "message", s.last_problem->message);
    w.EndObject();
  } else {
    w.Null();
  }
  w.EndObject();

  w.Key("lag");
  w.StartObject();
  if (s.source == "wal") {
    put(w, "slotBytes", s.slot_lag_bytes);
    put(w, "slotSeconds", s.slot_lag_seconds);
  } else {
    put(w, "cursorSeconds", s.cursor_lag_seconds);
  }
  w.EndObject();

  w.Key("recent");
  w.StartArray();
  for (const auto& r : s.recent) {
    w.StartObject();
    put(w, "cacheKey", r.cache_key);
    put(w, "channel", r.channel);
    if (!r.table.empty()) put(w, "table", r.table);
    if (!r.action.empty()) put(w, "action", r.action);
    put(w, "seq", r.seq);
    put(w, "invalidatedAt", r.invalidated_at_ms);
    put(w, "publishedAt", r.published_at_ms);
    put(w, "latencyMs", r.latency_ms);
    put(w, "replay", r.replay);
    w.EndObject();
  }
  w.EndArray();

  w.Key("httpSink");
  if (s.http_sink) {
    w.StartObject();
    put(w, "url", s.http_sink->url);
    put(w, "delivered", s.http_sink->delivered);
    put(w, "requests", s.http_sink->requests);
    put(w, "errors", s.http_sink->errors);
    put(w, "retries", s.http_sink->retries);
    put(w, "dropped", s.http_sink->dropped);
    w.EndObject();
  } else {
    w.Null();
  }
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

bool status_host_allowed(std::string_view host, std::string_view ops_host) {
  if (host.empty()) return true;
  std::string name;
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    name = std::string(host.substr(1, close - 1));
    in6_addr v6{};
    return inet_pton(AF_INET6, name.c_str(), &v6) == 1;
  }
  name = std::string(host.substr(0, host.rfind(':')));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  in_addr v4{};
  if (inet_pton(AF_INET, name.c_str(), &v4) == 1) return true;
  std::string own(ops_host);
  std::transform(own.begin(), own.end(), own.begin(), [](unsigned char c) { return std::tolower(c); });
  return name == "localhost" || name == own;
}

const std::string& status_page_html() {
  static const std::string page = [] {
    std::string out;
    out.reserve(kHead.size() + kScript.size() + kTail.size());
    out.append(kHead).append(kScript).append(kTail);
    return out;
  }();
  return page;
}

const std::string& status_page_csp() {
  // Only this page's own script runs (by its hash: no inline handler, no injected <script>);
  // it talks to its own origin only; nothing may frame it.
  static const std::string csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" +
                                 base64_sha256(kScript) +
                                 "'; connect-src 'self'; img-src 'none'; base-uri 'none'; "
                                 "form-action 'none'; frame-ancestors 'none'";
  return csp;
}

}  // namespace bridge
