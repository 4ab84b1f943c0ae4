// The auditor's case timeline: every event (who, when, channel, raw payload),
// the state at any instant (as_of) and the hash-chain verify status.
import { api } from './api.js';
import { h, fill, when, label } from './util.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

function show(value) {
  if (typeof value === 'string') return ISO.test(value) ? when(value) : value;
  if (Array.isArray(value)) return value.map(show).join(', ');
  if (value && typeof value === 'object') {
    return Object.entries(value).filter(([, v]) => v !== null && v !== '').map(([k, v]) => `${label(k)}: ${show(v)}`).join(' · ');
  }
  return String(value);
}

function stateTable(state) {
  if (!state) return h('div.muted', {}, 'The case did not exist yet at this instant.');
  const rows = Object.entries(state).filter(([, v]) => v !== null && v !== '' &&
    !(Array.isArray(v) && !v.length) && !(typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length));
  return h('table.state', {}, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', {}, label(k)),
    h('td', {}, show(v))))));
}

function verifyBadge(verify) {
  if (!verify) return h('span.badge', {}, 'not verified');
  return verify.ok ?
    h('span.verify.ok', { title: `${verify.checked} events checked` }, `✔ chain intact · ${verify.checked} events`) :
    h('span.verify.bad', {}, `✖ ${verify.first_bad.reason} at position ${verify.first_bad.position}`);
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
  }

  /** Open the history of a case, optionally at an instant. */
  async open(caseId, asOf) {
    this.caseId = caseId;
    this.root.hidden = false;
    const query = asOf ? `?as_of=${encodeURIComponent(asOf)}` : '';
    fill(this.root, h('div.drawer-body', {}, h('div.muted', {}, 'Loading history…')));
    let history;
    try {
      history = await api(`/api/v1/audit/cases/${encodeURIComponent(caseId)}/history${query}`);
    } catch (err) {
      fill(this.root, h('div.drawer-body', {}, h('button.icon.close', { onclick: () => this.close() }, '×'),
        h('div.err', {}, err.message)));
      return;
    }
    if (!this.full || !asOf) this.full = history;
    this.render(history);
  }

  render(history) {
    const steps = this.full.events.filter((e) => e.stream === `case-${this.caseId}`).map((e) => e.recorded_at);
    const slider = h('input', { type: 'range', min: 0, max: steps.length, step: 1, 'aria-label': 'As of',
      value: history.as_of ? steps.filter((t) => t <= history.as_of).length : steps.length,
      oninput: () => { const i = Number(slider.value); this.open(this.caseId, i >= steps.length ? null : (i === 0 ? this.before(steps[0]) : steps[i - 1])); } });
    const asOfInput = h('input', { type: 'text', class: 'as-of', placeholder: 'as of (ISO 8601)', value: history.as_of || '',
      onchange: () => this.open(this.caseId, asOfInput.value.trim() || null) });
    fill(this.root, h('div.drawer-body', {},
      h('header.drawer-head', {},
        h('div', {}, h('h2', {}, 'Timeline ', h('span.mono', {}, history.case_id)),
          h('div.muted', {}, history.as_of ? `state as of ${when(history.as_of)}` : 'current state', ' · ',
            `${history.events.length} events shown of ${history.total_events}`)),
        verifyBadge(history.verify),
        h('button.icon.close', { title: 'Close', onclick: () => this.close() }, '×')),
      h('div.as-of-bar', {}, h('span', {}, 'As of'), slider, asOfInput),
      h('div.timeline-grid', {},
        h('ol.events', {}, history.events.map((e) => h(`li.event${e.stream.startsWith('case-') ? '' : '.contact'}`, { 'data-type': e.type },
          h('div.event-head', {}, h('span.event-type', {}, e.type), h('span.muted', {}, `#${e.position} · v${e.version}`)),
          h('div.event-meta', {}, h('span', {}, when(e.recorded_at)), h('span', {}, `by ${e.who || '—'}`),
            h('span', {}, `via ${e.channel || '—'}`), e.stream.startsWith('case-') ? null : h('span', {}, e.stream)),
          e.raw !== null && e.raw !== undefined ? h('details', { open: true }, h('summary', {}, 'raw inbound payload'),
            h('pre', {}, typeof e.raw === 'string' ? e.raw : JSON.stringify(e.raw, null, 2))) : null,
          h('details', {}, h('summary', {}, 'data'), h('pre', {}, JSON.stringify(e.data, null, 2)))))),
        h('div.state-box', {}, h('h3', {}, 'State'), stateTable(history.state)))));
  }

  before(iso) {
    return new Date(new Date(iso).getTime() - 1).toISOString();
  }
}
