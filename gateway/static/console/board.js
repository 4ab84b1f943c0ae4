// The live case board: filters (status, light, category, district, channel) and the table,
// most urgent first (light, priority, deadline); red and priority-1 cases pinned on top with
// an alert that sounds when a new one comes (the user can mute it).
import { h, fill, when, callerOf, placeOf } from './util.js';
import { t, tn, due, names } from './i18n.js';
import { tabsFor, inTab, ownFirst, overdue, pinsFor } from './board_tabs.js';
import { ownerName } from './org.js';

const LIGHTS = ['red', 'yellow', 'green'];
const CLOSED = new Set(['completed', 'called_back', 'archived', 'closed']);
const MUTE_KEY = 'intake.muted';

function select(name, values) {
  return h('select', { name, 'aria-label': t(`board.filter.${name}`) },
    h('option', { value: '' }, t(`board.filter.${name}`)),
    ...values.map((v) => h('option', { value: v }, tn(name, v))));
}

/** Red or priority 1, and still open: pinned on top with an alert. */
export function pinned(item) {
  return !CLOSED.has(item.status) && (item.light === 'red' || Number(item.priority) === 1);
}

const rank = (light) => { const i = LIGHTS.indexOf(light); return i < 0 ? LIGHTS.length : i; };
const deadlineOf = (item) => (item.deadline ? new Date(item.deadline).getTime() : Infinity);

/** Most urgent first: light (red first), then priority (1 first), then the nearest deadline. */
export function urgentFirst(a, b) {
  return rank(a.light) - rank(b.light) || (Number(a.priority) || 9) - (Number(b.priority) || 9) ||
    deadlineOf(a) - deadlineOf(b) || String(a.case_id).localeCompare(String(b.case_id));
}

/** A short two-tone beep (Web Audio); silent where the browser refuses sound. */
function beep() {
  try {
    const audio = new AudioContext();
    const gain = audio.createGain();
    gain.gain.value = 0.15;
    gain.connect(audio.destination);
    [880, 660].forEach((hz, i) => {
      const tone = audio.createOscillator();
      tone.frequency.value = hz;
      tone.connect(gain);
      tone.start(audio.currentTime + i * 0.18);
      tone.stop(audio.currentTime + i * 0.18 + 0.15);
    });
    setTimeout(() => audio.close(), 800);
  } catch { /* no sound here */ }
}

/** The case board panel. */
export class Board {
  constructor(root, { onSelect, onFilter, me = { role: 'dispatcher', subject: '' } }) {
    this.root = root;
    this.onSelect = onSelect;
    this.me = me;
    this.tab = tabsFor(me.role)[0];
    this.all = [];
    this.items = [];
    this.known = new Map();
    this.alerted = new Set();
    this.selectedId = null;
    this.controls = {
      status: select('status', names('status')),
      light: select('light', LIGHTS),
      category: select('category', names('category')),
      district: select('district', []),
      channel: select('channel', names('channel')),
    };
    for (const control of Object.values(this.controls)) control.addEventListener('change', () => onFilter(this.filters()));
    this.count = h('span.count', {}, '');
    this.muteButton = h('button.mute', { type: 'button', onclick: () => this.setMuted(!this.muted) });
    this.alarm = h('div.alarm', { role: 'alert', hidden: true, dataset: { sounded: '0' } });
    this.pinnedBody = h('tbody.pinned');
    this.body = h('tbody');
    this.empty = h('div.empty', {}, t('board.empty'));
    this.setMuted(localStorage.getItem(MUTE_KEY) === '1');
    this.tabs = h('div.tabs', { role: 'tablist', 'aria-label': t('board_tabs.label') },
      tabsFor(me.role).map((tab) => h('button.tab', { type: 'button', role: 'tab', dataset: { tab },
        title: t(`board_tabs.${me.role === 'agent' && tab === 'mine' ? 'mine_agent' : tab}_hint`),
        onclick: () => this.setTab(tab) })));
    fill(root,
      h('header.panel-head', {}, h('h2', {}, t('board.title')), h('div.head-right', {}, this.count, this.muteButton)),
      this.tabs,
      h('div.filters', {}, Object.values(this.controls)),
      this.alarm,
      h('div.table-wrap', {},
        h('table.cases', {},
          h('thead', {}, h('tr', {}, ['', 'case', 'matter', 'caller', 'status', 'due']
            .map((col) => h('th', { class: `col-${col || 'light'}` }, col ? t(`board.col.${col}`) : '')))),
          this.pinnedBody, this.body),
        this.empty));
  }

  /** Show one tab's cases. */
  setTab(tab) {
    this.tab = tab;
    this.render(this.all, this.selectedId);
  }

  /** The tab buttons: which is open, and how many cases each holds. */
  markTabs() {
    for (const button of this.tabs.querySelectorAll('button.tab')) {
      const tab = button.dataset.tab;
      const n = this.all.filter((item) => inTab(tab, item, this.me)).length;
      button.textContent = t(`board_tabs.${tab}`, { n });
      button.setAttribute('aria-selected', String(tab === this.tab));
      button.classList.toggle('on', tab === this.tab);
    }
  }

