// The operations dashboard: views, visitors and the funnel per day (GET /admin/analytics),
// orders per slot as a heatmap (the kitchen's view, admin), and the cluster's members.

import { t, number, money, dateTime, problemText, translatePage } from "./i18n.js";
import * as provider from "./signin.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10000;
const DAYS = 14;
const state = { token: sessionStorage.getItem("admin-token"), stores: [], timer: null };

function alertMessage(text) { const a = $("alert"); a.textContent = text || ""; a.hidden = !text; }
function isoDay(date) { return date.toISOString().slice(0, 10); }

async function api(path) {
  // Signed out meanwhile (a parallel request was refused): nothing is sent without a token,
  // and only the first refusal's reason is shown.
  const token = state.token;
  if (!token) throw new Error("not signed in");
  let response;
  try { response = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" }); }
  catch { throw new Error(t("common.network_retrying")); }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (response.status === 401 || response.status === 403) {
    if (state.token === token) signOut(data ? problemText(response.status, data) : t("a.sign_in_needed"));
    throw new Error("not signed in");
  }
  if (!response.ok) throw new Error(problemText(response.status, data || {}));
  return data;
}

function signOut(message) {
  state.token = null;
  provider.forget();
  sessionStorage.removeItem("admin-token");
  clearInterval(state.timer);
  $("panels").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  alertMessage(message);
}

// Views and visitors per day as an SVG line chart, drawn here: the page's one chart is two
// lines over two weeks, and the chart library it used (uPlot, 51 KB) cost the dashboard more
// main-thread time than everything else on it (Lighthouse at CI's CPU factor: a 200 ms task,
// which put the page's total blocking time over its budget).
const SVG = "http://www.w3.org/2000/svg";
const SERIES = [["views", "#c8472a"], ["visitors", "#1a5fb4"]];

function svg(name, attributes = {}, text = null) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, String(v));
  if (text !== null) el.textContent = text;
  return el;
}

function drawTraffic(report) {
  const days = report.days;
  const [width, height, left, right, top, bottom] = [640, 240, 48, 12, 12, 28];
  const most = Math.max(1, ...days.map((d) => Math.max(d.views, d.visitors)));
  const x = (i) => left + (days.length < 2 ? 0 : (i * (width - left - right)) / (days.length - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / most);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "traffic" });
  const views = days.reduce((n, d) => n + d.views, 0);
  const note = t("a.traffic_note", { from: report.from, to: report.to, views: number(views) });
  chart.setAttribute("aria-label", note);
  for (const v of [0, Math.round(most / 2), most]) {
    chart.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    chart.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, number(v)));
  }
  for (const i of [0, Math.floor((days.length - 1) / 2), days.length - 1]) {
    if (!days[i]) continue;
    const label = dateTime(`${days[i].day}T12:00:00Z`, { day: "numeric", month: "short", timeZone: "UTC" });
    chart.append(svg("text", { x: x(i), y: height - 8, "text-anchor": "middle" }, label));
  }
  for (const [key, color] of SERIES) {
    const points = days.map((d, i) => `${x(i).toFixed(1)},${y(d[key]).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points, fill: "none", stroke: color, "stroke-width": 2, "data-series": key }));
  }
  const legend = document.createElement("p");
  legend.className = "legend";
  for (const [key, color] of SERIES) {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = color;
    legend.append(swatch, ` ${t(`a.${key}`)} ${t("a.per_day")} `);
  }
  $("traffic-chart").replaceChildren(chart, legend);
  $("traffic-note").textContent = note;
}

function drawFunnel(report) {
  const steps = ["page_opened", "catalog_shown", "slot_picked", "order_placed"].map((key) => [key, t(`a.step_${key}`)]);
  const totals = steps.map(([key]) => report.days.reduce((n, d) => n + (d.funnel[key] || 0), 0));
  const top = Math.max(1, totals[0]);
  const list = $("funnel");
  list.innerHTML = "";
  steps.forEach(([key, words], i) => {
    const li = document.createElement("li");
    li.dataset.step = key;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round((totals[i] / top) * 100)}%`;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = `${number(totals[i])} ${words}`;
    li.append(bar, label);
    list.append(li);
  });
  const cancelled = report.days.reduce((n, d) => n + d.cancellations, 0);
  const full = report.days.reduce((n, d) => n + d.slot_full, 0);
  const conversion = number(totals[0] ? (totals[3] / totals[0]) * 100 : 0, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  $("funnel-note").textContent = t("a.funnel_note", { conversion, cancelled: number(cancelled), full: number(full) });
}

