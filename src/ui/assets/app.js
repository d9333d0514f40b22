// pizza-orders web UI: plain ES module, no build step. Talks to the JSON API of the node
// that served it; every error is an application/problem+json with a readable `detail`.

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("token"), menu: null, slot: null, editing: null, idempotencyKey: null, busy: false };

function euros(cents, currency) {
  return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "EUR" }).format(cents / 100);
}
function localTime(iso) {
  return new Date(iso).toLocaleString(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}
function say(text) { $("status").textContent = text; }
function alertMessage(text) { const a = $("alert"); a.textContent = text || ""; a.hidden = !text; }

class Problem extends Error {
  constructor(status, body) { super(body.detail || body.title || `HTTP ${status}`); this.status = status; this.type = body.type || ""; this.field = body.field; this.body = body; }
}

async function api(method, path, { body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (state.token) init.headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Problem(0, { detail: "The network failed: check your connection and try again." });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (response.status === 401) { signOut("Your session has expired; please sign in again."); throw new Problem(401, data || {}); }
  if (!response.ok) throw new Problem(response.status, data || {});
  return { data, etag: response.headers.get("ETag") };
}

function show(id, visible) { $(id).hidden = !visible; }
function focus(id) { const el = $(id); if (el) { el.setAttribute("tabindex", "-1"); el.focus(); } }

function signOut(message) {
  state.token = null;
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

function useToken(token, name) {
  state.token = token;
  sessionStorage.setItem("token", token);
  sessionStorage.setItem("name", name || "");
  alertMessage("");
  start();
}

function clearErrors() {
  document.querySelectorAll("[id^=err-]").forEach((e) => { e.hidden = true; e.textContent = ""; });
  show("alternatives", false);
}

function showError(problem) {
  const field = problem.field || (problem.type.endsWith("slot-full") || problem.type.endsWith("slot-too-soon") ? "delivery_slot" : null);
  const target = field && $(`err-${field}`) ? $(`err-${field}`) : $("err-form");
  target.textContent = problem.message;
  target.hidden = false;
  target.setAttribute("tabindex", "-1");
  target.focus();
}

// ---- menu and price ----
function renderMenu() {
  const m = state.menu;
  $("sizes").innerHTML = "";
  m.sizes.forEach((s, i) => {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="size" value="${s.id}" ${i === 1 ? "checked" : ""}> ${s.id} (${euros(s.price_cents, m.currency)})`;
    $("sizes").append(label);
  });
  $("toppings").innerHTML = "";
  m.toppings.forEach((t) => {
    const label = document.createElement("label");
    label.innerHTML = `<input type="checkbox" name="topping" value="${t.id}"> ${t.id.replace("_", " ")} (+${euros(t.price_cents, m.currency)})`;
    $("toppings").append(label);
  });
  updatePrice();
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
  const extra = toppings.reduce((sum, t) => sum + (m.toppings.find((x) => x.id === t)?.price_cents || 0), 0);
  $("price").textContent = euros(base + extra, m.currency);
}

// ---- slots ----
function dayRange(day) {
  const from = new Date(`${day}T00:00:00`);
  const to = new Date(from.getTime() + 24 * 3600 * 1000);
  return [from.toISOString(), to.toISOString()];
}

function slotButton(slot, onPick) {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.start = slot.start;
  b.disabled = slot.remaining === 0;
  b.setAttribute("aria-pressed", String(state.slot === slot.start));
  const time = new Date(slot.start).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  b.innerHTML = `${time}<small>${slot.remaining === 0 ? "full" : `${slot.remaining} left`}</small>`;
  b.setAttribute("aria-label", `${localTime(slot.start)}, ${slot.remaining === 0 ? "full" : `${slot.remaining} places left`}`);
  b.addEventListener("click", () => onPick(slot.start));
  return b;
}

function pickSlot(start) {
  state.slot = start;
  document.querySelectorAll("#slots button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.start === start)));
  $("err-delivery_slot").hidden = true;
}

async function loadSlots() {
  const day = $("day").value;
  if (!day) return;
  const [from, to] = dayRange(day);
  $("slots").setAttribute("aria-busy", "true");
  try {
    const { data } = await api("GET", `/v1/slots?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
    $("slots").innerHTML = "";
    if (data.slots.length === 0) $("slots").textContent = "No delivery slots on this day.";
    data.slots.forEach((s) => $("slots").append(slotButton(s, pickSlot)));
  } catch (e) {
    $("slots").textContent = e.message;
  } finally {
    $("slots").removeAttribute("aria-busy");
  }
}

async function offerAlternatives(start) {
  const around = new Date(start).getTime();
  const from = new Date(Math.max(around - 6 * 3600 * 1000, Date.now())).toISOString();
  const to = new Date(around + 24 * 3600 * 1000).toISOString();
  try {
    const { data } = await api("GET", `/v1/slots?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
    const open = data.slots.filter((s) => s.remaining > 0)
      .sort((a, b) => Math.abs(new Date(a.start) - around) - Math.abs(new Date(b.start) - around)).slice(0, 4);
    $("alternative-slots").innerHTML = "";
    open.forEach((s) => $("alternative-slots").append(slotButton(s, (picked) => {
      $("day").value = picked.slice(0, 10);
      loadSlots().then(() => pickSlot(picked));
      show("alternatives", false);
    })));
    show("alternatives", open.length > 0);
  } catch { /* the slot-full message is already shown */ }
}

// ---- orders ----
function renderCurrent(order, etag) {
  state.current = order ? { order, etag } : null;
  show("current", Boolean(order));
  if (!order) return;
  const m = state.menu;
  const rows = [
    ["Status", order.status],
    ["Delivery", `${localTime(order.delivery_slot.start)}`],
    ["Address", order.address],
    ["Pizza", `${order.size}${order.toppings.length ? " with " + order.toppings.join(", ").replaceAll("_", " ") : ""}`],
    ["Price", euros(order.price_cents, order.currency || m?.currency)],
    ["Changes until", localTime(order.editable_until)],
  ];
  $("current-details").innerHTML = "";
  rows.forEach(([k, v]) => { const dt = document.createElement("dt"); dt.textContent = k; const dd = document.createElement("dd"); dd.textContent = v; $("current-details").append(dt, dd); });
}

function renderHistory(orders) {
  const past = orders.filter((o) => !o.active);
  show("history", past.length > 0);
  $("history-list").innerHTML = "";
  past.forEach((o) => {
    const li = document.createElement("li");
    li.textContent = `${localTime(o.delivery_slot.start)} — ${o.size}, ${euros(o.price_cents, o.currency)} — ${o.status}`;
    $("history-list").append(li);
  });
}

async function loadOrders() {
  const { data } = await api("GET", "/v1/orders?limit=20");
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
  $("submit-order").textContent = state.editing ? "Save changes" : "Place order";
  show("stop-editing", Boolean(state.editing));
}

function formBody() {
  const { size, toppings } = chosen();
  return { address: $("address").value, size, toppings, delivery_slot: state.slot || "" };
}

async function submitOrder(event) {
  event.preventDefault();
  if (state.busy) return; // a double click never sends a second request
  clearErrors();
  if (!state.slot) { showError(new Problem(422, { detail: "Choose a delivery time.", field: "delivery_slot", type: "" })); return; }
  state.busy = true;
  $("submit-order").disabled = true;
  say(state.editing ? "Saving your changes…" : "Placing your order…");
  const body = formBody();
  try {
    if (state.editing) {
      await api("PUT", `/v1/orders/${state.editing.order.id}`, { body, headers: { "If-Match": state.editing.etag } });
      state.editing = null;
      say("Your order was changed.");
    } else {
      // One key per attempt: a retry of the same attempt can never create a second order.
      state.idempotencyKey ||= crypto.randomUUID();
      await api("POST", "/v1/orders", { body, headers: { "Idempotency-Key": state.idempotencyKey } });
      state.idempotencyKey = null;
      say("Your order is placed.");
    }
    await loadOrders();
    focus("current-title");
  } catch (e) {
    say("");
    if (e.status === 412) {
      state.editing = null;
      await loadOrders();
      alertMessage("This order was changed elsewhere in the meantime; it has been reloaded. Check it and try again.");
      focus("current-title");
    } else if (e.status !== 401) {
      if (e.type.endsWith("order-exists") || e.type.endsWith("slot-full") || e.status === 422) state.idempotencyKey = null;
      if (e.type.endsWith("slot-full")) {
        // Someone took the last place first: say so plainly and offer the nearest open slots.
        state.slot = null;
        showError(new Problem(409, { type: e.type, field: "delivery_slot",
          detail: `${localTime(body.delivery_slot)} has just been fully booked. Please pick another time.` }));
        loadSlots();
        offerAlternatives(body.delivery_slot);
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
  $("day").value = order.delivery_slot.start.slice(0, 10);
  state.slot = order.delivery_slot.start;
  loadSlots().then(() => pickSlot(order.delivery_slot.start));
  updatePrice();
  show("order", true);
  $("submit-order").textContent = "Save changes";
  show("stop-editing", true);
  focus("order-title");
}

async function cancelOrder() {
  const { order, etag } = state.current;
  if (!window.confirm("Cancel this order?")) return;
  say("Cancelling…");
  try {
    await api("DELETE", `/v1/orders/${order.id}`, { headers: { "If-Match": etag } });
    say("Your order was cancelled.");
    state.editing = null;
    await loadOrders();
    focus("order-title");
  } catch (e) {
    say("");
    if (e.status === 412) { await loadOrders(); alertMessage("This order was changed elsewhere; it has been reloaded."); }
    else if (e.status !== 401) alertMessage(e.message);
  }
}

async function start() {
  if (!state.token) { signOut(""); return; }
  show("sign-in", false);
  $("who-name").textContent = sessionStorage.getItem("name") || "";
  show("who", true);
  say("Loading…");
  try {
    if (!state.menu) { state.menu = (await api("GET", "/v1/menu")).data; renderMenu(); }
    const tomorrow = new Date(Date.now() + 24 * 3600 * 1000).toISOString().slice(0, 10);
    $("day").min = new Date().toISOString().slice(0, 10);
    if (!$("day").value) $("day").value = tomorrow;
    await loadSlots();
    await loadOrders();
    say("");
  } catch (e) {
    if (e.status !== 401) say(e.message);
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("err-login").hidden = true;
  try { await signIn($("login-name").value.trim()); } catch (e) {
    $("err-login").textContent = e.status === 404 ? "Sign-in by name is not enabled here: paste a token below." : e.message;
    $("err-login").hidden = false;
  }
});
$("token-form").addEventListener("submit", (event) => { event.preventDefault(); useToken($("token-input").value.trim(), ""); });
$("sign-out").addEventListener("click", () => signOut(""));
$("order-form").addEventListener("submit", submitOrder);
$("order-form").addEventListener("change", (event) => { if (event.target.name === "size" || event.target.name === "topping") updatePrice(); });
$("day").addEventListener("change", () => { state.slot = null; loadSlots(); });
$("edit-order").addEventListener("click", startEditing);
$("cancel-order").addEventListener("click", cancelOrder);
$("stop-editing").addEventListener("click", () => { state.editing = null; clearErrors(); loadOrders(); });
start();
