'use strict';
// Starts the service on $PORT (default 8080) and stops it cleanly on SIGTERM, which
// Kubernetes sends before it removes a pod.
const { createServer } = require('./lib/app');

const port = Number(process.env.PORT || 8080);
const server = createServer();

server.listen(port, () => {
  console.log(`node-hello listening on :${port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    console.log(`node-hello: ${signal}, closing`);
    server.close(() => process.exit(0));
  });
}
