// The dispatcher console: sign-in, layout, snapshot loading and live updates.
import { api, takeToken, saveToken, dropToken, ApiError } from './api.js';
import { follow } from './live.js';
import { MapView } from './map.js';
import { Board } from './board.js';
import { Detail } from './detail.js';
import { Timeline } from './timeline.js';
import { RegisterDesk } from './register.js';
import { renderKpis, renderMissed, renderIncidents } from './panels.js';
import { showReminder } from './reminders.js';
import { CallerCard, searchBox, looksLikePhone } from './caller.js';
import { loadOrg, ownerName } from './org.js';
import { h, fill, debounce } from './util.js';
import { t, tn, loadCatalogue, language, switchLanguage, LANGUAGES, timeOfDay, errorText } from './i18n.js';

const HISTORY_ROLES = ['auditor', 'dispatcher', 'agent', 'admin'];
const REPORT_ROLES = ['auditor', 'dispatcher', 'admin'];
const KPI_ROLES = ['agent', 'dispatcher', 'auditor', 'admin'];
// what each role may read (the server's `require` of each endpoint): a console never asks for
// what its role is refused, so a unit's or an auditor's browser shows no 403s
const MISSED_ROLES = ['agent', 'dispatcher', 'auditor', 'admin']; // GET /api/v1/missed-calls
const PROVIDER_ROLES = ['agent', 'dispatcher', 'admin']; // GET /api/v1/providers/nearest
const CALLS_ROLES = ['agent', 'dispatcher', 'admin']; // GET /api/v1/cases/{id}/calls (and a unit, its own cases')
const $ = (sel) => document.querySelector(sel);

function signInForm(message) {
  const input = h('input', { type: 'password', name: 'token', placeholder: t('signin.token'), autocomplete: 'off', required: true });
  fill(document.body, h('main.signin', {}, h('form.card', {
    onsubmit: (e) => { e.preventDefault(); saveToken(input.value.trim()); window.location.reload(); },
  }, h('div.brand', {}, h('span.logo', {}, '◎'), 'intake'), h('h1', {}, t('app.title')),
  h('p.muted', {}, t('signin.hint')),
  message ? h('p.err', {}, message) : null, input, h('button.primary', { type: 'submit' }, t('signin.submit')),
  languageSwitch())));
  input.focus();
}

