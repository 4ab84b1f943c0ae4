// The dispatcher console: sign-in, layout, snapshot loading and live updates.
import { api, takeToken, saveToken, dropToken, ApiError } from './api.js';
import { follow } from './live.js';
import { MapView } from './map.js';
import { Board } from './board.js';
import { Detail } from './detail.js';
import { Timeline } from './timeline.js';
import { renderKpis, renderMissed, renderIncidents } from './panels.js';
import { h, fill, debounce } from './util.js';

const HISTORY_ROLES = ['auditor', 'dispatcher', 'agent', 'admin'];
const KPI_ROLES = ['agent', 'dispatcher', 'auditor', 'admin'];
const $ = (sel) => document.querySelector(sel);

function signInForm(message) {
  const input = h('input', { type: 'password', name: 'token', placeholder: 'Access token', autocomplete: 'off', required: true });
  fill(document.body, h('main.signin', {}, h('form.card', {
    onsubmit: (e) => { e.preventDefault(); saveToken(input.value.trim()); window.location.reload(); },
  }, h('div.brand', {}, h('span.logo', {}, '◎'), 'intake'), h('h1', {}, 'Dispatcher console'),
  h('p.muted', {}, 'Sign in with the access token your administrator gave you.'),
  message ? h('p.err', {}, message) : null, input, h('button.primary', { type: 'submit' }, 'Sign in'))));
  input.focus();
}

