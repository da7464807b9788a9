#!/usr/bin/env node
// Submits a command task to the stigmer-local daemon and streams its events.
//
//   node submit.js -- sh -c "echo hi; exit 3"
//
// Stdout and stderr carry the program's own output; every other event is one
// line on stderr. The exit code is the task's (124 timed out, 130 cancelled,
// 128+N killed by signal N, 1 failed without an exit code).
//
// Finds the daemon as the `stigmer` CLI does: STIGMER_HOME, or the XDG paths.
// Overrides: STIGMER_SOCKET (socket path), STIGMER_ADDRESS (host:port, TCP
// instead of the socket), STIGMER_TOKEN_FILE, STIGMER_PROTO_ROOT (the folder
// holding protos/, the repository root by default).
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const UNARY_DEADLINE_MS = 10_000;
const RECONNECT_DELAY_MS = 500;
const RECONNECT_ATTEMPTS = 20;

// --- where the daemon is (mirrors shared/paths.py) ---------------------------

function daemonPaths(env = process.env) {
  const xdg = (name, fallback) => {
    const value = env[name] || '';
    return path.isAbsolute(value) ? value : fallback; // relative XDG values are invalid
  };
  let state;
  let run;
  if (env.STIGMER_HOME) {
    const root = path.resolve(env.STIGMER_HOME);
    state = path.join(root, 'state');
    run = path.join(root, 'run');
  } else {
    state = path.join(xdg('XDG_STATE_HOME', path.join(os.homedir(), '.local', 'state')), 'stigmer');
    const runtime = env.XDG_RUNTIME_DIR || '';
    run = path.isAbsolute(runtime) ? path.join(runtime, 'stigmer') : path.join(state, 'run');
  }
  return {
    socket: path.resolve(env.STIGMER_SOCKET || path.join(run, 'stigmer.sock')),
    tokenFile: path.resolve(env.STIGMER_TOKEN_FILE || path.join(state, 'token')),
    address: env.STIGMER_ADDRESS || '',
  };
}

// --- the contract ------------------------------------------------------------

function loadContract() {
  const root = path.resolve(process.env.STIGMER_PROTO_ROOT || path.join(__dirname, '..', '..'));
  // Imports in protos/*.proto are relative to the repository root.
  const stigmer = grpc.loadPackageDefinition(
    protoLoader.loadSync(['protos/task_service.proto'], { ...LOADER_OPTIONS, includeDirs: [root] }),
  ).stigmer.local.v1;
  // google.rpc.Status and ErrorInfo, to read the rich error details.
  const rpc = protoLoader.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], {
    ...LOADER_OPTIONS,
    includeDirs: [path.join(__dirname, 'protos')],
  });
  return { TaskService: stigmer.TaskService, Status: rpc['google.rpc.Status'], ErrorInfo: rpc['google.rpc.ErrorInfo'] };
}

// --- errors --------------------------------------------------------------------

const CODE_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));

// The google.rpc.ErrorInfo in the `grpc-status-details-bin` trailer, or null.
function errorInfo(contract, error) {
  const raw = error && error.metadata ? error.metadata.get('grpc-status-details-bin') : [];
  if (!raw.length) return null;
  try {
    const status = contract.Status.deserialize(raw[0]);
    for (const detail of status.details) {
      if (detail.type_url.endsWith('/google.rpc.ErrorInfo')) {
        return contract.ErrorInfo.deserialize(detail.value);
      }
    }
  } catch (e) {
    // A detail we cannot decode is no reason to hide the error itself.
  }
  return null;
}

function describe(contract, error) {
  const info = errorInfo(contract, error);
  let line = `error: ${CODE_NAMES[error.code] || error.code}: ${error.details || error.message}`;
  if (info) {
    const extra = Object.entries(info.metadata).map(([k, v]) => `${k}=${v}`).join(' ');
    line += ` [${info.reason}${extra ? ' ' + extra : ''}]`;
  }
  return line;
}

// --- calls ---------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function unary(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + UNARY_DEADLINE_MS);
    client[method](request, metadata, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

// Retries while the daemon is unreachable; only safe for idempotent calls
// (CreateTask is, thanks to its request_id).
async function unaryRetrying(client, method, request, metadata) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await unary(client, method, request, metadata);
    } catch (err) {
      if (err.code !== grpc.status.UNAVAILABLE || attempt >= RECONNECT_ATTEMPTS) throw err;
      await sleep(RECONNECT_DELAY_MS);
    }
  }
}

