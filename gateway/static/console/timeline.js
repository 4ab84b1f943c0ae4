// The auditor's case timeline: every event (who, when, channel, raw payload),
// the state at any instant (as_of, typed in Beijing time) and the hash-chain verify status.
import { api } from './api.js';
import { h, fill, when } from './util.js';
import { t, tn, names, errorText, typedInstant, beijingIso } from './i18n.js';
import { ownerName } from './org.js';

const NAMED = ['status', 'category', 'channel', 'priority']; // state fields the catalogue names
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

/** A missing field's path ("fault.scope", "caller.name") by the registration form's label. */
function fieldName(path) {
  const joined = path.replace('.', '_');
  return t(`reg.field.${names('reg.field').includes(joined) ? joined : path.split('.').pop()}`);
}

/** State values that are codes, named from the catalogue (a person reads no `unregistered_device`). */
const CODES = {
  location_source: (v) => tn('location_source', v),
  source: (v) => tn('location_source', v),
  owner: (v) => ownerName(v),
  assignee_kind: (v) => tn('kind', v, 'raw'),
  flags: (v) => v.map((f) => tn('flag', f, 'raw')).join('、'),
  missing_fields: (v) => v.map(fieldName).join('、'),
  customer_type: (v) => tn('citizen.value', v, 'raw'),
  type: (v) => tn('citizen.value', v, 'raw'),
  scope: (v) => tn('citizen.value', v, 'raw'),
};

const ROLES = ['agent', 'dispatcher', 'unit', 'auditor', 'admin', 'channel'];

/** Who recorded an event, for a person: a role and its subject (坐席 A01), or the automatic
 * rule or task by name (系统 自动派单); the code the log holds is the audit API's `who`. */
export function actorName(who) {
  if (!who) return h('span', {}, '—');
  const at = who.indexOf(':');
  const kind = at < 0 ? who : who.slice(0, at);
  const name = at < 0 ? '' : who.slice(at + 1);
  if (ROLES.includes(kind)) return h('span.actor', { 'data-who': who }, tn('role', kind), ' ', h('span.mono', {}, name));
  const known = ['policy', 'system', 'worker'].includes(kind);
  return h('span.actor', { 'data-who': who }, tn('actor', kind, 'raw'), ' ',
    known ? tn('actor', `${kind}.${name}`, 'raw') : h('span.mono', {}, name));
}

function show(value, key = null) {
  if (key && CODES[key] && value !== null && value !== undefined) return CODES[key](value);
  if (typeof value === 'boolean') return t(`value.${value}`);
  if (typeof value === 'string') return ISO.test(value) ? when(value) : value;
  if (Array.isArray(value)) return value.map((v) => show(v)).join(', ');
  if (value && typeof value === 'object') {
    return Object.entries(value).filter(([, v]) => v !== null && v !== '').map(([k, v]) => `${tn('state', k, 'raw')}: ${show(v, k)}`).join(' · ');
  }
  return String(value);
}

function stateTable(state) {
  if (!state) return h('div.muted', {}, t('timeline.no_state'));
  const rows = Object.entries(state).filter(([, v]) => v !== null && v !== '' &&
    !(Array.isArray(v) && !v.length) && !(typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length));
  return h('table.state', {}, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', {}, tn('state', k, 'raw')),
    NAMED.includes(k) ? h('td', {}, tn(k, v)) : CODES[k] || typeof v === 'boolean' ? h('td', {}, show(v, k)) : h('td.mono', {}, show(v))))));
}

function verifyBadge(verify) {
  if (!verify) return h('span.badge', {}, t('timeline.not_verified'));
  return verify.ok ?
    h('span.verify.ok', { title: t('timeline.checked', { n: verify.checked }) }, t('timeline.chain_ok', { n: verify.checked })) :
    h('span.verify.bad', { title: verify.first_bad.reason }, t('timeline.chain_bad', { position: verify.first_bad.position }));
}

/** The timeline drawer. */
export class Timeline {
  constructor(root) {
    this.root = root;
    root.hidden = true;
  }

  close() {
    this.root.hidden = true;
    fill(this.root);
    this.shown = null;
  }

