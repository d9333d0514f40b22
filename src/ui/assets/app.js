// pizza-orders web UI: plain ES module, no build step. Talks to the JSON API of the node
// that served it; every error is an application/problem+json with a readable `detail`.

import { t, money, number, dateTime, problemText, translatePage } from "./i18n.js";
import * as provider from "./signin.js";

const $ = (id) => document.getElementById(id);
// A token from the identity provider stays in memory (signin.js); a pasted or development
// token is kept for the tab in sessionStorage.
const state = { token: sessionStorage.getItem("token"), name: sessionStorage.getItem("name") || "", menu: null, slot: null, editing: null, idempotencyKey: null, busy: false,
  stores: [], store: null, point: {} };

// Words for the API's ids: sizes, toppings and statuses.
const sizeWords = (id) => t(`size.${id}`);
const toppingWords = (id) => t(`topping.${id}`);
const statusWords = (id) => t(`status.${id}`);
// Delivery times are shown on the store's clock (the kitchen's), and labelled with its zone.
function storeZone() { return state.store?.time_zone; }
function localTime(iso, zone = storeZone()) {
  return dateTime(iso, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: zone });
}
function clockTime(iso, zone = storeZone()) {
  return dateTime(iso, { hour: "2-digit", minute: "2-digit", timeZone: zone });
}
function km(metres) { return number(metres / 1000, { maximumFractionDigits: 1 }); }
function say(text) { $("status").textContent = text; }
function alertMessage(text) { const a = $("alert"); a.textContent = text || ""; a.hidden = !text; }

// An API problem, in the reader's words (i18n.js).
class Problem extends Error {
  constructor(status, body) { super(problemText(status, body)); this.status = status; this.type = body.type || ""; this.field = body.field; this.body = body; }
}


// `cache: "no-cache"` for availability: the browser may keep an answer, but asks the node
// (If-None-Match, a cheap 304 when nothing changed) before showing it.
async function api(method, path, { body, headers = {}, cache } = {}) {
  const init = { method, headers: { ...headers } };
  if (cache) init.cache = cache;
  const token = state.token;
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Problem(0, { detail: t("common.network"), local: true });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  // Only the token that was refused ends the session (not one signed in since).
  if (response.status === 401) { if (token && state.token === token) signOut(t("c.session_expired")); throw new Problem(401, data || {}); }
  if (!response.ok) throw new Problem(response.status, data || {});
  return { data, etag: response.headers.get("ETag") };
}

// ---- analytics: first-party beacons, counted not tracked ----
// A random visitor id kept in this browser (hashed on the node with a daily salt; nothing else
// identifies the visitor). Nothing is sent when the browser says Do Not Track or Global
// Privacy Control.
function track(event) {
  if (navigator.doNotTrack === "1" || window.doNotTrack === "1" || navigator.globalPrivacyControl === true) return;
  if (!navigator.sendBeacon) return;
  let visitor = localStorage.getItem("visitor");
  if (!visitor) {
    visitor = globalThis.crypto?.randomUUID ? crypto.randomUUID() : `v-${Date.now()}-${Math.random().toString(36).slice(2, 12)}`;
    localStorage.setItem("visitor", visitor);
  }
  const beacon = { event, visitor };
  if (state.store?.id) beacon.store = state.store.id;
  navigator.sendBeacon("/v1/events", new Blob([JSON.stringify(beacon)], { type: "application/json" }));
}

function show(id, visible) { $(id).hidden = !visible; }
function focus(id) { const el = $(id); if (el) { el.setAttribute("tabindex", "-1"); el.focus(); } }

function signOut(message) {
  state.token = null;
  provider.forget();
  sessionStorage.removeItem("token");
  ["current", "order", "history", "who"].forEach((id) => show(id, false));
  show("sign-in", true);
  alertMessage(message);
  focus("sign-in-title");
}

