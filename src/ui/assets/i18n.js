// The pages' languages: one message file per language (i18n/en.js, i18n/de.js, each
// `export default` of one JSON object, key → text with {placeholders}). The language is the
// one chosen with the switch (kept in this browser), else the first of the browser's
// languages we speak, else English. Dates, times and money are formatted for it; money in the
// currency's own minor unit (Intl knows each currency's exponent: JPY 0, EUR 2, KWD 3).
import en from "./i18n/en.js";
import de from "./i18n/de.js";

const messages = { en, de };
export const LANGUAGES = [["en", "English"], ["de", "Deutsch"]];

function choose() {
  const saved = localStorage.getItem("lang");
  if (messages[saved]) return saved;
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const base = String(tag).slice(0, 2).toLowerCase();
    if (messages[base]) return base;
  }
  return "en";
}

// A live binding: the switch changes it without a reload (`setLanguage`).
export let lang = choose();

// The text for `key` with {name} placeholders filled from `vars`.
export function t(key, vars = {}) {
  const text = messages[lang][key] ?? messages.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? `{${name}}`));
}

// An API problem (application/problem+json) in the reader's words: English pages show the
// API's own `detail` (it names the field and the rule); other languages map the stable `type`
// to their message file, `p.<type>`. `local` marks a text the page wrote itself.
export function problemText(status, body) {
  if (lang === "en" || body.local) return body.detail || body.title || t("p.other", { status });
  const key = `p.${(body.type || "").split("/").pop()}`;
  const text = t(key);
  return text === key ? t("p.other", { status }) : text;
}

// Intl's formatters cost to build (about 100 µs for a date's, 45 µs for a number's, on this
// project's hosts; several times that on a phone) and a page formats one per slot: each is
// built once per locale and options and kept.
const formatters = new Map();
function formatter(Kind, options, locale = lang) {
  const key = `${Kind.name}|${locale}|${JSON.stringify(options)}`;
  let format = formatters.get(key);
  if (!format) {
    format = new Kind(locale, options);
    formatters.set(key, format);
  }
  return format;
}

// An amount in the currency's minor unit (what the API answers), for people.
export function money(minor, currency) {
  const format = formatter(Intl.NumberFormat, { style: "currency", currency: currency || "EUR" });
  const exponent = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** exponent);
}

export function number(value, options = {}) {
  return formatter(Intl.NumberFormat, options).format(value);
}

// A moment (a Date or anything Date takes) with Intl.DateTimeFormat's `options`, in the page's
// language unless `locale` is given.
export function dateTime(moment, options, locale = lang) {
  return formatter(Intl.DateTimeFormat, options, locale).format(moment instanceof Date ? moment : new Date(moment));
}

// Every element with data-i18n gets its text, data-i18n-label its aria-label, and
// data-i18n-content a meta tag's content; the language switch is filled and wired once.
export function translatePage() {
  document.documentElement.lang = lang;
  // Only what differs is written: the pages are written in English, and a write costs a
  // style and layout pass even when the text is the same.
  document.querySelectorAll("[data-i18n]").forEach((el) => {
    const text = t(el.dataset.i18n);
    if (el.textContent !== text) el.textContent = text;
  });
  document.querySelectorAll("[data-i18n-label]").forEach((el) => {
    const text = t(el.dataset.i18nLabel);
    if (el.getAttribute("aria-label") !== text) el.setAttribute("aria-label", text);
  });
  document.querySelectorAll("[data-i18n-content]").forEach((el) => {
    const text = t(el.dataset.i18nContent);
    if (el.getAttribute("content") !== text) el.setAttribute("content", text);
  });
  const pick = document.getElementById("lang");
  if (!pick) return;
  if (!pick.dataset.wired) {
    pick.innerHTML = "";
    for (const [code, name] of LANGUAGES) {
      const option = document.createElement("option");
      option.value = code;
      option.textContent = name;
      option.lang = code;
      pick.append(option);
    }
    pick.addEventListener("change", () => setLanguage(pick.value));
    pick.dataset.wired = "1";
  }
  pick.value = lang;
}

// Switch the page to `code` in place (no reload), remember it, and tell the page, which draws
// what it wrote itself again (`pagelanguage` on document).
export function setLanguage(code) {
  if (!messages[code]) return;
  lang = code;
  localStorage.setItem("lang", code);
  translatePage();
  document.dispatchEvent(new CustomEvent("pagelanguage"));
}
