// A small, real OpenID Connect provider for the tests, built on the OpenID-certified
// `oidc-provider` package (panva), pinned in package.json and installed outside the repo
// (see README.md): node provider.mjs            -> serves, prints `ISSUER http://127.0.0.1:<port>`
//                  node provider.mjs genkey ES256|RS256|EdDSA KID -> prints one private JWK (JSON)
//
// What a client must send (found by running it, oidc-provider 9.13.3):
// - GET /auth?response_type=code&client_id=pizza-web&redirect_uri=<registered>
//       &scope=openid%20offline_access&state=..&nonce=..&code_challenge=<S256>&code_challenge_method=S256
//   No `resource` parameter is needed: the one API (aud = AUDIENCE) is the default resource and
//   the code remembers it, so the token endpoint mints a JWT access token for it.
// - Refresh tokens: issued on every code exchange (issueRefreshToken below), `scope=openid` is
//   enough. oidc-provider keeps `offline_access` only when the request also has
//   `prompt=consent` (without it, it is silently dropped): then the refresh token outlives the
//   provider session; otherwise it is bound to the session and dies at logout.
//   Refresh tokens of this public client rotate: each refresh returns a new one and the old
//   one is spent (using a spent one revokes the whole grant). ROTATE_REFRESH=0 turns that off.
// - POST /token grant_type=authorization_code&code=..&redirect_uri=..&client_id=..&code_verifier=..
//   POST /token grant_type=refresh_token&refresh_token=..&client_id=..
//   Both answer with a JWT access token (header typ at+jwt, alg/kid of the signing key;
//   claims iss, sub = login name, aud = AUDIENCE, roles = [..], scope, client_id, exp, iat, jti).
// - Logout: GET /session/end?client_id=..&post_logout_redirect_uri=<registered>[&id_token_hint=..][&state=..]
//   shows a page that submits itself (form id `op.logoutForm`, button id `logout-confirm`), then
//   303 to the post_logout_redirect_uri. Without JavaScript, press `logout-confirm`.
//
// Keys (rotation): KEYS_FILE holds {"keys":[private JWKs with kid]}. The FIRST key signs
// (oidc-provider signs with the first key that fits the algorithm, and the signing algorithm is
// the first key's). To rotate: write the new key first, keep the old one after it, restart on
// the same PORT; jwks_uri then publishes both, so tokens signed with the old kid still verify.
// Missing file: one ES256 key with a random kid is generated and written there.
//
// State (sessions, grants, refresh tokens) lives in memory; with STATE_FILE it is also written
// to that JSON file after each change and read at start, so a restart keeps the user's session
// and refresh tokens (a refresh after a key rotation then yields a token with the new kid).

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// stdout carries exactly one line, `ISSUER ...`: everything oidc-provider or we would log
// (its notices use console.info) goes to stderr.
console.log = console.info = console.debug = (...args) => console.error(...args);

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const env = process.env;

function algOf(jwk) {
  if (jwk.alg) return jwk.alg;
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  throw new Error(`key ${jwk.kid}: cannot tell its algorithm (kty ${jwk.kty}, crv ${jwk.crv})`);
}