// One WatchTask stream; resolves with the last seq seen and the finished event, if any.
function watchOnce(client, taskId, afterSeq, metadata, onEvent) {
  return new Promise((resolve, reject) => {
    let lastSeq = afterSeq;
    let finished = null;
    const call = client.WatchTask({ task_id: taskId, after_seq: afterSeq }, metadata);
    call.on('data', (batch) => {
      for (const event of batch.events) {
        lastSeq = event.seq;
        onEvent(event);
        if (event.payload === 'finished') finished = event.finished;
      }
    });
    call.on('error', (err) => {
      err.lastSeq = lastSeq;
      reject(err);
    });
    call.on('end', () => resolve({ lastSeq, finished }));
  });
}

function printEvent(event) {
  const kind = event.payload || 'unknown';
  if (kind === 'log') {
    (event.log.stream === 'LOG_STREAM_STDERR' ? process.stderr : process.stdout).write(event.log.data);
    return;
  }
  process.stderr.write(`[${event.task_id} #${event.seq}] ${kind} ${JSON.stringify(event[kind])}\n`);
}

function exitCodeOf(finished) {
  const result = finished.result || {};
  if (result.has_exit_code) return result.exit_code < 0 ? 128 - result.exit_code : result.exit_code;
  switch (finished.state) {
    case 'TASK_STATE_SUCCEEDED':
      return 0;
    case 'TASK_STATE_TIMED_OUT':
      return 124;
    case 'TASK_STATE_CANCELLED':
      return 130;
    default:
      return 1;
  }
}

// --- main ----------------------------------------------------------------------

async function main() {
  const dash = process.argv.indexOf('--');
  if (dash < 0) {
    process.stderr.write('usage: node submit.js -- PROGRAM [ARGS...]\n');
    return 2;
  }
  const argv = process.argv.slice(dash + 1);
  const where = daemonPaths();
  const contract = loadContract();

  let token;
  try {
    token = fs.readFileSync(where.tokenFile, 'utf8').trim();
  } catch (e) {
    process.stderr.write(`error: cannot read the daemon's token file ${where.tokenFile}: ${e.message}\n`);
    process.stderr.write('is the daemon running? (stigmer local start)\n');
    return 3;
  }
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);

  const target = where.address || `unix://${where.socket}`;
  const client = new contract.TaskService(target, grpc.credentials.createInsecure(), {
    // Log events can be large; gRPC's default 4 MiB would cut a watch short.
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });

  try {
    const task = await unaryRetrying(
      client,
      'CreateTask',
      {
        spec: { command: { argv }, workspace: { path: process.cwd() } },
        request_id: crypto.randomUUID(), // a retried create returns the same task
      },
      metadata,
    );
    process.stderr.write(`task ${task.id} created\n`);

    // Ctrl-C cancels the task (its events still arrive); a second one leaves at once.
    let interrupted = false;
    process.on('SIGINT', () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      unary(client, 'CancelTask', { task_id: task.id, reason: 'cancelled from submit.js' }, metadata).catch(() => {});
    });

    let afterSeq = '0';
    let failures = 0;
    for (;;) {
      try {
        const { lastSeq, finished } = await watchOnce(client, task.id, afterSeq, metadata, printEvent);
        afterSeq = lastSeq;
        if (finished) return exitCodeOf(finished);
        // The stream ended without `finished` (the task was already terminal): ask for it.
        const current = await unary(client, 'GetTask', { task_id: task.id }, metadata);
        if (current.result && current.end_time) return exitCodeOf({ state: current.state, result: current.result });
      } catch (err) {
        if (err.lastSeq && err.lastSeq !== afterSeq) failures = 0; // it made progress
        afterSeq = err.lastSeq || afterSeq;
        const resumable = err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.RESOURCE_EXHAUSTED;
        if (err.code === grpc.status.OUT_OF_RANGE && ++failures <= RECONNECT_ATTEMPTS) {
          // CURSOR_TOO_OLD: events after our seq were compacted away. Read the current
          // state, then go on with the oldest events still kept (metadata.first_seq).
          const info = errorInfo(contract, err);
          const firstSeq = info && info.metadata.first_seq;
          const current = await unary(client, 'GetTask', { task_id: task.id }, metadata);
          const resumeAt = firstSeq ? String(BigInt(firstSeq) - 1n) : current.last_seq;
          process.stderr.write(`events after #${afterSeq} are no longer kept; resuming after #${resumeAt}\n`);
          afterSeq = resumeAt;
          continue;
        }
        if (!resumable || ++failures > RECONNECT_ATTEMPTS) throw err;
        if (failures === 1) process.stderr.write(`${describe(contract, err)}; resuming after #${afterSeq}\n`);
        await sleep(RECONNECT_DELAY_MS);
      }
    }
  } catch (err) {
    if (err.code === undefined) throw err;
    process.stderr.write(describe(contract, err) + '\n');
    return err.code === grpc.status.UNAVAILABLE ? 3 : err.code === grpc.status.INVALID_ARGUMENT ? 2 : 1;
  } finally {
    client.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`error: ${err.stack || err}\n`);
    process.exit(1);
  },
);
