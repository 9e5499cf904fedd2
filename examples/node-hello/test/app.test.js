'use strict';
// Unit tests with node's built-in test runner (node --test): each test asks a server
// started on a free port and checks the status, type and body.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { createServer } = require('../lib/app');

let server;
let base;

before(async () => {
  server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((resolve) => server.close(resolve)));

function request(path, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('GET /healthz answers ok', async () => {
  const r = await request('/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'ok\n');
});

test('GET /hello greets the world by default', async () => {
  const r = await request('/hello');
  assert.equal(r.status, 200);
  assert.equal(r.type, 'application/json');
  assert.deepEqual(JSON.parse(r.body), { greeting: 'hello, world' });
});

test('GET /hello?name=NAME greets NAME', async () => {
  for (const name of ['you', 'e2e', 'a.b_c-9']) {
    const r = await request(`/hello?name=${name}`);
    assert.equal(r.status, 200, name);
    assert.deepEqual(JSON.parse(r.body), { greeting: `hello, ${name}` });
  }
});

test('GET /hello refuses bad names with 400', async () => {
  for (const query of ['name=', 'name=a%20b', 'name=%3Cscript%3E', `name=${'x'.repeat(65)}`]) {
    const r = await request(`/hello?${query}`);
    assert.equal(r.status, 400, query);
    assert.match(JSON.parse(r.body).error, /name must be/);
  }
});

test('GET /status reports uptime with ms and the node version', async () => {
  const r = await request('/status');
  assert.equal(r.status, 200);
  const status = JSON.parse(r.body);
  assert.match(status.uptime, /^\d+(ms|s|m|h|d)$/);
  assert.equal(status.node, process.version);
});

test('HEAD has no body, other methods get 405', async () => {
  const head = await request('/hello', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  const post = await request('/hello', 'POST');
  assert.equal(post.status, 405);
});

test('unknown paths are 404', async () => {
  const r = await request('/nope');
  assert.equal(r.status, 404);
});