/** The language switch: a small select whose choice is remembered. */
function languageSwitch() {
  const select = h('select.lang', { name: 'lang', 'aria-label': t('lang.switch'), onchange: () => switchLanguage(select.value) },
    LANGUAGES.map((lang) => h('option', { value: lang }, tn('lang', lang))));
  select.value = language();
  return select;
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
    this.status = h('span.conn', { 'data-state': 'connecting' }, tn('conn', 'connecting'));
    this.layout();
    this.refreshCases = debounce(() => this.loadCases(), 80);
    this.refreshPanels = debounce(() => this.loadPanels(), 250);
    this.refreshKpis = debounce(() => this.loadKpis(), 500);
    this.refreshCaller = debounce(() => this.callerCard.reload(), 300);
  }

  /** The search box: cases by phone, name, address or id; a number also opens its caller card. */
  search(q) {
    this.filters = { ...this.filters, q: q || undefined };
    if (!q) delete this.filters.q;
    this.loadCases();
    if (q && looksLikePhone(q)) this.callerCard.show(q);
  }

  layout() {
    const { role, subject } = this.me;
    this.kpiRow = h('section.kpis', { 'aria-label': t('kpi.title') });
    this.boardRoot = h('section.panel.board');
    this.mapRoot = h('section.panel.map');
    this.detailRoot = h('section.panel.detail', { 'aria-label': t('detail.title') });
    this.missedRoot = h('div.list');
    this.incidentsRoot = h('div.list');
    this.drawer = h('aside.drawer', { 'aria-label': t('timeline.title') });
    this.callerCard = new CallerCard(this.me, { onSelectCase: (id) => this.select(id), onChanged: () => this.loadCases() });
    this.register = new RegisterDesk({ role, onSaved: (id) => { this.loadCases(); this.select(id); }, onOpenCase: (id) => this.select(id) });
    fill(document.body,
      h('header.topbar', {},
        h('div.brand', {}, h('span.logo', {}, '◎'), 'intake', h('span.sep', {}, '/'), h('span.title', {}, t('app.title')),
          h('span.muted', {}, '95598 · 12345')),
        h('div.top-right', {}, this.register.button, searchBox((q) => this.search(q)), this.callerCard.supervisorButton(), this.status, h('span.clock'),
          h('span.who', {}, h('b', { 'data-role': role }, tn('role', role)), ' ', h('span.mono', {}, subject),
            this.me.org ? h('span.org', { 'data-org': this.me.org, title: t('fact.owner') }, ` · ${ownerName(this.me.org)}`) : null),
          REPORT_ROLES.includes(role) ? h('a.reports-link', { href: '/reports' }, t('report.link')) : null,
          languageSwitch(),
          h('button.secondary', { onclick: () => { dropToken(); window.location.href = '/'; } }, t('signin.out')))),
      KPI_ROLES.includes(role) ? this.kpiRow : null,
      h('main.grid', {}, this.boardRoot,
        h('div.center', {}, this.mapRoot,
          h('div.split', {},
            MISSED_ROLES.includes(role)
              ? h('section.panel.missed', {}, h('header.panel-head', {}, h('h2', {}, t('missed.title'))), this.missedRoot) : null,
            h('section.panel.incidents', {}, h('header.panel-head', {}, h('h2', {}, t('incidents.title'))), this.incidentsRoot))),
        this.detailRoot),
      this.drawer, this.callerCard.root, this.register.drawer);
    this.board = new Board(this.boardRoot, {
      me: this.me, onSelect: (id) => this.select(id),
      onFilter: (f) => { this.filters = this.filters.q ? { ...f, q: this.filters.q } : f; this.loadCases(); },
    });
    this.map = new MapView(this.mapRoot, { tiles: $('meta[name=intake-tiles]')?.content, onSelect: (id) => this.select(id),
      heat: REPORT_ROLES.includes(role) ? (query) => api(`/api/v1/heatmap?${query}`) : null });
    this.timeline = new Timeline(this.drawer);
    this.detail = new Detail(this.detailRoot, {
      role, subject, canReadHistory: HISTORY_ROLES.includes(role), canSuggest: PROVIDER_ROLES.includes(role),
      canHearCalls: CALLS_ROLES.includes(role),
      onTimeline: (id) => this.timeline.open(id),
      onProviders: (items, origin) => this.map.setProviders(items, origin),
      onChanged: () => { this.loadCases(); },
    });
    setInterval(() => { document.querySelector('.clock').textContent = timeOfDay(); }, 1000);
  }

  setState(state) {
    this.status.dataset.state = state;
    this.status.textContent = tn('conn', state);
    if (state === 'unauthorized') { dropToken(); signInForm(t('signin.expired')); }
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
    if (topic === 'ring') this.callerCard.ring(data.data);
    if (/case|call|missed|customer|harassment/.test(topic)) this.refreshCaller();
    if (/case|link|light|sla|alert|harassment/.test(topic)) this.refreshCases();
    if (/call|missed|incident|link|presence/.test(topic)) this.refreshPanels();
    if (topic === 'reference' && data.data && data.data.kind === 'district') this.loadDistricts();
    if (topic === 'reminder') showReminder(this.me, data.data || {}, (id) => this.select(id));
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
      this.mapRoot.append(h('div.map-error', { title: err.message }, t('map.no_districts', { error: errorText(err) })));
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
      this.board.unavailable(err instanceof ApiError && err.status === 404 ? t('board.unavailable') : errorText(err));
    }
  }

  async loadPanels() {
    await Promise.all([
      MISSED_ROLES.includes(this.me.role) ? renderMissed(this.missedRoot, this.me) : null,
      renderIncidents(this.incidentsRoot, { onSelectCase: (id) => this.select(id), me: this.me, districtNames: this.districtNames }),
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
      if (!item) { fill(this.detailRoot, h('div.err', { title: err.message }, errorText(err))); return; }
    }
    if (this.detail.item && this.detail.item.case_id === item.case_id && this.detail.item.version === item.version && !focus) return;
    const district = item.location && this.districtNames.get(item.location.district);
    await this.detail.show(item, district);
    if (focus && item.location && item.location.lat !== undefined && item.location.lat !== null) this.map.showPoint(item.location.lat, item.location.lon);
  }
}

async function main() {
  await loadCatalogue();
  document.title = t('app.page_title');
  const token = takeToken();
  if (!token) { signInForm(); return; }
  const me = await whoAmI();
  if (!me) { dropToken(); signInForm(t('signin.refused')); return; }
  if (me.role === 'channel') { dropToken(); signInForm(t('signin.channel')); return; }
  await loadOrg(); // every role sees the levels by name (a unit: the level holding its cases)
  window.intakeConsole = new Console(me);
  await window.intakeConsole.start();
}

main();
