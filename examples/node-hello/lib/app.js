'use strict';
// The service's routes, without the listening socket, so tests can start it on any port.
const http = require('node:http');
const ms = require('ms');

// A name is 1 to 64 letters, digits, '.', '_' or '-'.
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

function send(res, status, type, body, head) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

function json(res, status, value, head) {
  send(res, status, 'application/json', JSON.stringify(value) + '\n', head);
}

// handle answers one request:
//   GET /                 a short text page
//   GET /hello?name=NAME  {"greeting":"hello, NAME"}; 400 for a bad name
//   GET /healthz          ok (the readiness and liveness probe)
//   GET /status           {"uptime":"3m","node":"v18.20.4"}
// Only GET and HEAD are allowed (405 otherwise); other paths are 404.
function handle(req, res, started) {
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    res.setHeader('Allow', 'GET, HEAD');
    return json(res, 405, { error: 'method not allowed' }, head);
  }
  const url = new URL(req.url, 'http://localhost');
  switch (url.pathname) {
    case '/':
      return send(res, 200, 'text/plain; charset=utf-8', 'node-hello: try /hello?name=you\n', head);
    case '/healthz':
      return send(res, 200, 'text/plain; charset=utf-8', 'ok\n', head);
    case '/hello': {
      const name = url.searchParams.has('name') ? url.searchParams.get('name') : 'world';
      if (!NAME.test(name)) {
        return json(res, 400, { error: 'name must be 1 to 64 letters, digits, ".", "_" or "-"' }, head);
      }
      return json(res, 200, { greeting: `hello, ${name}` }, head);
    }
    case '/status':
      return json(res, 200, { uptime: ms(Date.now() - started), node: process.version }, head);
    default:
      return json(res, 404, { error: `no route ${url.pathname}` }, head);
  }
}

// createServer returns an http.Server serving the routes above; it does not listen yet.
function createServer() {
  const started = Date.now();
  return http.createServer((req, res) => handle(req, res, started));
}

module.exports = { createServer };
