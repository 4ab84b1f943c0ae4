// Small DOM and formatting helpers shared by the console modules.

import { t } from './i18n.js';

/** What the server sends for an erased person's text (PIPL erasure, `eventstore/shredding.py`). */
export const ERASED = '[erased]';

/** A text child as shown: an erased value in the reader's language. */
function shown(child) {
  return child === ERASED ? t('value.erased') : String(child);
}

/** Create an element: h('div.card', {title: 'x', onclick: fn}, child, 'text', ...). */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const node = document.createElement(tag || 'div');
  if (classes.length) node.className = classes.join(' ');
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(shown(child)));
  }
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Create an SVG element with attributes. */
export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : shown(child));
  }
  return node;
}

/** Replace the children of a node. */
export function fill(node, ...children) {
  const kept = children.flat().filter((c) => c !== null && c !== undefined && c !== false);
  node.replaceChildren(...kept.map((c) => (c instanceof Node ? c : shown(c))));
  return node;
}

export { when, ago } from './i18n.js';

/** Call fn at most once per `ms`, after the last call (trailing debounce). */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Caller name and phone of a case, whatever shape the API gives (an erased one as the reader says it). */
export function callerOf(item) {
  const caller = item.caller || {};
  if (typeof caller === 'string') return { name: '', phone: caller ? shown(caller) : '' };
  const name = caller.name || item.caller_name || '';
  const phone = caller.phone || item.caller_phone || '';
  return { name: name ? shown(name) : '', phone: phone ? shown(phone) : '' };
}

/** Location of a case as {lat, lon, district}, or null. */
export function placeOf(item) {
  const loc = item.location || {};
  const lat = loc.lat ?? item.lat;
  const lon = loc.lon ?? item.lon;
  if (lat === null || lat === undefined || lon === null || lon === undefined) return null;
  return { lat: Number(lat), lon: Number(lon), district: loc.district ?? item.district ?? null };
}
