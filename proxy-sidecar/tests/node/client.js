// Node.js clients for proxy-sidecar/tests/clients.rs.
//
//   node client.js fetch <url>   global fetch() through HTTP(S)_PROXY. Node 20 ignores
//                                NODE_USE_ENV_PROXY (newer Node lines honour it), so
//                                undici's EnvHttpProxyAgent is installed as the global
//                                dispatcher (harmless where the runtime would do it).
//   node -r global-agent/bootstrap client.js get <url>
//                                http/https.get() through GLOBAL_AGENT_HTTP_PROXY.
//
// Prints one JSON line: {"status": n, "body": "..."} or {"error": "..."}.
'use strict';

const [mode, url] = process.argv.slice(2);

function done(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function viaFetch() {
  const { EnvHttpProxyAgent, setGlobalDispatcher } = require('undici');
  setGlobalDispatcher(new EnvHttpProxyAgent());
  try {
    const res = await fetch(url);
    done({ status: res.status, body: await res.text(), reason: res.headers.get('x-proxy-reason') });
  } catch (e) {
    done({ error: String((e.cause && (e.cause.message || e.cause.code)) || e.message) });
  }
}

function viaGet() {
  const mod = url.startsWith('https:') ? require('https') : require('http');
  mod
    .get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => done({ status: res.statusCode, body, reason: res.headers['x-proxy-reason'] || null }));
    })
    .on('error', (e) => done({ error: String(e.message || e.code) }));
}

if (mode === 'fetch') {
  viaFetch();
} else if (mode === 'get') {
  viaGet();
} else {
  done({ error: `unknown mode ${mode}` });
  process.exitCode = 2;
}
