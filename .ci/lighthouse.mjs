// Lighthouse (the version .ci/lighthouse installs) on the customer page signed out and signed
// in, the kitchen page and the dashboard, in Debian's Chromium, with the budgets of issue 32:
// performance, accessibility and best practices 100, SEO at least 90.
// usage: node .ci/lighthouse.mjs BASE_URL CUSTOMER_TOKEN STAFF_TOKEN ADMIN_TOKEN REPORT_DIR
import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";
import lighthouse from "lighthouse";

const [base, customer, staff, admin, reports] = process.argv.slice(2);
const budgets = { performance: 100, accessibility: 100, "best-practices": 100, seo: 90 };
// A run whose host measured under this share of the calibration index, or over its inverse,
// is done again (below) with the multiplier set anew for the host as it is now, at most
// RETRIES times a page.
const SLOW_HOST = 0.75;
const RETRIES = 8;
// Lighthouse's mobile preset slows the CPU 4x, a factor calibrated on a fast desktop (benchmark
// index about 1 500). On this project's 2 shared cores the host's own index ranged from 900 to
// 1 650 between runs, so the same page read 87 to 100. Lighthouse's documented remedy
// (docs/throttling.md, "Calibrating multipliers") is to set the multiplier from the host's
// benchmark index with its authors' calculator, copied below: the page is then judged on the
// same emulated phone whatever the host. The index is measured here first (the median of five
// runs: within one CI run three samples read 1 225, 2 165 and 2 435, and a multiplier set from
// one high sample then slows the pages more than the phone it stands for) and printed with the
// multiplier.
// The calculator's data end at index 2 000 (6x: an emulated phone of index 333); past it its
// line slows the pages more than in proportion (index 2 881 gave 9.78x, a phone of 295, with a
// confidence range of 6.4x to 13.2x) and a host of that speed failed pages that pass on slower
// hosts. Past 2 000 the multiplier keeps the phone at 2 000's: index / 333.
function cpuMultiplier(benchmarkIndex) {
  if (benchmarkIndex > 2000) return benchmarkIndex / (2000 / 6);
  if (benchmarkIndex >= 1300) return 3 + (benchmarkIndex - 1300) / 233;
  if (benchmarkIndex >= 800) return 2 + (benchmarkIndex - 800) / 500;
  return Math.max(1, 1 + (benchmarkIndex - 150) / 650);
}
// Lighthouse 12's mobile network (slow 4G), as its default config has it; only the CPU factor
// changes.
const mobileSlow4G = { rttMs: 150, throughputKbps: 1638.4, requestLatencyMs: 562.5,
  downloadThroughputKbps: 1474.56, uploadThroughputKbps: 675 };
