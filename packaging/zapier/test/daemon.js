'use strict';
// Test harness: starts the real rev23-webhooks binary on 127.0.0.1 (ephemeral port, temp data
// dir), a real local receiver for deliveries, and a small API client. Every wait is bounded.

const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const readline = require('readline');

const BIN = process.env.REV23_BIN || path.resolve(__dirname, '../../../target/debug/rev23-webhooks');
const START_TIMEOUT_MS = 30000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts the daemon; resolves to `{ baseUrl, ownerKey, stop() }`. */
const startDaemon = async () => {
  if (!fs.existsSync(BIN)) {
    throw new Error(`no daemon binary at ${BIN}: run \`cargo build\` first (or set REV23_BIN)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rev23-zapier-'));
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(
    config,
    [
      'listen = "127.0.0.1:0"',
      `data_dir = ${JSON.stringify(path.join(dir, 'data'))}`,
      '[limits]',
      'rate_limit_per_minute = 100000',
      '[policy]',
      'allow_private_networks = ["127.0.0.0/8"]',
      '[delivery]',
      'retry_schedule_ms = [0, 100, 200]',
      'timeout_ms = 2000',
      '',
    ].join('\n'),
  );
  const child = spawn(BIN, ['serve', '--config', config], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: process.env.TEST_DAEMON_LOG || 'warn' },
  });
  const baseUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('daemon did not start in time')), START_TIMEOUT_MS);
    child.on('exit', (code) => reject(new Error(`daemon exited with ${code}`)));
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = line.match(/^rev23-webhooks listening on (\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  const ownerKey = fs.readFileSync(path.join(dir, 'data', 'owner.key'), 'utf8').trim();
  const stop = async () => {
    child.kill('SIGTERM');
    await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(15000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { baseUrl, ownerKey, stop };
};

/** A JSON call to the daemon; resolves to `{ status, body }`. */
const api = async (daemon, method, urlPath, key, body) => {
  const response = await fetch(daemon.baseUrl + urlPath, {
    method,
    headers: { 'x-api-key': key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10000),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
};

/** A user with `permissions` and an API key; resolves to `{ id, key }`. */
const userWithKey = async (daemon, name, permissions) => {
  const user = await api(daemon, 'POST', '/v1/users', daemon.ownerKey, { name, permissions });
  if (user.status !== 201) throw new Error(`create user: ${JSON.stringify(user.body)}`);
  const key = await api(daemon, 'POST', `/v1/users/${user.body.id}/keys`, daemon.ownerKey, { name: 'zapier' });
  if (key.status !== 201) throw new Error(`create key: ${JSON.stringify(key.body)}`);
  return { id: user.body.id, key: key.body.key };
};

/** A receiver standing in for hooks.zapier.com: records every POST body, answers `status()`. */
const startReceiver = async (status = () => 200) => {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), path: req.url });
      res.writeHead(status());
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/hooks/standard/1/zap/`;
  const waitFor = async (n, timeoutMs = 10000) => {
    const deadline = Date.now() + timeoutMs;
    while (received.length < n && Date.now() < deadline) await sleep(20);
    return received.slice();
  };
  const close = () => new Promise((resolve) => server.close(resolve));
  return { url, received, waitFor, close };
};

module.exports = { startDaemon, api, userWithKey, startReceiver, sleep };