  /** Open the history of a case, optionally at an instant (ISO; a zone-less one is Beijing time). */
  async open(caseId, asOf) {
    if (caseId !== this.caseId) this.shown = null;
    this.caseId = caseId;
    this.root.hidden = false;
    const query = asOf ? `?as_of=${encodeURIComponent(asOf)}` : '';
    if (!this.shown) fill(this.root, h('div.drawer-body', {}, h('div.muted', {}, t('timeline.loading'))));
    let history;
    try {
      history = await api(`/api/v1/audit/cases/${encodeURIComponent(caseId)}/history${query}`);
    } catch (err) {
      this.problem(errorText(err), err.message);
      return;
    }
    if (!this.full || !asOf) this.full = history;
    this.render(history);
  }

  /** Say what went wrong; a timeline already shown stays (a bad as-of does not wipe it). */
  problem(text, detail = '') {
    const note = h('div.err.timeline-error', { role: 'alert', title: detail }, text);
    if (this.shown) {
      this.root.querySelector('.timeline-error')?.remove();
      this.root.querySelector('.as-of-bar').after(note);
      return;
    }
    fill(this.root, h('div.drawer-body', {}, h('button.icon.close', { onclick: () => this.close() }, '×'), note));
  }

  /** Show the state at what the user typed (Beijing time unless it names a zone). */
  typed(text) {
    const at = typedInstant(text);
    if (at && Number.isNaN(new Date(at).getTime())) { this.problem(t('timeline.bad_as_of')); return; }
    this.open(this.caseId, at || null);
  }

  render(history) {
    this.shown = history;
    const steps = this.full.events.filter((e) => e.stream === `case-${this.caseId}`).map((e) => e.recorded_at);
    const slider = h('input', { type: 'range', min: 0, max: steps.length, step: 1, 'aria-label': t('timeline.as_of'),
      value: history.as_of ? steps.filter((x) => x <= history.as_of).length : steps.length,
      oninput: () => { const i = Number(slider.value); this.open(this.caseId, i >= steps.length ? null : (i === 0 ? this.before(steps[0]) : steps[i - 1])); } });
    const asOfInput = h('input', { type: 'text', class: 'as-of', placeholder: t('timeline.as_of_hint'), 'aria-label': t('timeline.as_of'),
      value: history.as_of ? beijingIso(history.as_of) : '',
      onchange: () => this.typed(asOfInput.value) });
    fill(this.root, h('div.drawer-body', {},
      h('header.drawer-head', {},
        h('div', {}, h('h2', {}, t('timeline.title'), ' ', h('span.mono', {}, history.case_id)),
          h('div.muted', {}, history.as_of ? t('timeline.state_as_of', { when: when(history.as_of) }) : t('timeline.current'), ' · ',
            t('timeline.shown', { n: history.events.length, total: history.total_events }))),
        verifyBadge(history.verify),
        h('button.icon.close', { title: t('timeline.close'), 'aria-label': t('timeline.close'), onclick: () => this.close() }, '×')),
      h('div.as-of-bar', {}, h('span', {}, t('timeline.as_of')), slider, asOfInput),
      h('div.timeline-grid', {},
        h('ol.events', {}, history.events.map((e) => h(`li.event${e.stream.startsWith('case-') ? '' : '.contact'}`, { 'data-type': e.type },
          h('div.event-head', {}, h('span.event-type', {}, tn('event', e.type, 'raw')), h('span.muted', {}, `#${e.position} · v${e.version}`)),
          h('div.event-meta', {}, h('span', {}, when(e.recorded_at)), h('span', {}, t('timeline.by'), ' ', actorName(e.who)),
            h('span', {}, t('timeline.via', { channel: tn('channel', e.channel, 'raw') })), e.stream.startsWith('case-') ? null : h('span.mono', {}, e.stream)),
          e.raw !== null && e.raw !== undefined ? h('details', { open: true }, h('summary', {}, t('timeline.raw')),
            h('pre', {}, typeof e.raw === 'string' ? e.raw : JSON.stringify(e.raw, null, 2))) : null,
          h('details', {}, h('summary', {}, t('timeline.data')), h('pre', {}, JSON.stringify(e.data, null, 2)))))),
        h('div.state-box', {}, h('h3', {}, t('timeline.state')), stateTable(history.state)))));
  }

  before(iso) {
    return new Date(new Date(iso).getTime() - 1).toISOString();
  }
}
