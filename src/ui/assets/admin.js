// The operations dashboard: views, visitors and the funnel per day (GET /admin/analytics),
// orders per slot as a heatmap (the kitchen's view, admin), and the cluster's members.
// Charts by uPlot, vendored (src/ui/assets/vendor); no CDN, the same strict CSP.

import { t, number, money, dateTime, problemText, translatePage } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10000;
const DAYS = 14;
const state = { token: sessionStorage.getItem("admin-token"), chart: null, stores: [], timer: null };

function alertMessage(text) { const a = $("alert"); a.textContent = text || ""; a.hidden = !text; }
function isoDay(date) { return date.toISOString().slice(0, 10); }

async function api(path) {
  let response;
  try { response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store" }); }
  catch { throw new Error(t("common.network_retrying")); }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (response.status === 401 || response.status === 403) {
    signOut(data ? problemText(response.status, data) : t("a.sign_in_needed"));
    throw new Error("not signed in");
  }
  if (!response.ok) throw new Error(problemText(response.status, data || {}));
  return data;
}

function signOut(message) {
  state.token = null;
  sessionStorage.removeItem("admin-token");
  clearInterval(state.timer);
  $("panels").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  alertMessage(message);
}

// The chart's width: its box's, once shown (640 while the panels are hidden).
function chartWidth() {
  return Math.max(320, $("traffic-chart").clientWidth || 640);
}

function drawTraffic(report) {
  const xs = report.days.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000);
  const data = [xs, report.days.map((d) => d.views), report.days.map((d) => d.visitors)];
  const width = chartWidth();
  if (state.chart) { state.chart.setData(data); state.chart.setSize({ width, height: 240 }); return; }
  state.chart = new uPlot({
    width, height: 240,
    scales: { x: { time: true } },
    series: [{}, { label: t("a.views"), stroke: "#c8472a", width: 2 }, { label: t("a.visitors"), stroke: "#1a5fb4", width: 2 }],
    axes: [{}, { label: t("a.per_day") }],
  }, data, $("traffic-chart"));
  const total = (key) => report.days.reduce((n, d) => n + d[key], 0);
  $("traffic-note").textContent = t("a.traffic_note", { from: report.from, to: report.to, views: number(total("views")) });
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
  // Shown once drawn: panels filling in one by one pushed each other down (layout shift 0.12).
  $("who").hidden = false;
  $("panels").hidden = false;
  if (state.chart) state.chart.setSize({ width: chartWidth(), height: 240 });
  clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token-input").value.trim();
  sessionStorage.setItem("admin-token", state.token);
  start();
});
$("sign-out").addEventListener("click", () => signOut(""));
$("heat-store").addEventListener("change", () => drawHeatmap().catch((e) => alertMessage(e.message)));
$("heat-day").addEventListener("change", () => {
  drawHeatmap().catch((e) => alertMessage(e.message));
  drawRevenue().catch((e) => alertMessage(e.message));
});
translatePage();
if (state.token) start(); else $("sign-in").hidden = false;