  /** Mute or unmute the audible alert (remembered in this browser). */
  setMuted(muted) {
    this.muted = muted;
    localStorage.setItem(MUTE_KEY, muted ? '1' : '0');
    this.muteButton.textContent = t(muted ? 'board.sound_off' : 'board.sound_on');
    this.muteButton.title = t(muted ? 'board.unmute' : 'board.mute');
    this.muteButton.setAttribute('aria-label', this.muteButton.title);
    this.muteButton.setAttribute('aria-pressed', String(muted));
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
    fill(this.controls.district, h('option', { value: '' }, t('board.filter.district')),
      features.map((f) => h('option', { value: f.properties.adcode }, `${f.properties.name}`)));
    this.controls.district.value = current;
    this.districtNames = new Map(features.map((f) => [f.properties.adcode, f.properties.name]));
  }

  row(item) {
    const caller = callerOf(item);
    const place = placeOf(item) || {};
    const district = (this.districtNames && this.districtNames.get(place.district)) || place.district || null;
    const signature = `${item.version}|${item.status}|${item.light}`;
    const fresh = this.rendered && this.known.get(item.case_id) !== signature;
    this.known.set(item.case_id, signature);
    const classes = `tr.case-row${item.case_id === this.selectedId ? '.selected' : ''}${fresh ? '.fresh' : ''}${pinned(item) ? '.pinned' : ''}`;
    return h(classes, {
      'data-case': item.case_id, tabindex: 0, 'aria-selected': String(item.case_id === this.selectedId),
      onclick: () => this.onSelect(item.case_id), onkeydown: (e) => this.key(e, item.case_id),
    },
    h('td', {}, h(`span.light.${item.light || 'green'}`, { title: tn('light', item.light || 'green') })),
    h('td.mono', {}, item.case_id, item.priority ? h(`span.prio.p${item.priority}`, { title: tn('priority', item.priority) }, `P${item.priority}`) : null,
      h('div.sub', {}, [district, tn('channel', item.channel)].filter((v) => v && v !== '—').join(' · ') || '—')),
    h('td.matter', {}, tn('category', item.category), h('div.sub.desc', { title: item.description || '' }, item.description || h('span.muted', {}, t('detail.no_description')))),
    h('td.caller', {}, caller.name || '—', h('div.sub.mono', {}, caller.phone || '')),
    h('td', {}, h(`span.status.s-${item.status}`, {}, tn('status', item.status)),
      item.owner ? h('div.sub.owner', { title: t('fact.owner') }, ownerName(item.owner)) : null,
      item.incident_id ? h('div.sub.mono', {}, `⚡ ${item.incident_id}`) : null),
    h(`td.due${overdue(item) ? '.overdue' : ''}`, { title: when(item.deadline) }, due(item.deadline)));
  }

  /** Enter or Space opens the row's case; the arrows move between rows. */
  key(event, caseId) {
    if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); this.onSelect(caseId); return; }
    const rows = [...this.root.querySelectorAll('tr.case-row')];
    const at = rows.indexOf(event.currentTarget);
    const next = event.key === 'ArrowDown' ? rows[at + 1] : event.key === 'ArrowUp' ? rows[at - 1] : null;
    if (next) { event.preventDefault(); next.focus(); }
  }

  /** Show these cases, most urgent first; rows that are new or changed since last time flash. */
  render(items, selectedId) {
    this.all = items;
    this.items = items.filter((item) => inTab(this.tab, item, this.me)).sort(ownFirst(this.me, urgentFirst));
    this.markTabs();
    this.selectedId = selectedId;
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('tr.case-row');
    const focusedId = focused && this.root.contains(focused) ? focused.dataset.case : null;
    const top = this.items.filter((item) => pinned(item) && pinsFor(item, this.me));
    const rest = this.items.filter((item) => !top.includes(item));
    fill(this.pinnedBody, top.map((item) => this.row(item)));
    fill(this.body, rest.map((item) => this.row(item)));
    this.alert(top);
    this.rendered = true;
    this.empty.hidden = this.items.length > 0;
    this.count.textContent = t('board.count', { n: this.items.length });
    if (focusedId) {
      const again = [...this.root.querySelectorAll('tr.case-row')].find((r) => r.dataset.case === focusedId);
      if (again) again.focus();
    }
  }

  /** The visual alert for pinned cases; a sound when one is new (unless muted). */
  alert(top) {
    this.alarm.hidden = top.length === 0;
    this.alarm.textContent = t('board.alarm', { n: top.length });
    const fresh = top.filter((item) => !this.alerted.has(item.case_id));
    for (const item of top) this.alerted.add(item.case_id);
    if (!this.rendered || !fresh.length) return;
    this.alarm.classList.remove('ring');
    void this.alarm.offsetWidth;
    this.alarm.classList.add('ring');
    if (this.muted) return;
    this.alarm.dataset.sounded = String(Number(this.alarm.dataset.sounded) + 1);
    beep();
  }

  /** Tell the user why the board is empty. */
  unavailable(message) {
    fill(this.pinnedBody);
    fill(this.body);
    this.empty.hidden = false;
    this.empty.textContent = message;
    this.count.textContent = '';
  }
}