function generateKey(alg = 'ES256', kid = randomUUID()) {
  let pair;
  if (alg === 'ES256') pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  else if (alg === 'RS256') pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  else if (alg === 'EdDSA') pair = generateKeyPairSync('ed25519');
  else throw new Error(`genkey: ES256, RS256 or EdDSA, not ${alg}`);
  return { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

if (process.argv[2] === 'genkey') {
  process.stdout.write(`${JSON.stringify(generateKey(process.argv[3] ?? 'ES256', process.argv[4] ?? randomUUID()))}\n`);
  process.exit(0);
}

// ---- configuration from the environment ----------------------------------------------------
const PORT = Number(env.PORT ?? 0);
const CLIENT_ID = env.CLIENT_ID || 'pizza-web';
const AUDIENCE = env.AUDIENCE || 'pizza-orders';
// A resource indicator must be an absolute URI; the token's `aud` is AUDIENCE either way.
const RESOURCE = env.RESOURCE || (URL.canParse(AUDIENCE) ? AUDIENCE : `urn:${AUDIENCE}`);
const ACCESS_TTL = Number(env.ACCESS_TTL || 300);
const REFRESH_TTL = Number(env.REFRESH_TTL || 24 * 3600);
const ADMIN_ROLE = env.ADMIN_ROLE || 'pizza-admin';
const STAFF_PREFIX = env.STAFF_PREFIX || 'pizza-staff:';
const REDIRECT_URIS = (env.REDIRECT_URIS || 'http://127.0.0.1/').split(/\s+/).filter(Boolean);
// Loopback redirect URIs match on any port (RFC 8252 7.3, oidc-provider does it for
// application_type "native"); ANY_LOOPBACK_PORT=0 makes them exact.
const ANY_PORT = env.ANY_LOOPBACK_PORT !== '0';
const ROTATE_REFRESH = env.ROTATE_REFRESH !== '0';
const KEYS_FILE = resolve(env.KEYS_FILE || join(repo, 'target', 'oidc-provider', 'jwks.json'));
const STATE_FILE = env.STATE_FILE ? resolve(env.STATE_FILE) : undefined;
const MODULES = resolve(env.OIDC_PROVIDER_MODULES || join(repo, 'target', 'oidc-provider', 'node_modules'));

const entry = join(MODULES, 'oidc-provider', 'lib', 'index.js');
if (!existsSync(entry)) {
  console.error(`oidc-provider not found at ${entry}; install it with:\n`
    + `  npm install --prefix ${dirname(MODULES)} --no-audit --no-fund --save-exact oidc-provider@9.13.3`);
  process.exit(2);
}
const { default: Provider, interactionPolicy } = await import(pathToFileURL(entry).href);

// `node provider.mjs sign`: a JWT over the claims on stdin (JSON), signed with the first key of
// KEYS_FILE exactly as the provider signs (jose, oidc-provider's own JOSE library): for the
// tests' tokens that only the provider's key could have made (expired, another audience).
if (process.argv[2] === 'sign') {
  const { SignJWT, importJWK } = await import(pathToFileURL(join(MODULES, 'jose', 'dist', 'webapi', 'index.js')).href);
  const [first] = JSON.parse(readFileSync(KEYS_FILE, 'utf8')).keys;
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  const alg = algOf(first);
  const jwt = await new SignJWT(JSON.parse(input))
    .setProtectedHeader({ alg, kid: first.kid, typ: 'at+jwt' })
    .sign(await importJWK(first, alg));
  process.stdout.write(`${jwt}\n`);
  process.exit(0);
}

// ---- keys ----------------------------------------------------------------------------------
if (!existsSync(KEYS_FILE)) {
  mkdirSync(dirname(KEYS_FILE), { recursive: true });
  writeFileSync(KEYS_FILE, `${JSON.stringify({ keys: [generateKey('ES256')] }, null, 2)}\n`, { mode: 0o600 });
}
const keys = JSON.parse(readFileSync(KEYS_FILE, 'utf8')).keys.map((jwk) => ({ ...jwk, alg: algOf(jwk) }));
if (!keys.length || keys.some((k) => !k.kid || !k.d)) {
  throw new Error(`${KEYS_FILE}: wants {"keys":[...]}, private keys each with a kid`);
}
const SIGN_ALG = keys[0].alg;

// ---- accounts --------------------------------------------------------------------------------
function rolesOf(login) {
  if (login === 'admin') return [ADMIN_ROLE];
  if (login?.startsWith('staff-')) return [`${STAFF_PREFIX}${login.slice('staff-'.length)}`];
  return [];
}

// ---- storage: one small map, optionally mirrored to STATE_FILE ------------------------------
const store = new Map(STATE_FILE && existsSync(STATE_FILE)
  ? Object.entries(JSON.parse(readFileSync(STATE_FILE, 'utf8')))
  : []);
function persist() {
  if (!STATE_FILE) return;
  const now = Date.now();
  for (const [key, { exp }] of store) if (exp && exp < now) store.delete(key);
  mkdirSync(dirname(STATE_FILE), { recursive: true });
  writeFileSync(`${STATE_FILE}.tmp`, JSON.stringify(Object.fromEntries(store)));
  renameSync(`${STATE_FILE}.tmp`, STATE_FILE);
}
class Adapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    store.set(this.key(id), { payload, exp: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
    persist();
  }

  async find(id) {
    const found = store.get(this.key(id));
    if (!found) return undefined;
    if (found.exp && found.exp < Date.now()) { store.delete(this.key(id)); return undefined; }
    return found.payload;
  }

  async findBy(field, value) {
    for (const [key, { payload }] of store) {
      if (key.startsWith(`${this.model}:`) && payload[field] === value) return this.find(key.slice(this.model.length + 1));
    }
    return undefined;
  }

  findByUid(uid) { return this.findBy('uid', uid); }

  findByUserCode(userCode) { return this.findBy('userCode', userCode); }

  async consume(id) {
    const found = store.get(this.key(id));
    if (found) { found.payload.consumed = Math.floor(Date.now() / 1000); persist(); }
  }

  async destroy(id) { store.delete(this.key(id)); persist(); }

  async revokeByGrantId(grantId) {
    for (const [key, { payload }] of store) if (payload.grantId === grantId) store.delete(key);
    persist();
  }
}

// ---- pages -----------------------------------------------------------------------------------
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title></head>
<body><main><h1>${esc(title)}</h1>${body}</main></body></html>`;

function loginPage(uid, clientId, error) {
  return page('Sign in', `<p>to ${esc(clientId)} (test provider: any password)</p>
${error ? `<p id="error" role="alert">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="login">Login</label> <input id="login" name="login" autofocus required>
<label for="password">Password</label> <input id="password" name="password" type="password">
<button id="sign-in" type="submit">Sign in</button>
</form>`);
}

// ---- the provider ----------------------------------------------------------------------------
function loopbackOrigin(origin) {
  const url = URL.parse(origin);
  return url && url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) ? url : undefined;
}

