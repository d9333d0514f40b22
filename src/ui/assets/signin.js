// Sign-in through the chain's identity provider, for the three pages: the authorization-code
// flow with PKCE (RFC 7636, S256) as a public client, so the page holds no secret. The node
// says where the provider is (GET /v1/auth/provider: 204 when it has none).
//
// The tokens live in this module's memory only, never in localStorage or sessionStorage: a
// script injected into the page later cannot find them there, and they end with the tab. While
// the browser is at the provider, sessionStorage holds the one-time state, nonce and PKCE
// verifier of that round trip (useless without the provider's code). A reload signs in again:
// when the last visit was signed in, the page asks the provider silently (prompt=none) and is
// back at once if the provider's own session still stands.
//
// Renewal: a minute before the access token expires (a quarter of its life when shorter) the
// refresh token buys a new one; without a refresh token, or when the provider refuses, the page
// is told the session ended and asks the reader to sign in again.

import { t } from "./i18n.js";

const FLOW = "oidc-flow";
const RESUME = "oidc-resume";

let settings; // the promise of the provider's settings, or of null when there is none
let session = null; // { access, id, refresh, expiresAt, name }
let renewal = null;
let renewing = null; // one renewal at a time: a provider may rotate refresh tokens
let listener = () => {};

function randomText(bytes) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// A JWT's claims, for showing the reader's name and checking the nonce (the node verifies the
// access token's signature; the page only reads what it was handed over TLS by the provider).
function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

function here() { return `${location.origin}${location.pathname}`; }

/// The provider's settings (null: the node has none), fetched once per page.
export function provider() {
  settings ??= fetch("/v1/auth/provider", { cache: "no-cache" })
    .then(async (response) => {
      if (response.status === 204) return null;
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(data.detail || t("signin.unreachable"));
      return data;
    })
    .catch((e) => { settings = undefined; throw e; });
  return settings;
}

/// Called with (token, message) whenever the session changes: a new token after a renewal,
/// or null with the reason when it ended.
export function onSession(callback) { listener = callback; }

export function token() { return session?.access ?? null; }
export function name() { return session?.name ?? ""; }

/// Off to the provider's sign-in page; the browser comes back to this page with a code.
export async function begin({ silent = false } = {}) {
  const p = await provider();
  if (!p) throw new Error(t("signin.none"));
  const verifier = randomText(32);
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  // The page's own query (the kitchen's `?hours=`) waits here: the redirect URI is the page's
  // path alone, as registered at the provider.
  const flow = { state: randomText(16), nonce: randomText(16), verifier, silent, search: location.search };
  sessionStorage.setItem(FLOW, JSON.stringify(flow));
  const url = new URL(p.authorization_endpoint);
  const params = {
    ...p.authorize_params, response_type: "code", client_id: p.client_id, redirect_uri: here(), scope: p.scope,
    state: flow.state, nonce: flow.nonce, code_challenge: challenge, code_challenge_method: "S256",
  };
  if (silent) params.prompt = "none";
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  location.assign(url.href);
}

/// Whether the last visit in this tab was signed in through the provider (a reload asks it
/// again, silently). Starts that round trip and answers true when it did.
export async function resume() {
  if (sessionStorage.getItem(RESUME) !== "1" || new URLSearchParams(location.search).has("state")) return false;
  sessionStorage.removeItem(RESUME);
  try { if (!(await provider())) return false; } catch { return false; }
  await begin({ silent: true });
  return true;
}

/// Back from the provider: trade the code for tokens. Resolves to true when signed in, false
/// when this load is not a return from the provider (or a silent try found no session there);
/// throws an Error whose message is for the reader.
export async function complete() {
  const query = new URLSearchParams(location.search);
  if (!query.has("state") || !(query.has("code") || query.has("error"))) return false;
  const back = Object.fromEntries(query);
  const flow = JSON.parse(sessionStorage.getItem(FLOW) || "null");
  sessionStorage.removeItem(FLOW);
  // The code and state leave the address bar (and the history) whatever happens next; the
  // page's own query from before the round trip comes back.
  history.replaceState(null, "", `${location.pathname}${flow?.search ?? ""}${location.hash}`);
  if (!flow || back.state !== flow.state) throw new Error(t("signin.state"));
  if (back.error) {
    if (flow.silent) return false; // no session at the provider: the reader signs in
    throw new Error(t("signin.failed", { why: back.error_description || back.error }));
  }
  const p = await provider();
  if (!p) throw new Error(t("signin.none"));
  const tokens = await tokenRequest(p, {
    grant_type: "authorization_code", code: back.code, redirect_uri: here(), client_id: p.client_id, code_verifier: flow.verifier,
  });
  const id = claims(tokens.id_token || "");
  if (tokens.id_token && id.nonce !== flow.nonce) throw new Error(t("signin.state"));
  adopt(tokens, id);
  sessionStorage.setItem(RESUME, "1");
  return true;
}

async function tokenRequest(p, form) {
  let response;
  try {
    response = await fetch(p.token_endpoint, {
      method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(form), cache: "no-store",
    });
  } catch {
    throw new Error(t("signin.unreachable"));
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok || !data.access_token) throw new Error(t("signin.failed", { why: data.error_description || data.error || response.status }));
  return data;
}

