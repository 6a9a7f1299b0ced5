// Request/response over a forked child's IPC channel, every call bounded in time.
// The driver side is forkWorker(); the child side is serveRequests().
import { fork } from 'node:child_process';

/**
 * Forks a worker module and returns {pid, call(type, payload, timeoutMs), stop(), output()}.
 * The worker's stdout/stderr are kept (last 200 lines) for error messages.
 */
export function forkWorker(file, { name = file, execArgv = [] } = {}) {
  const child = fork(file, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv });
  const tail = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      for (const line of chunk.split('\n')) if (line) tail.push(line);
      while (tail.length > 200) tail.shift();
      if (process.env.BENCH_VERBOSE === '1') process.stderr.write(`[${name}] ${chunk}`);
    });
  }
  let nextId = 1;
  const pending = new Map();
  let exited = false;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = true;
    for (const { reject, timer } of pending.values()) {
      clearTimeout(timer);
      reject(new Error(`${name} exited (code ${code}, signal ${signal}):\n${tail.join('\n')}`));
    }
    pending.clear();
    resolve({ code, signal });
  }));
  child.on('message', (msg) => {
    const p = pending.get(msg.rpcId);
    if (!p) return;
    pending.delete(msg.rpcId);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new Error(`${name}: ${msg.error}`));
    else p.resolve(msg.result);
  });
  return {
    name,
    pid: child.pid,
    call(type, payload = {}, timeoutMs = 30000) {
      if (exited) return Promise.reject(new Error(`${name} is not running:\n${tail.join('\n')}`));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: ${type} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        child.send({ rpcId: id, type, payload });
      });
    },
    output: () => tail.join('\n'),
    /** Asks the worker to exit (closing IPC), SIGKILL after timeoutMs; resolves once it exited. */
    async stop(timeoutMs = 5000) {
      if (exited) return exitPromise;
      try {
        child.disconnect();
      } catch {
        /* already disconnected */
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const r = await exitPromise;
      clearTimeout(timer);
      return r;
    },
  };
}

/** Child side: handlers[type](payload) may be async; its result is sent back. Exits on disconnect. */
export function serveRequests(handlers, { onDisconnect = () => process.exit(0) } = {}) {
  process.on('message', async (msg) => {
    try {
      const handler = handlers[msg.type];
      if (!handler) throw new Error(`unknown request ${msg.type}`);
      const result = await handler(msg.payload);
      process.send({ rpcId: msg.rpcId, result });
    } catch (err) {
      process.send({ rpcId: msg.rpcId, error: err?.stack || String(err) });
    }
  });
  process.on('disconnect', onDisconnect);
}