function configuration() {
  // Consent is granted by itself; without this check a "native" client (any-port loopback
  // redirects) would pass through the consent step (a redirect hop) on every authorize.
  const policy = interactionPolicy.base();
  policy.get('consent').checks.remove('native_client_prompt');
  return {
    adapter: Adapter,
    clients: [{
      client_id: CLIENT_ID,
      client_name: 'Pizza orders (test)',
      application_type: ANY_PORT ? 'native' : 'web',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: REDIRECT_URIS,
      post_logout_redirect_uris: REDIRECT_URIS,
      id_token_signed_response_alg: SIGN_ALG,
    }],
    jwks: { keys },
    cookies: {
      // Plain http on loopback: oidc-provider only marks cookies `secure` over https.
      keys: [env.COOKIE_SECRET || 'pizza-orders-test-provider-cookies'],
    },
    responseTypes: ['code'],
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access'],
    claims: { openid: ['sub'] },
    async findAccount(ctx, sub) {
      return { accountId: sub, async claims() { return { sub }; } };
    },
    async extraTokenClaims(ctx, token) {
      return token.kind === 'AccessToken' ? { roles: rolesOf(token.accountId) } : undefined;
    },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => ROTATE_REFRESH,
    clientBasedCORS(ctx, origin, client) {
      const uris = [...client.redirectUris, ...(client.postLogoutRedirectUris ?? [])];
      if (uris.some((uri) => URL.parse(uri)?.origin === origin)) return true;
      const asked = ANY_PORT && loopbackOrigin(origin);
      return !!asked && uris.some((uri) => loopbackOrigin(uri)?.hostname === asked.hostname);
    },
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ACCESS_TTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: REFRESH_TTL,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    interactions: { policy },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => (oneOf ? (oneOf.includes(RESOURCE) ? RESOURCE : oneOf[0]) : RESOURCE),
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator) => {
          if (indicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
          return {
            scope: 'openid offline_access',
            audience: AUDIENCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: ACCESS_TTL,
            jwt: { sign: { alg: SIGN_ALG } },
          };
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.body = page('Signing out', `${form.replace('</form>', '<input type="hidden" name="logout" value="yes"></form>')}
<button id="logout-confirm" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<script>document.getElementById('op.logoutForm').submit()</script>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page('Signed out', '<p id="signed-out">You are signed out.</p>');
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<pre id="error">${esc(JSON.stringify(out, null, 2))}</pre>`);
    },
  };
}

// ---- our interactions: one login page, consent granted by itself ---------------------------
async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 65536) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const { prompt, params, session } = details;
  if (env.DEBUG_INTERACTIONS) console.error('interaction', uid, prompt.name, JSON.stringify(prompt.reasons), JSON.stringify(prompt.details));
  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const login = (form.get('login') ?? '').trim();
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(login)) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(loginPage(uid, params.client_id, 'Enter a login name (letters, digits, . _ @ -).'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(loginPage(uid, params.client_id));
}

// ---- serve -----------------------------------------------------------------------------------
let provider;
let callback;
const server = createServer((req, res) => {
  const match = /^\/interaction\/([^/?]+)(?:\/(login))?(?:\?.*)?$/.exec(req.url);
  if (!match) return callback(req, res);
  return interaction(provider, req, res, match[1], match[2]).catch((err) => {
    console.error('interaction:', err);
    if (!res.headersSent) {
      res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page('Error', `<pre id="error">${esc(err.message)}</pre>`));
    }
  });
});

function stop() {
  server.close();
  server.closeAllConnections();
  persist();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  provider = new Provider(issuer, configuration());
  provider.on('server_error', (ctx, err) => console.error('server_error:', err));
  // Each token grant on stderr (`GRANT authorization_code`, `GRANT refresh_token`): the tests
  // see the pages renew their token.
  provider.on('grant.success', (ctx) => console.error(`GRANT ${ctx.oidc.params.grant_type}`));
  // Which kind of access token each grant made (a test failing on a token says which it got).
  provider.on('access_token.issued', (token) => console.error(`ACCESS jwt sub=${token.accountId} aud=${token.aud ?? '-'} client=${token.clientId}`));
  provider.on('access_token.saved', (token) => console.error(`ACCESS opaque sub=${token.accountId} client=${token.clientId}`));
  for (const event of ['grant.error', 'authorization.error', 'end_session.error']) {
    provider.on(event, (ctx, err) => console.error(`${event}:`, err.message, err.error_description ?? ''));
  }
  callback = provider.callback();
  const kids = keys.map((k) => `${k.kid} (${k.alg})`).join(', ');
  console.error(`oidc test provider: ${issuer}, client ${CLIENT_ID}, aud ${AUDIENCE}, signs ${SIGN_ALG} with ${keys[0].kid}; keys ${kids}`);
  process.stdout.write(`ISSUER ${issuer}\n`);
});
