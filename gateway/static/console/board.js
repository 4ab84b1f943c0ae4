// The live case board: filters (status, light, category, district, channel) and the table.
import { h, fill, when, label, callerOf, placeOf } from './util.js';

const STATUSES = ['accepted', 'classified', 'dispatched', 'confirmed', 'rejected', 'in_progress',
  'completed', 'called_back', 'archived', 'closed'];
const CATEGORIES = ['power_fault', 'voltage_anomaly', 'consultation', 'complaint', 'report', 'suggestion',
  'praise', 'home_service', 'elderly_emergency', 'elderly_care', 'enterprise_service', 'public_affairs',
  'simple_affair', 'todo'];
const CHANNELS = ['phone', 'sms', 'web', 'wechat', 'alarm'];
const LIGHTS = ['red', 'yellow', 'green'];

function select(name, title, values, onChange, labels = {}) {
  return h('select', { name, 'aria-label': title, onchange: onChange },
    h('option', { value: '' }, title),
    ...values.map((v) => h('option', { value: v }, labels[v] || label(v))));
}

const CLOSED = new Set(['completed', 'called_back', 'archived', 'closed']);

function overdue(item) {
  return item.deadline && !CLOSED.has(item.status) && new Date(item.deadline).getTime() < Date.now();
}

/** Minutes to the deadline, compact: "42m", "3h", "-12m" when past it. */
function due(deadline) {
  if (!deadline) return '—';
  const minutes = Math.round((new Date(deadline).getTime() - Date.now()) / 60000);
  const abs = Math.abs(minutes);
  const text = abs < 120 ? `${abs}m` : abs < 2880 ? `${Math.round(abs / 60)}h` : `${Math.round(abs / 1440)}d`;
  return minutes < 0 ? `-${text}` : text;
}

/** The case board panel. */
export class Board {
  constructor(root, { onSelect, onFilter }) {
    this.root = root;
    this.onSelect = onSelect;
    this.items = [];
    this.known = new Map();
    this.selectedId = null;
    const changed = () => onFilter(this.filters());
    this.controls = {
      status: select('status', 'Status', STATUSES, changed),
      light: select('light', 'Light', LIGHTS, changed),
      category: select('category', 'Category', CATEGORIES, changed),
      district: select('district', 'District', [], changed),
      channel: select('channel', 'Channel', CHANNELS, changed),
    };
    this.count = h('span.count', {}, '');
    this.body = h('tbody');
    this.empty = h('div.empty', {}, 'No cases match.');
    fill(root,
      h('header.panel-head', {}, h('h2', {}, 'Case board ', h('small', {}, '工单')), this.count),
      h('div.filters', {}, Object.values(this.controls)),
      h('div.table-wrap', {},
        h('table.cases', {},
          h('thead', {}, h('tr', {}, ['', 'Case', 'Matter', 'Caller', 'Status', 'Due']
            .map((t) => h('th', {}, t)))),
          this.body),
        this.empty));
  }

  /** Current filter values (only the ones set). */
  filters() {
    const out = {};
    for (const [key, control] of Object.entries(this.controls)) if (control.value) out[key] = control.value;
    return out;
  }

  /** Offer the districts of the map as a filter. */
  setDistricts(features) {
    const current = this.controls.district.value;
    fill(this.controls.district, h('option', { value: '' }, 'District'),
      features.map((f) => h('option', { value: f.properties.adcode }, `${f.properties.name}`)));
    this.controls.district.value = current;
    this.districtNames = new Map(features.map((f) => [f.properties.adcode, f.properties.name]));
  }

  /** Show these cases; rows that are new or changed since last time flash. */
  render(items, selectedId) {
    this.items = items;
    this.selectedId = selectedId;
    const rows = items.map((item) => {
      const caller = callerOf(item);
      const place = placeOf(item) || {};
      const district = (this.districtNames && this.districtNames.get(place.district)) || place.district || '—';
      const signature = `${item.version}|${item.status}|${item.light}`;
      const fresh = this.rendered && this.known.get(item.case_id) !== signature;
      this.known.set(item.case_id, signature);
      return h(`tr.case-row${item.case_id === selectedId ? '.selected' : ''}${fresh ? '.fresh' : ''}`,
        { 'data-case': item.case_id, onclick: () => this.onSelect(item.case_id) },
        h('td', {}, h(`span.light.${item.light || 'green'}`, { title: item.light || 'green' })),
        h('td.mono', {}, item.case_id, item.priority ? h(`span.prio.p${item.priority}`, {}, `P${item.priority}`) : null,
          h('div.sub', {}, [district, item.channel].filter((v) => v && v !== '—').join(' · ') || '—')),
        h('td.matter', {}, label(item.category), h('div.sub.desc', { title: item.description || '' }, item.description || '')),
        h('td', {}, caller.name || '—', h('div.sub.mono', {}, caller.phone || '')),
        h('td', {}, h(`span.status.s-${item.status}`, {}, label(item.status)),
          item.incident_id ? h('div.sub', {}, `⚡ ${item.incident_id}`) : null),
        h(`td.due${overdue(item) ? '.overdue' : ''}`, { title: when(item.deadline) }, due(item.deadline)));
    });
    this.rendered = true;
    fill(this.body, rows);
    this.empty.hidden = rows.length > 0;
    this.count.textContent = `${items.length} shown`;
  }

  /** Tell the user why the board is empty. */
  unavailable(message) {
    fill(this.body);
    this.empty.hidden = false;
    this.empty.textContent = message;
    this.count.textContent = '';
  }
}
