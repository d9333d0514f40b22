// The kitchen page: the store's next delivery slots with their orders, one tap per step.
// Plain ES module, no build step; polls the node every few seconds while open.

import { t, dateTime, problemText, translatePage } from "./i18n.js";
import * as provider from "./signin.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 3000;
// How far ahead the page looks: `/kitchen/?hours=N` (1 to 168, default 12).
// Read when used: a return from the identity provider puts the page's query back first.
const hours = () => Math.min(168, Math.max(1, Number.parseInt(new URLSearchParams(location.search).get("hours"), 10) || 12));
const state = { token: sessionStorage.getItem("staff-token"), store: null, timer: null, busy: new Set() };

// The next step of each status, with the button's words; out for delivery may also fail.
const NEXT = {
  placed: ["preparing", t("k.start_preparing")],
  preparing: ["baked", t("k.mark_baked")],
  baked: ["out_for_delivery", t("k.send_out")],
  out_for_delivery: ["delivered", t("k.mark_delivered")],
};
const words = (status) => t(`status.${status}`);

function say(text) { $("status").textContent = text; }
function alertMessage(text) { const a = $("alert"); a.textContent = text || ""; a.hidden = !text; }
function zone() { return state.store?.time_zone; }
function clock(iso) { return dateTime(iso, { hour: "2-digit", minute: "2-digit", timeZone: zone() }); }
function day(iso) { return dateTime(iso, { weekday: "short", day: "numeric", month: "short", timeZone: zone() }); }

async function api(method, path, body) {
  // Signed out meanwhile: nothing is sent without a token, and the first refusal's reason stays.
  const token = state.token;
  if (!token) throw new Error(t("k.sign_in_needed"));
  const init = { method, headers: { Authorization: `Bearer ${token}` }, cache: "no-store" };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let response;
  try { response = await fetch(path, init); } catch { throw new Error(t("common.network_retrying")); }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (response.status === 401 || response.status === 403) {
    const text = data ? problemText(response.status, data) : t("k.sign_in_needed");
    if (state.token === token) signOut(text);
    throw new Error(text);
  }
  if (!response.ok) { const e = new Error(problemText(response.status, data || {})); e.status = response.status; e.body = data; throw e; }
  return data;
}

function signOut(message) {
  state.token = null;
  provider.forget();
  sessionStorage.removeItem("staff-token");
  clearInterval(state.timer);
  $("slots").innerHTML = "";
  $("who").hidden = true;
  $("empty").hidden = true;
  $("sign-in").hidden = false;
  alertMessage(message);
}

function orderCard(order) {
  const li = document.createElement("li");
  li.className = `ticket status-${order.status}`;
  li.dataset.orderId = order.id;
  const title = document.createElement("p");
  title.className = "ticket-title";
  const toppings = order.toppings.length ? ` + ${order.toppings.map((id) => t(`topping.${id}`)).join(", ")}` : "";
  title.textContent = `${t(`size.${order.size}`)}${toppings}`;
  const address = document.createElement("p");
  address.textContent = order.address;
  const status = document.createElement("p");
  status.className = "ticket-status";
  const last = order.history[order.history.length - 1];
  status.textContent = `${words(order.status)}${last ? ` · ${clock(last.at)}` : ""}${last?.reason ? ` · ${last.reason}` : ""}`;
  li.append(title, address, status);
  const actions = document.createElement("div");
  actions.className = "actions no-print";
  const next = NEXT[order.status];
  if (next) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "step";
    button.textContent = next[1];
    button.disabled = state.busy.has(order.id);
    button.addEventListener("click", () => move(order, next[0]));
    actions.append(button);
  }
  if (order.status === "out_for_delivery") {
    const failed = document.createElement("button");
    failed.type = "button";
    failed.className = "danger step";
    failed.textContent = t("k.not_delivered");
    failed.addEventListener("click", () => {
      const reason = window.prompt(t("k.why"), t("k.why_default"));
      if (reason && reason.trim()) move(order, "not_delivered", reason.trim());
    });
    actions.append(failed);
  }
  li.append(actions);
  return li;
}

function render(data) {
  state.store = data.store;
  $("kitchen-title").textContent = t("k.heading_store", { store: data.store.name });
  const root = $("slots");
  root.innerHTML = "";
  $("empty").hidden = data.slots.length > 0;
  $("empty").textContent = t("k.empty_hours", { hours: hours() });
  for (const slot of data.slots) {
    const section = document.createElement("section");
    section.className = "slot";
    section.dataset.start = slot.start;
    const head = document.createElement("div");
    head.className = "slot-head";
    const h2 = document.createElement("h2");
    const count = slot.orders.length === 1 ? t("k.pizza") : t("k.pizzas", { n: slot.orders.length });
    h2.textContent = `${day(slot.start)} ${clock(slot.start)}–${clock(slot.end)} · ${count}`;
    const print = document.createElement("button");
    print.type = "button";
    print.className = "secondary no-print";
    print.textContent = t("k.print");
    print.addEventListener("click", () => {
      section.classList.add("printing");
      document.body.classList.add("print-one");
      window.print();
      document.body.classList.remove("print-one");
      section.classList.remove("printing");
    });
    head.append(h2, print);
    const list = document.createElement("ul");
    list.className = "tickets";
    slot.orders.forEach((o) => list.append(orderCard(o)));
    section.append(head, list);
    root.append(section);
  }
}

async function refresh() {
  if (!state.token) return;
  try {
    const to = new Date(Date.now() + hours() * 3600 * 1000).toISOString();
    render(await api("GET", `/v1/kitchen/orders?to=${encodeURIComponent(to)}`));
    alertMessage("");
  } catch (e) {
    if (state.token) alertMessage(e.message);
  }
}

async function move(order, status, reason) {
  state.busy.add(order.id);
  try {
    const body = reason ? { status, reason } : { status };
    await api("POST", `/v1/kitchen/orders/${order.id}/status`, body);
    say(t("k.moved", { size: t(`size.${order.size}`), address: order.address, status: words(status) }));
  } catch (e) {
    alertMessage(e.message);
  } finally {
    state.busy.delete(order.id);
    await refresh();
  }
}

function start() {
  $("sign-in").hidden = true;
  $("who").hidden = false;
  $("who-name").textContent = t("k.staff");
  refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, POLL_MS);
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token-input").value.trim();
  sessionStorage.setItem("staff-token", state.token);
  start();
});
$("sign-out").addEventListener("click", () => { provider.signOut(); signOut(""); });
translatePage();
// The language switched (no reload): the orders drawn again in it.
document.addEventListener("pagelanguage", () => refresh());
provider.startStaffPage({ state, start, signOut });