function adopt(tokens, id = claims(tokens.id_token || "")) {
  const lifetime = Math.max(10, Number(tokens.expires_in) || 300);
  const access = claims(tokens.access_token);
  session = {
    access: tokens.access_token,
    id: tokens.id_token || session?.id || null,
    refresh: tokens.refresh_token || session?.refresh || null,
    expiresAt: Date.now() + lifetime * 1000,
    name: id.name || id.preferred_username || id.email || access.preferred_username || id.sub || access.sub || session?.name || "",
  };
  clearTimeout(renewal);
  const margin = Math.min(60, lifetime / 4) * 1000;
  renewal = setTimeout(renew, Math.max(0, session.expiresAt - margin - Date.now()));
}

function renew() {
  renewing ??= renewOnce().finally(() => { renewing = null; });
  return renewing;
}

async function renewOnce() {
  if (!session) return;
  const p = await provider().catch(() => null);
  if (session.refresh && p) {
    try {
      adopt(await tokenRequest(p, { grant_type: "refresh_token", refresh_token: session.refresh, client_id: p.client_id }));
      listener(session.access, "");
      return;
    } catch { /* the session ends below */ }
  }
  if (Date.now() < session.expiresAt) {
    // Still valid a while: try once more at the end, then give up.
    clearTimeout(renewal);
    renewal = setTimeout(expire, session.expiresAt - Date.now());
    return;
  }
  expire();
}

function expire() {
  session = null;
  sessionStorage.removeItem(RESUME);
  listener(null, t("signin.expired"));
}

// Timers sleep in a background tab: on its return, renew at once if the token is near its end.
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && session && session.expiresAt - Date.now() < 60000) renew();
});

/// Forget the session here only (the node refused its token, or the page signs out for
/// another reason): no renewal, no silent sign-in after a reload.
export function forget() {
  session = null;
  clearTimeout(renewal);
  sessionStorage.removeItem(RESUME);
}

/// Forget the session here and end it at the provider (the browser goes there and comes back
/// to this page); a provider without an end-session endpoint: forgotten here only.
export async function signOut() {
  const ended = session;
  session = null;
  clearTimeout(renewal);
  sessionStorage.removeItem(RESUME);
  if (!ended) return;
  const p = await provider().catch(() => null);
  if (!p?.end_session_endpoint) return;
  const url = new URL(p.end_session_endpoint);
  url.searchParams.set("client_id", p.client_id);
  url.searchParams.set("post_logout_redirect_uri", here());
  if (ended.id) url.searchParams.set("id_token_hint", ended.id);
  location.assign(url.href);
}

/// Whether the node offers the provider's sign-in: it serves the page with the block shown
/// (src/ui/mod.rs), so a page without one asks nothing and nothing moves in one that has it.
export function offered() {
  return document.getElementById("provider-sign-in")?.hidden === false;
}

/// The pages' part, the same on all three (called only when `offered()`): names the provider
/// under the button (in `#provider-sign-in`), finishes a return from it, and asks it again after a reload
/// when `resuming` (the page holds no other token). `signedIn(token, name, renewed)` is called
/// on sign-in and after each renewal, `ended(message)` when the session ends. Resolves to true
/// when it signed in or the browser is on its way to the provider.
export async function mount({ signedIn, ended, resuming = true }) {
  const $ = (id) => document.getElementById(id);
  const error = (text) => { $("err-provider").textContent = text || ""; $("err-provider").hidden = !text; };
  onSession((access, message) => (access ? signedIn(access, name(), true) : ended(message)));
  let p = null;
  try { p = await provider(); } catch (e) { error(e.message); }
  // The button works once the provider is known; it is hidden while the page is on its way
  // to the provider (a silent try), so it cannot start a second round trip.
  $("provider-button").addEventListener("click", () => { error(""); begin().catch((e) => error(e.message)); });
  const offer = () => {
    $("provider-sign-in").hidden = false;
    if (!p) return;
    const note = () => { $("provider-note").textContent = t("signin.at", { host: new URL(p.authorization_endpoint).host }); };
    note();
    document.addEventListener("pagelanguage", note);
  };
  try {
    if (await complete()) { offer(); signedIn(token(), name(), false); return true; }
  } catch (e) {
    offer();
    error(e.message);
    return false;
  }
  if (resuming && p) {
    $("provider-sign-in").hidden = true;
    if (await resume()) return true;
  }
  offer();
  return false;
}

/// The kitchen's and the dashboard's start: a pasted token kept for the tab first; the
/// provider's sign-in (a return from it, or a silent round trip after a reload) beside it when
/// the node offers one; else the sign-in section. `state.token` is the page's token.
export function startStaffPage({ state, start, signOut }) {
  const showSignIn = () => { document.getElementById("sign-in").hidden = false; };
  const withProvider = offered();
  const returning = withProvider && new URLSearchParams(location.search).has("state");
  if (state.token && !returning) start();
  else if (!withProvider) showSignIn();
  if (!withProvider) return;
  mount({
    signedIn: (token, _name, renewed) => { state.token = token; if (!renewed) start(); },
    ended: (message) => signOut(message),
    resuming: !state.token,
  }).then((handled) => { if (!handled && (!state.token || returning)) showSignIn(); });
}
