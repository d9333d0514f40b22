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

export const lang = choose();

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

// An amount in the currency's minor unit (what the API answers), for people.
export function money(minor, currency) {
  const format = new Intl.NumberFormat(lang, { style: "currency", currency: currency || "EUR" });
  const exponent = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** exponent);
}

export function number(value, options = {}) {
  return new Intl.NumberFormat(lang, options).format(value);
}

// Every element with data-i18n gets its text, data-i18n-label its aria-label, and
// data-i18n-content a meta tag's content; then the language switch is filled and wired.
export function translatePage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-label]").forEach((el) => el.setAttribute("aria-label", t(el.dataset.i18nLabel)));
  document.querySelectorAll("[data-i18n-content]").forEach((el) => el.setAttribute("content", t(el.dataset.i18nContent)));
  const pick = document.getElementById("lang");
  if (!pick) return;
  pick.innerHTML = "";
  for (const [code, name] of LANGUAGES) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = name;
    option.lang = code;
    option.selected = code === lang;
    pick.append(option);
  }
  pick.addEventListener("change", () => { localStorage.setItem("lang", pick.value); location.reload(); });
}
