// A tiny HTTP server for the sample app: answers with the pod that served it.
'use strict';
const http = require('node:http');

const port = Number(process.env.PORT || 8080);
const pod = `${process.env.POD_NAMESPACE || 'default'}/${process.env.POD_NAME || 'unknown'}`;

http
  .createServer((req, res) => {
    const body = `hello from ${pod} (${process.env.POD_IP || '?'}) on ${process.env.NODE_NAME || '?'}: ${req.method} ${req.url}\n`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  })
  .listen(port, () => console.log(`hello-server ${pod} listening on :${port}`));
