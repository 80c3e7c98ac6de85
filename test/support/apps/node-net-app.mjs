// A Node.js server written to ChReK's contract, for the TCP tests: an HTTP listener on IPv6 (NET_APP_HOST,
// "::" by default) and a UDP echo socket on 127.0.0.1, both on NET_APP_PORT, open from the first second.
// GET /state and every UDP datagram answer with the pid and a random instance id drawn at start, so an
// answer after a restore shows the same process memory. It writes the ready file, then waits for the
// signal file (exit) or the restore marker (restored: it keeps serving).
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';

const instance = randomBytes(8).toString('hex');
const port = Number(process.env.NET_APP_PORT);
const state = { phase: 'starting', requests: 0 };
const answer = () => ({ pid: process.pid, instance, ...state });

const server = http.createServer((request, response) => {
  state.requests += 1;
  response.setHeader('Content-Type', 'application/json');
  response.end(JSON.stringify({ ...answer(), path: request.url }));
});
server.keepAliveTimeout = 120_000;
const udp = dgram.createSocket('udp4');
udp.on('message', (message, peer) => udp.send(JSON.stringify({ ...answer(), echo: String(message) }), peer.port, peer.address));

await Promise.all([
  new Promise((resolve) => server.listen(port, process.env.NET_APP_HOST ?? '::', resolve)),
  new Promise((resolve) => udp.bind(port, '127.0.0.1', resolve)),
]);
console.log(
  `node-net-app ${process.pid} instance ${instance} listening on [${process.env.NET_APP_HOST ?? '::'}]:${port} (tcp) and 127.0.0.1:${port} (udp)`,
);

const marker = process.env.DYN_RESTORE_MARKER_FILE ?? '/tmp/dynamo-restored';
state.phase = 'waiting-for-checkpoint';
writeFileSync(process.env.DYN_CHECKPOINT_READY_FILE, 'ready');
const timer = setInterval(() => {
  if (existsSync(marker)) {
    state.phase = 'restored';
    clearInterval(timer);
    console.log('restored');
  } else if (existsSync(process.env.DYN_CHECKPOINT_SIGNAL_FILE)) {
    console.log('checkpoint complete, exiting');
    process.exit(0);
  }
}, 100);
