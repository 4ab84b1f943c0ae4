// The console's and the citizen form's words: one message catalogue per language
// (i18n/zh-CN.json, i18n/en.json), Simplified Chinese by default, and times in Beijing time.

export const LANGUAGES = ['zh-CN', 'en'];
export const ZONE = 'Asia/Shanghai';
const KEY = 'intake.lang';
const BEIJING_OFFSET = '+08:00';

let current = LANGUAGES[0];
let messages = {};
/** Keys asked for that the catalogue does not have (tests read it; the page shows the key). */
export const missing = new Set();

/** The language: `?lang=` (then remembered), else the remembered one, else Chinese. */
export function chooseLanguage() {
  const url = new URL(window.location.href);
  const asked = url.searchParams.get('lang');
  if (asked && LANGUAGES.includes(asked)) {
    localStorage.setItem(KEY, asked);
    url.searchParams.delete('lang');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  const kept = localStorage.getItem(KEY);
  return LANGUAGES.includes(kept) ? kept : LANGUAGES[0];
}

/** Load the catalogue of the chosen language; sets `<html lang>`. */
export async function loadCatalogue(lang = chooseLanguage()) {
  const response = await fetch(`/console/i18n/${lang}.json`, { cache: 'no-cache' });
  messages = await response.json();
  current = lang;
  document.documentElement.lang = lang;
  window.intakeI18n = { lang, missing };
  return lang;
}

export function language() { return current; }

/** Switch language: remember it and reload the page. */
export function switchLanguage(lang) {
  localStorage.setItem(KEY, lang);
  window.location.reload();
}

/** The message for `key`, with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = messages[key];
  if (text === undefined) { missing.add(key); return key; }
  return text.replace(/\{(\w+)\}/g, (all, name) => (params[name] === undefined ? all : String(params[name])));
}

/** The name of a value of a named group (status, category, channel, light, role, error...). */
export function tn(group, value, fallbackKey = null) {
  if (value === null || value === undefined || value === '') return '—';
  const key = `${group}.${value}`;
  if (messages[key] !== undefined) return messages[key];
  if (fallbackKey) return t(fallbackKey, { value });
  missing.add(key);
  return String(value);
}

/** The values a group names, in the catalogue's order (the board's filter choices). */
export function names(group) {
  const prefix = `${group}.`;
  return Object.keys(messages).filter((key) => key.startsWith(prefix)).map((key) => key.slice(prefix.length));
}

/** Fill every `[data-i18n]` element under `root` from the catalogue (static pages). */
export function translatePage(root = document) {
  for (const node of root.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll('[data-i18n-placeholder]')) node.placeholder = t(node.dataset.i18nPlaceholder);
  const title = root.querySelector('title[data-i18n]');
  if (title) document.title = title.textContent;
}

const PARTS = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };

function beijingParts(date) {
  const out = {};
  for (const p of new Intl.DateTimeFormat('en-US', { ...PARTS, timeZone: ZONE }).formatToParts(date)) out[p.type] = p.value;
  return out;
}

/** A date-time shown in Beijing time ("12-06 18:05:09"), or a dash. */
export function when(value) {
  if (!value) return '—';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const p = beijingParts(d);
  return `${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** The clock's time of day in Beijing time. */
export function timeOfDay(date = new Date()) {
  const p = beijingParts(date);
  return `${p.hour}:${p.minute}:${p.second}`;
}

/** An instant as ISO 8601 in Beijing time: "2026-12-06T18:05:09+08:00". */
export function beijingIso(value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return '';
  const p = beijingParts(d);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}${BEIJING_OFFSET}`;
}

/** What a person typed as a time, as ISO 8601: a time without a zone is Beijing time. */
export function typedInstant(text) {
  const value = String(text || '').trim().replace(' ', 'T');
  if (!value) return '';
  if (/(Z|[+-]\d{2}:?\d{2})$/i.test(value)) return value;
  const full = /T\d{2}:\d{2}$/.test(value) ? `${value}:00` : /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00` : value;
  return full + BEIJING_OFFSET;
}

/** "3 分钟前" / "3 min ago" style relative time. */
export function ago(value) {
  if (!value) return '';
  const seconds = Math.round((Date.now() - new Date(value).getTime()) / 1000);
  if (Number.isNaN(seconds)) return '';
  const abs = Math.abs(seconds);
  const [n, unit] = abs < 60 ? [abs, 's'] : abs < 3600 ? [Math.round(abs / 60), 'min'] :
    abs < 86400 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  const span = t(`time.${unit}`, { n });
  return seconds >= 0 ? t('time.ago', { span }) : t('time.in', { span });
}

/** Compact time to a deadline: "42分" / "42m", "-3时" when past it. */
export function due(deadline) {
  if (!deadline) return '—';
  const minutes = Math.round((new Date(deadline).getTime() - Date.now()) / 60000);
  const abs = Math.abs(minutes);
  const text = abs < 120 ? t('due.m', { n: abs }) : abs < 2880 ? t('due.h', { n: Math.round(abs / 60) }) : t('due.d', { n: Math.round(abs / 1440) });
  return minutes < 0 ? `-${text}` : text;
}

/** The API error as a message of the catalogue (its code), never the server's English. */
export function errorText(err, params = {}) {
  const code = (err && err.code) || 'network';
  return messages[`error.${code}`] === undefined ? t('error.other', { value: code }) : t(`error.${code}`, params);
}