async function signIn(user) {
  const response = await fetch("/v1/dev/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }) });
  const data = await response.json();
  if (!response.ok) throw new Problem(response.status, data);
  useToken(data.token, user);
}

function useToken(token, name, { remember = true } = {}) {
  state.token = token;
  state.name = name || "";
  if (remember) {
    sessionStorage.setItem("token", token);
    sessionStorage.setItem("name", state.name);
  }
  alertMessage("");
  start();
}

function clearErrors() {
  document.querySelectorAll("[id^=err-]").forEach((e) => { e.hidden = true; e.textContent = ""; delete e.dataset.live; });
  show("alternatives", false);
  show("join-line", false);
}

function showError(problem) {
  let field = problem.field || (problem.type.endsWith("slot-full") || problem.type.endsWith("slot-too-soon") ? "delivery_slot" : null);
  if (["latitude", "longitude", "store_id"].includes(field) || problem.type.endsWith("outside-delivery-area")) field = "postcode";
  if (problem.type.endsWith("outside-delivery-area")) problem = new Problem(422, { ...problem.body, detail: outsideText(problem.body) });
  const target = field && $(`err-${field}`) ? $(`err-${field}`) : $("err-form");
  track(problem.type.endsWith("slot-full") ? "slot_full_seen" : "error_shown");
  target.textContent = problem.message;
  target.hidden = false;
  target.setAttribute("tabindex", "-1");
  target.focus();
}

// ---- menu and price ----
function renderMenu() {
  const m = state.menu;
  $("sizes").innerHTML = "";
  const before = chosen();
  // The size chosen before stays chosen if this menu sells it; else medium, else the first.
  const pick = [before.size, "medium", m.sizes[0]?.id].find((id) => m.sizes.some((s) => s.id === id));
  m.sizes.forEach((s) => {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="size" value="${s.id}" ${s.id === pick ? "checked" : ""}> ${sizeWords(s.id)} (${money(s.price_cents, m.currency)})`;
    $("sizes").append(label);
  });
  $("toppings").innerHTML = "";
  m.toppings.forEach((topping) => {
    const label = document.createElement("label");
    const on = before.toppings.includes(topping.id) ? "checked" : "";
    label.innerHTML = `<input type="checkbox" name="topping" value="${topping.id}" ${on}> ${toppingWords(topping.id)} (+${money(topping.price_cents, m.currency)})`;
    $("toppings").append(label);
  });
  updatePrice();
}

// The store's own menu (its currency, prices, tax and what it sells), once the store is known.
async function loadStoreMenu(store) {
  if (!store || state.menu?.store_id === store.id) return;
  try {
    const { data } = await api("GET", `/v1/menu?store=${encodeURIComponent(store.id)}`);
    if (data && state.store?.id === store.id) {
      state.menu = data;
      renderMenu();
    }
  } catch (problem) {
    // The default menu stays; placing the order checks the store's own.
    say(problem.message || "");
  }
}

function chosen() {
  const size = document.querySelector("input[name=size]:checked")?.value;
  const toppings = [...document.querySelectorAll("input[name=topping]:checked")].map((c) => c.value);
  return { size, toppings };
}

function updatePrice() {
  const m = state.menu;
  if (!m) return;
  const { size, toppings } = chosen();
  const base = m.sizes.find((s) => s.id === size)?.price_cents || 0;
  const extra = toppings.reduce((sum, id) => sum + (m.toppings.find((x) => x.id === id)?.price_cents || 0), 0);
  $("price").textContent = money(base + extra, m.currency);
  // The tax on the whole order, as the server works it out (rounded half to even): shown as
  // included, or added with the total.
  const tax = m.tax || { rate: "0%", included: true };
  const ppm = Math.round(parseFloat(tax.rate) * 10000);
  let note = "";
  if (ppm > 0 && tax.included) {
    note = t("c.tax_included", { rate: tax.rate });
  } else if (ppm > 0) {
    const net = base + extra;
    const exact = (net * ppm) / 1e6;
    const floor = Math.floor(exact);
    const diff = exact - floor;
    const added = diff > 0.5 || (diff === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
    note = t("c.tax_added", { rate: tax.rate, total: money(net + added, m.currency) });
  }
  $("tax-note").textContent = note;
}

// ---- where: the store that bakes the order ----
function outsideText(body) {
  const near = body.nearest_store;
  return near ? t("c.outside_nearest", { store: near.name, km: km(near.distance_m) }) : t("c.outside");
}

function useStore(store) {
  state.store = store;
  loadStoreMenu(store);
  const info = $("store-info");
  info.hidden = !store;
  show("when", Boolean(store));
  if (!store) return;
  storeWords(store);
  $("day").min = localDay(new Date(), store.time_zone);
  track("catalog_shown");
}

// What the page says about the store, in the page's language.
function storeWords(store) {
  $("store-info").textContent = store.address ? t("c.baked_by_at", { store: store.name, address: store.address }) : t("c.baked_by", { store: store.name });
  $("tz-note").textContent = t("c.local_times", { zone: store.time_zone });
}

// The language switched (no reload): draw again what the page wrote itself.
document.addEventListener("pagelanguage", () => {
  if (state.menu) renderMenu();
  if (state.store) storeWords(state.store);
  if (!state.token) return;
  loadSlots();
  if (state.current && !state.editing) renderCurrent(state.current.order, state.current.etag);
});

// The date a moment falls on in `zone`, as YYYY-MM-DD.
function localDay(date, zone) {
  return dateTime(date, { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }, "en-CA");
}

// A YYYY-MM-DD date in words, on the store's calendar: "today", "tomorrow", or the date.
function dayInWords(day, { long = false } = {}) {
  const zone = storeZone();
  if (day === localDay(new Date(), zone)) return t("c.today");
  if (day === localDay(new Date(Date.now() + 24 * 3600 * 1000), zone)) return t("c.tomorrow");
  const options = long ? { weekday: "long", day: "numeric", month: "long" } : { weekday: "short", day: "numeric", month: "short" };
  return dateTime(`${day}T12:00:00Z`, { ...options, timeZone: "UTC" });
}
function capital(text) { return text.charAt(0).toUpperCase() + text.slice(1); }

// How far ahead the page looks for open days.
const OPEN_DAYS_AHEAD = 14;

// The days (on the store's clock) that still have a slot with room, soonest first; the day
// picker opens on the first of them, which is today whenever today still has one.
async function loadOpenDays() {
  if (!state.store) return;
  const now = new Date();
  const to = new Date(now.getTime() + Math.min(OPEN_DAYS_AHEAD, state.store.horizon_days || OPEN_DAYS_AHEAD) * 24 * 3600 * 1000);
  let days = [];
  try {
    const { data } = await api("GET", slotsPath(now.toISOString(), to.toISOString()), { cache: "no-cache" });
    days = [...new Set(data.slots.filter((s) => s.remaining > 0).map((s) => s.local_start.slice(0, 10)))];
  } catch { /* the slot list says what went wrong */ }
  $("open-days").textContent = days.length
    ? t("c.open_days", { days: `${days.slice(0, 7).map((d) => dayInWords(d)).join(" · ")}${days.length > 7 ? " · …" : ""}` })
    : t("c.no_open_days", { days: OPEN_DAYS_AHEAD });
  if (days.length && !state.editing) $("day").value = days[0];
}

async function findStore() {
  $("err-postcode").hidden = true;
  const postcode = $("postcode").value.trim();
  state.point = { ...state.point, postcode: postcode || undefined };
  if (!postcode && state.point.latitude === undefined) {
    showError(new Problem(422, { detail: t("c.type_postcode"), field: "postcode", type: "", local: true }));
    return;
  }
  const query = new URLSearchParams();
  if (postcode) query.set("postcode", postcode);
  if (state.point.latitude !== undefined) { query.set("latitude", state.point.latitude); query.set("longitude", state.point.longitude); }
  say(t("c.finding_store"));
  try {
    const { data } = await api("GET", `/v1/stores/locate?${query}`);
    useStore(data.store);
    say("");
    state.slot = null;
    await loadOpenDays();
    await loadSlots();
  } catch (e) {
    say("");
    useStore(null);
    if (e.status !== 401) showError(e);
  }
}

function useLocation() {
  $("err-postcode").hidden = true;
  if (!navigator.geolocation) {
    showError(new Problem(0, { detail: t("c.no_geolocation"), field: "postcode", type: "", local: true }));
    return;
  }
  say(t("c.asking_location"));
  navigator.geolocation.getCurrentPosition(
    (position) => {
      state.point = { ...state.point, latitude: position.coords.latitude, longitude: position.coords.longitude };
      findStore();
    },
    () => {
      say("");
      showError(new Problem(0, { detail: t("c.no_location"), field: "postcode", type: "", local: true }));
    },
    { timeout: 10000 },
  );
}

async function loadStores() {
  state.stores = (await api("GET", "/v1/stores")).data.stores;
  // A chain of one store that delivers everywhere has nothing to ask.
  const only = state.stores.length === 1 && state.stores[0].delivers === "everywhere" ? state.stores[0] : null;
  show("where", !only);
  if (only) useStore(only);
  else if (!state.store) useStore(null);
}

// ---- slots ----
// Every offset on earth is within -12 and +14 hours: this UTC window holds the whole local day.
function dayRange(day) {
  const midnight = Date.parse(`${day}T00:00:00Z`);
  return [new Date(midnight - 14 * 3600 * 1000).toISOString(), new Date(midnight + 38 * 3600 * 1000).toISOString()];
}
function slotsPath(from, to) {
  return `/v1/stores/${encodeURIComponent(state.store.id)}/slots?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
}

function slotButton(slot, onPick) {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.start = slot.start;
  b.setAttribute("aria-pressed", String(state.slot === slot.start));
  showRoom(b, slot);
  b.addEventListener("click", () => onPick(slot.start));
  return b;
}

// A slot button's time and room ("3 left", "full"); a full slot cannot be picked.
function showRoom(button, slot) {
  const full = slot.remaining === 0;
  button.disabled = full;
  button.dataset.remaining = String(slot.remaining);
  // Built as nodes, not innerHTML: a day has up to 96 slots, and a fragment parsed for each
  // ran the HTML parser 96 times in the signed-in page's longest task.
  const room = document.createElement("small");
  room.textContent = full ? t("c.full") : t("c.left", { n: slot.remaining });
  button.replaceChildren(clockTime(slot.start), room);
  const time = localTime(slot.start);
  button.setAttribute("aria-label", full ? t("c.slot_full_label", { time }) : t("c.places_left", { time, n: slot.remaining }));
  // The picked slot filled while the form was open: say so at once, and keep it picked, so that
  // sending the order anyway gets the same answer as losing the race (the nearest free times
  // and a place in line) instead of a bare "choose a delivery time". Not while this page's own
  // order is on its way: the slot may have filled with it, and its answer says which.
  if (state.slot === slot.start && !state.editing && !state.busy) {
    const note = $("err-delivery_slot");
    if (full) {
      note.textContent = t("c.filled_live", { time: localTime(slot.start) });
      note.hidden = false;
      note.dataset.live = "1";
      say(note.textContent); // a screen reader hears it too (the status line is polite)
    } else if (note.dataset.live) {
      note.hidden = true;
      delete note.dataset.live;
    }
  }
}

// Live availability: the node pushes each change of the shown day's slots (Server-Sent
// Events), so "N left" moves without a reload and a slot that fills is disabled at once.
let live = null;
function watchSlots(from, to) {
  if (live) live.close();
  if (!window.EventSource || !state.store) return;
  const path = `/v1/stores/${encodeURIComponent(state.store.id)}/slots/stream?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
  live = new EventSource(path);
  // The stream opens with every slot of the range ("slots"), which the page has just drawn:
  // only a slot whose room differs from its button is drawn again.
  const update = (slot) => {
    const button = document.querySelector(`#slots button[data-start="${slot.start}"]`);
    if (button && button.dataset.remaining !== String(slot.remaining)) showRoom(button, slot);
  };
  live.addEventListener("slot", (event) => update(JSON.parse(event.data)));
  live.addEventListener("slots", (event) => JSON.parse(event.data).slots.forEach(update));
}

function pickSlot(start) {
  if (state.slot !== start) track("slot_picked");
  state.slot = start;
  document.querySelectorAll("#slots button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.start === start)));
  $("err-delivery_slot").hidden = true;
  delete $("err-delivery_slot").dataset.live;
}

async function loadSlots() {
  const day = $("day").value;
  if (!day || !state.store) return;
  const [from, to] = dayRange(day);
  $("slots").setAttribute("aria-busy", "true");
  try {
    const { data } = await api("GET", slotsPath(from, to), { cache: "no-cache" });
    const today = data.slots.filter((s) => s.local_start.slice(0, 10) === day);
    $("day-words").textContent = capital(dayInWords(day, { long: true }));
    if ($("day").value !== day) return; // another day was chosen meanwhile; its answer draws
    $("slots").innerHTML = "";
    $("slots").dataset.day = day;
    if (today.length === 0) $("slots").textContent = t("c.no_slots_day");
    today.forEach((s) => $("slots").append(slotButton(s, pickSlot)));
    watchSlots(from, to);
  } catch (e) {
    $("slots").textContent = e.message;
  } finally {
    $("slots").removeAttribute("aria-busy");
  }
}

// The slot-full answer names the nearest slots with room; no second request is needed.
function offerAlternatives(alternatives) {
  const open = (alternatives || []).filter((s) => s.remaining > 0);
  $("alternative-slots").innerHTML = "";
  open.forEach((s) => $("alternative-slots").append(slotButton(s, (picked) => {
    $("day").value = localDay(new Date(picked), storeZone());
    loadSlots().then(() => pickSlot(picked));
    show("alternatives", false);
    show("join-line", false);
  })));
  show("alternatives", open.length > 0);
}

// ---- waitlist ----
function renderWaitlist(entry) {
  state.waiting = entry;
  show("waitlist", Boolean(entry));
  if (!entry) return;
  const zone = state.stores.find((s) => s.id === entry.store_id)?.time_zone;
  $("waitlist-details").textContent = t("c.waitlist_details", {
    position: entry.position, slot: localTime(entry.delivery_slot.start, zone), until: localTime(entry.waits_until, zone),
    size: sizeWords(entry.size), price: money(entry.price_cents, entry.currency),
  });
}

async function joinWaitlist() {
  if (!state.fullBody) return;
  say(t("c.joining"));
  try {
    const { data } = await api("POST", "/v1/waitlist", { body: state.fullBody, headers: { "Idempotency-Key": crypto.randomUUID() } });
    clearErrors();
    renderWaitlist(data);
    show("join-line", false);
    say(t("c.in_line", { position: data.position }));
    focus("waitlist-title");
  } catch (e) {
    say("");
    if (e.status !== 401) showError(e);
  }
}

async function leaveWaitlist() {
  try {
    await api("DELETE", "/v1/waitlist");
    renderWaitlist(null);
    say(t("c.left_waitlist"));
  } catch (e) {
    if (e.status === 404) renderWaitlist(null); else if (e.status !== 401) alertMessage(e.message);
  }
}

// ---- orders ----
// The way to the door, as the kitchen moves the order along; shown with each step's time.
const STEPS = ["placed", "preparing", "baked", "out_for_delivery", "delivered"].map((s) => [s, t(`c.step_${s}`)]);
const TRACK_MS = 5000;

function renderTracker(order, zone) {
  const list = $("tracker");
  list.innerHTML = "";
  const reached = new Map(order.history.map((h) => [h.status, h]));
  const steps = reached.has("not_delivered") ? [...STEPS.slice(0, 4), ["not_delivered", t("c.step_not_delivered")]] : STEPS;
  for (const [status, words] of steps) {
    const li = document.createElement("li");
    li.dataset.status = status;
    const step = reached.get(status);
    li.className = step ? "done" : "";
    li.textContent = step ? `${words} ${clockTime(step.at, zone)}${step.reason ? ` (${step.reason})` : ""}` : words;
    if (order.status === status) li.setAttribute("aria-current", "step");
    list.append(li);
  }
}

// While an order is on its way, look again every few seconds (only while the page is shown).
function trackCurrent() {
  clearTimeout(state.trackTimer);
  const order = state.current?.order;
  if (!order || !order.active || state.editing) return;
  state.trackTimer = setTimeout(async () => {
    // Only while this order is still the one shown and not being edited.
    if (state.current?.order.id !== order.id || state.editing) return;
    if (document.hidden || !state.token) { trackCurrent(); return; }
    try {
      const { data, etag } = await api("GET", `/v1/orders/${order.id}`, { cache: "no-cache" });
      if (state.current?.order.id !== order.id || state.editing) return;
      if (data.version !== state.current.order.version) {
        if (data.active) renderCurrent(data, etag); else await loadOrders();
        if (data.status !== order.status) say(t("c.order_now", { status: statusWords(data.status) }));
      }
    } catch { /* shown on the next action; keep tracking */ }
    trackCurrent();
  }, TRACK_MS);
}

function renderCurrent(order, etag) {
  clearTimeout(state.trackTimer);
  state.current = order ? { order, etag } : null;
  show("current", Boolean(order));
  if (!order) return;
  trackCurrent();
  const kitchen = order.status !== "placed";
  show("edit-order", !kitchen);
  show("cancel-order", !kitchen);
  const m = state.menu;
  const store = state.stores.find((s) => s.id === order.store_id);
  const zone = store?.time_zone;
  const pizza = order.toppings.length
    ? t("c.pizza_with", { size: sizeWords(order.size), toppings: order.toppings.map(toppingWords).join(", ") })
    : sizeWords(order.size);
  const rows = [
    [t("c.row_status"), statusWords(order.status)],
    [t("c.row_store"), store ? store.name : order.store_id],
    [t("c.row_delivery"), `${localTime(order.delivery_slot.start, zone)}${zone ? ` (${zone})` : ""}`],
    [t("c.row_address"), order.address],
    [t("c.row_pizza"), pizza],
    [t("c.row_price"), money(order.price_cents, order.currency || m?.currency)],
    ...(order.price?.tax ? [[t("c.row_tax"), t(order.price.tax_included ? "c.tax_of_included" : "c.tax_of_added", { tax: money(order.price.tax, order.price.currency), rate: order.price.tax_rate })]] : []),
    kitchen ? [t("c.row_changes"), t("c.in_kitchen")] : [t("c.row_changes_until"), localTime(order.editable_until, zone)],
  ];
  renderTracker(order, zone);
  $("current-details").innerHTML = "";
  rows.forEach(([k, v]) => { const dt = document.createElement("dt"); dt.textContent = k; const dd = document.createElement("dd"); dd.textContent = v; $("current-details").append(dt, dd); });
}

function renderHistory(orders) {
  const past = orders.filter((o) => !o.active);
  show("history", past.length > 0);
  $("history-list").innerHTML = "";
  past.forEach((o) => {
    const li = document.createElement("li");
    const zone = state.stores.find((s) => s.id === o.store_id)?.time_zone;
    li.textContent = `${localTime(o.delivery_slot.start, zone)} — ${sizeWords(o.size)}, ${money(o.price_cents, o.currency)} — ${statusWords(o.status)}`;
    $("history-list").append(li);
  });
}

// `page`: the first page's request when it was already sent (the start sends it beside the
// menu and the stores).
async function loadOrders(page = api("GET", "/v1/orders?limit=20")) {
  // The first page carries the place in line too: no request that answers 404 when there is none.
  const { data } = await page;
  renderWaitlist(data.waitlist || null);
  const active = data.orders.find((o) => o.active);
  if (active) {
    const { data: order, etag } = await api("GET", `/v1/orders/${active.id}`);
    renderCurrent(order, etag);
  } else {
    renderCurrent(null);
  }
  renderHistory(data.orders);
  const ordering = !active || state.editing;
  show("order", ordering);
  $("submit-order").textContent = state.editing ? t("c.save_changes") : t("c.place_order");
  show("stop-editing", Boolean(state.editing));
}

// What the form still lacks, as [field, message] in the form's order.
function formProblems() {
  const problems = [];
  if (!state.store) problems.push(["postcode", t("c.need_store")]);
  const address = $("address").value.trim();
  if (!address) problems.push(["address", t("c.need_address")]);
  else if ([...address].length > 300) problems.push(["address", t("c.address_too_long")]);
  if (!chosen().size) problems.push(["size", t("c.need_size")]);
  if (!state.slot) problems.push(["delivery_slot", t("c.need_slot")]);
  return problems;
}

function markError(field, detail) {
  const target = $(`err-${field}`) || $("err-form");
  target.textContent = detail;
  target.hidden = false;
}

function formBody() {
  const { size, toppings } = chosen();
  const body = { address: $("address").value, size, toppings, delivery_slot: state.slot || "" };
  const { postcode, latitude, longitude } = state.point;
  if (postcode) body.postcode = postcode;
  if (latitude !== undefined) { body.latitude = latitude; body.longitude = longitude; }
  if (state.store) body.store_id = state.store.id;
  return body;
}

async function submitOrder(event) {
  event.preventDefault();
  if (state.busy) return; // a double click never sends a second request
  clearErrors();
  // Every missing or invalid field at once, before any request; the server stays the authority.
  const problems = formProblems();
  if (problems.length) {
    problems.forEach(([field, detail]) => markError(field, detail));
    focus(`err-${problems[0][0]}`);
    return;
  }
  state.busy = true;
  $("submit-order").disabled = true;
  say(state.editing ? t("c.saving") : t("c.placing"));
  const body = formBody();
  try {
    if (state.editing) {
      await api("PUT", `/v1/orders/${state.editing.order.id}`, { body, headers: { "If-Match": state.editing.etag } });
      state.editing = null;
      say(t("c.changed"));
      track("order_changed");
    } else {
      // One key per attempt: a retry of the same attempt can never create a second order.
      state.idempotencyKey ||= crypto.randomUUID();
      await api("POST", "/v1/orders", { body, headers: { "Idempotency-Key": state.idempotencyKey } });
      state.idempotencyKey = null;
      say(t("c.placed"));
      track("order_placed");
    }
    await loadOrders();
    focus("current-title");
  } catch (e) {
    say("");
    if (e.status === 412) {
      state.editing = null;
      await loadOrders();
      alertMessage(t("c.changed_elsewhere"));
      focus("current-title");
    } else if (e.status !== 401) {
      if (e.type.endsWith("order-exists") || e.type.endsWith("slot-full") || e.status === 422) state.idempotencyKey = null;
      if (e.type.endsWith("slot-full")) {
        // Someone took the last place first: say so plainly, offer the nearest open slots, and
        // a place in line for this one (not for a change of an existing order).
        state.slot = null;
        showError(new Problem(409, { type: e.type, field: "delivery_slot", local: true,
          detail: t("c.just_booked", { time: localTime(body.delivery_slot) }) }));
        loadSlots();
        offerAlternatives(e.body.alternatives);
        state.fullBody = state.editing ? null : body;
        show("join-line", !state.editing);
      } else {
        showError(e);
      }
    }
  } finally {
    state.busy = false;
    $("submit-order").disabled = false;
  }
}

function startEditing() {
  const { order, etag } = state.current;
  state.editing = { order, etag };
  $("address").value = order.address;
  document.querySelectorAll("input[name=size]").forEach((r) => { r.checked = r.value === order.size; });
  document.querySelectorAll("input[name=topping]").forEach((c) => { c.checked = order.toppings.includes(c.value); });
  state.point = { postcode: order.postcode || undefined, latitude: order.latitude ?? undefined, longitude: order.longitude ?? undefined };
  $("postcode").value = order.postcode || "";
  useStore(state.stores.find((s) => s.id === order.store_id) || state.store);
  $("day").value = localDay(new Date(order.delivery_slot.start), storeZone());
  state.slot = order.delivery_slot.start;
  loadSlots().then(() => pickSlot(order.delivery_slot.start));
  updatePrice();
  show("order", true);
  $("submit-order").textContent = t("c.save_changes");
  show("stop-editing", true);
  focus("order-title");
}

async function cancelOrder() {
  const { order, etag } = state.current;
  if (!window.confirm(t("c.confirm_cancel"))) return;
  say(t("c.cancelling"));
  try {
    await api("DELETE", `/v1/orders/${order.id}`, { headers: { "If-Match": etag } });
    say(t("c.cancelled"));
    track("order_cancelled");
    state.editing = null;
    await loadOrders();
    focus("order-title");
  } catch (e) {
    say("");
    if (e.status === 412) { await loadOrders(); alertMessage(t("c.changed_reloaded")); }
    else if (e.status !== 401) alertMessage(e.message);
  }
}

async function start() {
  if (!state.token) { signOut(""); return; }
  show("sign-in", false);
  $("who-name").textContent = state.name;
  show("who", true);
  say(t("common.loading"));
  try {
    // The menu, the stores and the orders requested side by side; the page is drawn once the
    // day's slots (which need the store) are in too, so nothing moves under the reader.
    const orders = api("GET", "/v1/orders?limit=20");
    orders.catch(() => {}); // awaited below; an early failure must not count as unhandled
    const menu = state.menu ? null : api("GET", "/v1/menu").then(({ data }) => { state.menu = data; renderMenu(); });
    await Promise.all([menu, loadStores()]);
    await loadOpenDays();
    await loadSlots();
    await loadOrders(orders);
    say("");
  } catch (e) {
    if (e.status !== 401) say(e.message);
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("err-login").hidden = true;
  try { await signIn($("login-name").value.trim()); } catch (e) {
    $("err-login").textContent = e.status === 404 ? t("c.no_dev_login") : e.message;
    $("err-login").hidden = false;
  }
});
$("token-form").addEventListener("submit", (event) => { event.preventDefault(); useToken($("token-input").value.trim(), ""); });
// The provider's session ends there too (the browser goes to the provider and comes back).
$("sign-out").addEventListener("click", () => { provider.signOut(); signOut(""); });
$("order-form").addEventListener("submit", submitOrder);
$("order-form").addEventListener("change", (event) => { if (event.target.name === "size" || event.target.name === "topping") updatePrice(); });
$("day").addEventListener("change", () => { state.slot = null; loadSlots(); });
$("edit-order").addEventListener("click", startEditing);
$("find-store").addEventListener("click", findStore);
$("join-waitlist").addEventListener("click", joinWaitlist);
$("leave-waitlist").addEventListener("click", leaveWaitlist);
$("use-location").addEventListener("click", useLocation);
$("postcode").addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); state.point = {}; findStore(); } });
$("postcode").addEventListener("input", () => { state.point = { postcode: state.point.postcode }; });
$("cancel-order").addEventListener("click", cancelOrder);
$("stop-editing").addEventListener("click", () => { state.editing = null; clearErrors(); loadOrders(); });
translatePage();
track("page_opened");
// A returning reader's token first; the provider's sign-in (a return from it, or a silent
// round trip after a reload) beside it, when the node offers one.
const offered = provider.offered();
const returning = offered && new URLSearchParams(location.search).has("state");
if (!offered || (state.token && !returning)) start();
if (offered) {
  provider.mount({
    signedIn: (token, name, renewed) => { if (renewed) state.token = token; else useToken(token, name, { remember: false }); },
    ended: (message) => signOut(message),
    resuming: !state.token,
  }).then((handled) => { if (!handled && (!state.token || returning)) start(); });
}