async function whoAmI() {
  try {
    return await api('/api/v1/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

class Console {
  constructor(me) {
    this.me = me;
    this.cases = [];
    this.filters = {};
    this.selectedId = null;
    this.districtNames = new Map();
    this.status = h('span.conn', { 'data-state': 'connecting' }, 'connecting');
    this.layout();
    this.refreshCases = debounce(() => this.loadCases(), 80);
    this.refreshPanels = debounce(() => this.loadPanels(), 250);
    this.refreshKpis = debounce(() => this.loadKpis(), 500);
  }

  layout() {
    const { role, subject } = this.me;
    this.kpiRow = h('section.kpis', { 'aria-label': 'Measures' });
    this.boardRoot = h('section.panel.board');
    this.mapRoot = h('section.panel.map');
    this.detailRoot = h('section.panel.detail', { 'aria-label': 'Case detail' });
    this.missedRoot = h('div.list');
    this.incidentsRoot = h('div.list');
    this.drawer = h('aside.drawer', { 'aria-label': 'Timeline' });
    fill(document.body,
      h('header.topbar', {},
        h('div.brand', {}, h('span.logo', {}, '◎'), 'intake', h('span.sep', {}, '/'), h('span.title', {}, 'Dispatch console'),
          h('span.muted', {}, '95598 · 12345')),
        h('div.top-right', {}, this.status, h('span.clock'),
          h('span.who', {}, h('b', {}, role), ` ${subject}`),
          h('button.secondary', { onclick: () => { dropToken(); window.location.href = '/'; } }, 'Sign out'))),
      KPI_ROLES.includes(role) ? this.kpiRow : null,
      h('main.grid', {}, this.boardRoot,
        h('div.center', {}, this.mapRoot,
          h('div.split', {},
            h('section.panel.missed', {}, h('header.panel-head', {}, h('h2', {}, 'Missed calls ', h('small', {}, '未接来电'))), this.missedRoot),
            h('section.panel.incidents', {}, h('header.panel-head', {}, h('h2', {}, 'Incidents ', h('small', {}, '风暴视图'))), this.incidentsRoot))),
        this.detailRoot),
      this.drawer);
    this.board = new Board(this.boardRoot, {
      onSelect: (id) => this.select(id), onFilter: (f) => { this.filters = f; this.loadCases(); },
    });
    this.map = new MapView(this.mapRoot, { tiles: $('meta[name=intake-tiles]')?.content, onSelect: (id) => this.select(id) });
    this.timeline = new Timeline(this.drawer);
    this.detail = new Detail(this.detailRoot, {
      role, canReadHistory: HISTORY_ROLES.includes(role),
      onTimeline: (id) => this.timeline.open(id),
      onProviders: (items, origin) => this.map.setProviders(items, origin),
      onChanged: () => { this.loadCases(); },
    });
    setInterval(() => { document.querySelector('.clock').textContent = new Date().toLocaleTimeString('zh-CN', { hour12: false }); }, 1000);
  }

  setState(state) {
    this.status.dataset.state = state;
    this.status.textContent = { live: 'live', polling: 'live (polling)', reconnecting: 'reconnecting…', unauthorized: 'signed out' }[state] || state;
    if (state === 'unauthorized') { dropToken(); signInForm('Your token is no longer valid.'); }
  }

  async start() {
    await this.loadDistricts();
    this.stream = follow({
      token: sessionStorage.getItem('intake.token'),
      onState: (state) => this.setState(state),
      onConnect: (resumed) => { if (!resumed) this.loadAll(); },
      onEvent: (event) => this.onEvent(event),
    });
    const hash = decodeURIComponent(window.location.hash.slice(1));
    if (hash.startsWith('case/')) this.select(hash.slice(5));
    if (hash.startsWith('timeline/')) this.timeline.open(hash.slice(9));
  }

  onEvent({ type, data }) {
    if (type === 'mode') { this.setState(data.mode); return; }
    if (type === 'resync') { this.loadAll(); return; }
    if (type !== 'change') return;
    const topic = String(data.topic || '');
    if (/case|link|light|sla|alert/.test(topic)) this.refreshCases();
    if (/call|missed|incident|link|presence/.test(topic)) this.refreshPanels();
    if (topic === 'reference' && data.data && data.data.kind === 'district') this.loadDistricts();
    this.refreshKpis();
  }

  loadAll() {
    this.loadCases();
    this.loadPanels();
    this.loadKpis();
  }

  async loadDistricts() {
    try {
      const collection = await api('/api/v1/districts');
      this.districtNames = new Map(collection.features.map((f) => [f.properties.adcode, f.properties.name]));
      this.map.setDistricts(collection);
      this.board.setDistricts(collection.features);
    } catch (err) {
      this.mapRoot.append(h('div.map-error', {}, `Districts unavailable: ${err.message}`));
    }
  }

  async loadCases() {
    const query = new URLSearchParams({ ...this.filters, limit: '500' });
    try {
      const body = await api(`/api/v1/cases?${query}`);
      this.cases = body.items || [];
      this.board.render(this.cases, this.selectedId);
      this.map.setCases(this.cases, this.selectedId);
      if (this.selectedId) this.reloadDetail();
    } catch (err) {
      this.board.unavailable(err instanceof ApiError && err.status === 404 ? 'The case board is not available yet.' : err.message);
    }
  }

  async loadPanels() {
    await Promise.all([
      renderMissed(this.missedRoot, { ...this.me, onReassign: (task) => this.reassign(task) }),
      renderIncidents(this.incidentsRoot, { onSelectCase: (id) => this.select(id) }),
    ]);
  }

  async loadKpis() {
    if (KPI_ROLES.includes(this.me.role)) await renderKpis(this.kpiRow);
  }

  async select(caseId) {
    this.selectedId = caseId;
    history.replaceState(null, '', `#case/${encodeURIComponent(caseId)}`);
    this.board.render(this.cases, caseId);
    this.map.setCases(this.cases, caseId);
    await this.reloadDetail(true);
  }

  async reloadDetail(focus = false) {
    let item = this.cases.find((c) => c.case_id === this.selectedId);
    try {
      item = await api(`/api/v1/cases/${encodeURIComponent(this.selectedId)}`);
    } catch (err) {
      if (!item) { fill(this.detailRoot, h('div.err', {}, err.message)); return; }
    }
    if (this.detail.item && this.detail.item.case_id === item.case_id && this.detail.item.version === item.version && !focus) return;
    const district = item.location && this.districtNames.get(item.location.district);
    await this.detail.show(item, district);
    if (focus && item.location && item.location.lat !== undefined && item.location.lat !== null) this.map.showPoint(item.location.lat, item.location.lon);
  }

  async reassign(task) {
    const agent = window.prompt(`Reassign call-back ${task.task_id} to agent id:`, '');
    if (!agent) return;
    try {
      await api(`/api/v1/missed-calls/${encodeURIComponent(task.task_id)}/reassign`, {
        method: 'POST', body: { agent_id: agent, expected_version: task.version } });
      this.loadPanels();
    } catch (err) {
      window.alert(err.message);
    }
  }
}

async function main() {
  const token = takeToken();
  if (!token) { signInForm(); return; }
  const me = await whoAmI();
  if (!me) { dropToken(); signInForm('That token was not accepted.'); return; }
  if (me.role === 'channel') { dropToken(); signInForm('A channel token cannot use the console.'); return; }
  window.intakeConsole = new Console(me);
  await window.intakeConsole.start();
}

main();