async function drawHeatmap() {
  const store = state.stores.find((s) => s.id === $("heat-store").value);
  const day = $("heat-day").value;
  if (!store || !day) return;
  const from = `${day}T00:00:00Z`;
  const to = new Date(Date.parse(from) + 86400000).toISOString();
  const view = await api(`/v1/kitchen/orders?store=${encodeURIComponent(store.id)}&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
  const grid = $("heatmap");
  grid.innerHTML = "";
  const counts = new Map(view.slots.map((s) => [s.start, s.orders.length]));
  const minutes = store.slot_minutes || 30;
  for (let at = Date.parse(from); at < Date.parse(to); at += minutes * 60000) {
    const start = new Date(at).toISOString().replace(".000Z", "Z");
    const n = counts.get(start) || 0;
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.dataset.start = start;
    cell.dataset.orders = String(n);
    const load = store.capacity ? Math.min(1, n / store.capacity) : 0;
    cell.style.backgroundColor = `rgba(200, 71, 42, ${n ? 0.15 + 0.85 * load : 0.04})`;
    const time = dateTime(at, { hour: "2-digit", minute: "2-digit", timeZone: store.time_zone });
    cell.title = `${time}: ${n} / ${store.capacity}`;
    cell.textContent = n ? `${time} · ${n}` : time;
    grid.append(cell);
  }
}

// The day's orders and money per currency (the heatmap's day, every store).
async function drawRevenue() {
  const day = $("heat-day").value;
  if (!day) return;
  const report = await api(`/admin/revenue?day=${encodeURIComponent(day)}`);
  const body = document.querySelector("#revenue tbody");
  body.innerHTML = "";
  if (!report.currencies.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 5;
    td.textContent = t("a.revenue_none");
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const line of report.currencies) {
    const tr = document.createElement("tr");
    tr.dataset.currency = line.currency;
    for (const value of [line.currency, number(line.orders), money(line.net, line.currency), money(line.tax, line.currency), money(line.gross, line.currency)]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    body.append(tr);
  }
}

function drawCluster(status) {
  $("cluster-summary").textContent = t("a.cluster_summary",
    { leader: status.leader ?? t("a.none"), term: status.term, committed: status.committed, node: status.node_id });
  const body = document.querySelector("#members tbody");
  body.innerHTML = "";
  for (const m of status.members) {
    const tr = document.createElement("tr");
    if (m.id === status.leader) tr.className = "leader";
    for (const value of [m.id === status.leader ? `${m.id} (leader)` : m.id, m.addr, m.role, m.matched ?? "–", m.lag ?? "–"]) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.append(td);
    }
    body.append(tr);
  }
}

// `storesReady`: the start's request for the stores (the heatmap's picker needs them).
async function refresh(storesReady = null) {
  if (!state.token) return;
  try {
    const to = new Date();
    const from = new Date(to.getTime() - (DAYS - 1) * 86400000);
    // Side by side: each answer is drawn as it comes, none waits for another.
    const report = api(`/admin/analytics?from=${isoDay(from)}&to=${isoDay(to)}`).then((r) => { drawTraffic(r); drawFunnel(r); });
    const cluster = api("/admin/cluster").then(drawCluster);
    await Promise.all([report, cluster, Promise.resolve(storesReady).then(drawHeatmap), drawRevenue()]);
    alertMessage("");
  } catch (e) {
    if (state.token) alertMessage(e.message);
  }
}

async function loadStores() {
  try {
    const stores = await (await fetch("/v1/stores")).json();
    state.stores = stores.stores || [];
  } catch { state.stores = []; }
  const select = $("heat-store");
  select.innerHTML = "";
  for (const s of state.stores) {
    const option = document.createElement("option");
    option.value = s.id;
    option.textContent = s.name;
    select.append(option);
  }
}

async function start() {
  $("sign-in").hidden = true;
  if (!$("heat-day").value) $("heat-day").value = isoDay(new Date(Date.now() + 86400000));
  await refresh(loadStores());
  if (!state.token) return; // refused meanwhile: the sign-in stays
  // Shown once drawn: panels filling in one by one pushed each other down (layout shift 0.12).
  $("who").hidden = false;
  $("panels").hidden = false;
  clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token-input").value.trim();
  sessionStorage.setItem("admin-token", state.token);
  start();
});
$("sign-out").addEventListener("click", () => { provider.signOut(); signOut(""); });
$("heat-store").addEventListener("change", () => drawHeatmap().catch((e) => alertMessage(e.message)));
$("heat-day").addEventListener("change", () => {
  drawHeatmap().catch((e) => alertMessage(e.message));
  drawRevenue().catch((e) => alertMessage(e.message));
});
translatePage();
// The language switched (no reload): the panels drawn again in it.
document.addEventListener("pagelanguage", () => { if (state.token) refresh(); });
provider.startStaffPage({ state, start, signOut });