const allPages = [
  { name: "customer, signed out", url: `${base}/`, storage: {} },
  { name: "customer, signed in", url: `${base}/`, storage: { token: customer, name: "Lighthouse" } },
  { name: "kitchen", url: `${base}/kitchen/`, storage: { "staff-token": staff } },
  { name: "dashboard", url: `${base}/admin/`, storage: { "admin-token": admin } },
];
// LIGHTHOUSE_PAGES=dashboard,kitchen: only those (by the first word of their names), to look at
// one page; CI runs all four.
const only = (process.env.LIGHTHOUSE_PAGES || "").split(",").filter(Boolean);
const pages = only.length ? allPages.filter((p) => only.includes(p.name.split(/[ ,]/)[0])) : allPages;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROME_PATH || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const probe = await browser.newPage();
  const indexes = [];
  for (let i = 0; i < 5; i++) {
    const run = await lighthouse(pages[0].url, { logLevel: "error", onlyCategories: ["performance"] }, undefined, probe);
    indexes.push(run.lhr.environment.benchmarkIndex);
  }
  await probe.close();
  // The calibration: the index the multiplier is set from. It moves when the host does (below).
  let benchmarkIndex = [...indexes].sort((a, b) => a - b)[2];
  let throttling = { ...mobileSlow4G, cpuSlowdownMultiplier: cpuMultiplier(benchmarkIndex) };
  console.log(`host benchmark index ${indexes.map(Math.round).join(" / ")} (median ${Math.round(benchmarkIndex)}): CPU slowdown ${throttling.cpuSlowdownMultiplier.toFixed(2)}x`);
  // The host's last three indexes (each run measures one as it starts): when a run is set
  // aside, the multiplier is set again from their median, so the runs after it emulate the
  // calibrated phone on the host as it is now. Without this a host that slowed for longer than
  // the retries (CI of 3c6e7db: calibrated at 2 273, then 13 runs in a row at 1 129 to 1 595)
  // had its last runs counted on a phone twice as slow, and the signed-in page read 98.
  const recent = [...indexes];
  const recalibrate = (index) => {
    recent.push(index);
    const last = recent.slice(-3).sort((a, b) => a - b);
    benchmarkIndex = last[Math.floor(last.length / 2)];
    throttling = { ...mobileSlow4G, cpuSlowdownMultiplier: cpuMultiplier(benchmarkIndex) };
    return `recalibrated at ${Math.round(benchmarkIndex)}: ${throttling.cpuSlowdownMultiplier.toFixed(2)}x`;
  };
  for (const p of pages) {
    const page = await browser.newPage();
    // Signed in the way the pages keep a session: the token in the tab's sessionStorage, which
    // Lighthouse keeps when told not to reset storage.
    await page.goto(`${base}/healthz`);
    await page.evaluate((items) => { for (const [k, v] of Object.entries(items)) sessionStorage.setItem(k, v); }, p.storage);
    // Five runs, the median per category (Lighthouse's advice for a noisy machine: one run
    // during which a neighbour took the shared cores reads 96 where the others read 100).
    // Each run measures the host's index again as it starts. A run on a host well below the
    // calibration (under SLOW_HOST of it) emulated a slower phone than the one the multiplier
    // stands for (CI of d63eb37: calibrated at 2 214, the dashboard's runs at 1 340 and 1 532
    // read 98 and 99 and failed the budget, while every run near the calibration read 100),
    // and one well above it a faster phone: either is set aside and done again with the
    // multiplier set from the host's recent indexes, at most RETRIES times a page (then the
    // run counts as it is). The runs set aside are printed with their scores.
    const runs = [];
    const setAside = [];
    while (runs.length < 5) {
      const run = await lighthouse(p.url, {
        output: "html", logLevel: "error", disableStorageReset: true, throttling,
        onlyCategories: Object.keys(budgets),
      }, undefined, page);
      const index = run.lhr.environment.benchmarkIndex;
      const offCalibration = index < SLOW_HOST * benchmarkIndex || index > benchmarkIndex / SLOW_HOST;
      if (offCalibration && setAside.length < RETRIES) {
        const score = Math.round(run.lhr.categories.performance.score * 100);
        const multiplier = throttling.cpuSlowdownMultiplier.toFixed(2);
        setAside.push(`${score} (index ${Math.round(index)} at ${multiplier}x, ${recalibrate(index)})`);
        continue;
      }
      recent.push(index);
      runs.push(run);
    }
    if (setAside.length) {
      console.log(`  set aside, host off its calibration by more than ${SLOW_HOST}x: ${setAside.join("; ")}`);
    }
    const median = (c) => runs.map((r) => r.lhr.categories[c].score).sort((a, b) => a - b)[2];
    const result = runs.find((r) => r.lhr.categories.performance.score === median("performance"));
    const file = path.join(reports, `${p.name.replace(/[^a-z]+/g, "-")}.html`);
    fs.writeFileSync(file, result.report);
    const scores = Object.fromEntries(Object.keys(budgets).map((c) => [c, Math.round(median(c) * 100)]));
    const short = Object.entries(budgets).filter(([c, min]) => scores[c] < min);
    console.log(`${p.name}: ${Object.entries(scores).map(([c, s]) => `${c} ${s}`).join(", ")}${short.length ? "  BELOW BUDGET" : ""}`);
    // Every run's performance score, total blocking time and longest main-thread task, so a
    // median that falls short shows whether one run or all of them did.
    console.log(`  runs: ${runs.map((r) => {
      const tasks = r.lhr.audits["long-tasks"]?.details?.items || [];
      const longest = Math.max(0, ...tasks.map((t) => t.duration || 0));
      return `${Math.round(r.lhr.categories.performance.score * 100)} (TBT ${Math.round(r.lhr.audits["total-blocking-time"].numericValue)} ms, longest task ${Math.round(longest)} ms, index ${Math.round(r.lhr.environment.benchmarkIndex)} at ${r.lhr.configSettings.throttling.cpuSlowdownMultiplier.toFixed(2)}x)`;
    }).join("; ")}`);
    for (const [category] of short) {
      for (const ref of result.lhr.categories[category].auditRefs) {
        const audit = result.lhr.audits[ref.id];
        if (ref.weight > 0 && audit.score !== null && audit.score < 1) {
          console.log(`  ${category}: ${audit.id}: ${audit.title}${audit.displayValue ? ` (${audit.displayValue})` : ""}`);
          for (const item of (audit.details?.items || []).slice(0, 5)) {
            console.log(`    ${JSON.stringify(item).slice(0, 300)}`);
          }
        }
      }
    }
    if (short.length) {
      for (const t of (result.lhr.audits["long-tasks"]?.details?.items || []).slice(0, 5)) {
        console.log(`  long task ${Math.round(t.duration)} ms at ${Math.round(t.startTime)} ms: ${t.url}`);
      }
      const lcp = result.lhr.audits["largest-contentful-paint-element"]?.details?.items?.[0]?.items?.[0]?.node;
      const shifts = result.lhr.audits["layout-shifts"]?.details?.items || [];
      if (lcp) console.log(`  largest contentful paint: ${lcp.selector} ${lcp.snippet?.slice(0, 120)}`);
      for (const s of shifts.slice(0, 3)) console.log(`  layout shift ${s.score?.toFixed(3)}: ${s.node?.selector} ${s.node?.snippet?.slice(0, 100)}`);
    }
    failed ||= short.length > 0;
    await page.close();
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
