// The agent's registration form (受理) for phone cases: opened by the "new case" button or by the
// DOM event `intake:register` ({phone, call_id, name?} on `document`, sent by the caller card when a
// call rings). It asks the API for its rules (GET /api/v1/cases/form: the fields each category asks
// for), shows the API's own field errors next to the fields, locates the address with the gazetteer
// and on the map, lists the duplicate candidates and knowledge articles before saving, and carries
// the call id into the case so that the call's recording is the case's. On saving it sends
// `intake:registered` ({case_id, call_id}) on `document`.
import { api, ApiError } from './api.js';
import { MapView } from './map.js';
import { h, fill, debounce, when } from './util.js';
import { t, tn, errorText, typedInstant } from './i18n.js';

export const REGISTER_EVENT = 'intake:register';
export const REGISTERED_EVENT = 'intake:registered';
const ROLES = ['agent', 'dispatcher', 'admin'];

/** Each field's label by its path in the API body (literal keys: the catalogue test reads them). */
const LABELS = {
  'caller.phone': () => t('reg.field.phone'),
  'caller.name': () => t('reg.field.name'),
  caller: () => t('reg.field.caller'),
  category: () => t('reg.field.category'),
  priority: () => t('reg.field.priority'),
  description: () => t('reg.field.description'),
  address: () => t('reg.field.address'),
  location: () => t('reg.field.location'),
  account_number: () => t('reg.field.account_number'),
  customer_type: () => t('reg.field.customer_type'),
  fault: () => t('reg.field.fault'),
  'fault.type': () => t('reg.field.fault_type'),
  'fault.began_at': () => t('reg.field.fault_began_at'),
  'fault.scope': () => t('reg.field.fault_scope'),
  service_time: () => t('reg.field.service_time'),
  special_needs: () => t('reg.field.special_needs'),
  call_id: () => t('reg.field.call_id'),
  channel: () => t('reg.field.channel'),
};
/** What a field's error code says, in the reader's language. */
const FIELD_ERRORS = {
  missing_field: () => t('reg.error.missing_field'),
  bad_field: () => t('reg.error.bad_field'),
  bad_phone: () => t('reg.error.bad_phone'),
  bad_choice: () => t('reg.error.bad_choice'),
};
/** Fields every category has; the others come and go with the category (the API's `fields`). */
const COMMON = ['caller.phone', 'caller.name', 'category', 'priority', 'description', 'address'];
const TIMES = ['fault.began_at', 'service_time'];
const SNIPPET = 120;

function loadSheet() {
  if (document.querySelector('link[data-sheet=register]')) return;
  document.head.append(h('link', { rel: 'stylesheet', href: '/console/register.css', dataset: { sheet: 'register' } }));
}

function fieldError(code) {
  return (FIELD_ERRORS[code] || (() => t('reg.error.bad_field')))();
}

let districts = null;
async function districtCollection() {
  if (!districts) districts = api('/api/v1/districts').catch(() => ({ features: [] }));
  return districts;
}

/** The registration drawer and the button that opens it (both null for roles that cannot register). */
export class RegisterDesk {
  constructor({ role, onSaved, onOpenCase }) {
    this.onSaved = onSaved;
    this.onOpenCase = onOpenCase;
    this.rules = null;
    this.point = null;
    this.candidates = [];
    if (!ROLES.includes(role)) { this.button = null; this.drawer = null; return; }
    loadSheet();
    this.button = h('button.primary.new-case', { type: 'button', 'aria-haspopup': 'dialog', onclick: () => this.open({}) },
      t('reg.new_case'));
    this.drawer = h('aside.register', { role: 'dialog', 'aria-labelledby': 'reg-title', hidden: true,
      onkeydown: (e) => { if (e.key === 'Escape') { e.preventDefault(); this.hide(); } } });
    this.refreshCandidates = debounce(() => this.loadCandidates(), 250);
    this.refreshSuggestions = debounce(() => this.loadSuggestions(), 350);
    this.refreshPlace = debounce(() => this.locateAddress(false), 600);
    document.addEventListener(REGISTER_EVENT, (e) => this.open((e && e.detail) || {}));
  }

  /** Open the form; a call (`phone`, `call_id`) starts a fresh one, else an unsaved draft is kept. */
  async open({ phone, call_id: callId, name } = {}) {
    if (!this.drawer) return;
    this.opener = document.activeElement;
    const fresh = Boolean(phone || callId) || !this.form;
    if (!this.rules) {
      try {
        this.rules = await api('/api/v1/cases/form');
      } catch (err) {
        fill(this.drawer, h('p.err', { title: err.message }, errorText(err)));
        this.drawer.hidden = false;
        return;
      }
    }
    if (fresh) this.build({ phone: phone || '', callId: callId || '', name: name || '' });
    this.drawer.hidden = false;
    (this.inputs['caller.phone'].value ? this.inputs['caller.name'] : this.inputs['caller.phone']).focus();
    this.refreshCandidates();
  }

  /** Hide the drawer, keeping an unsaved draft. */
  hide() {
    if (!this.drawer) return;
    this.drawer.hidden = true;
    if (this.opener && this.opener.focus) this.opener.focus();
  }

  /** Drop the draft and hide. */
  discard() {
    this.form = null;
    this.hide();
  }

  input(path) {
    const name = path.replace('.', '_');
    const common = { name, id: `reg-${name}`, 'aria-describedby': `reg-${name}-error` };
    if (path === 'category') {
      return h('select', { ...common, onchange: () => this.categoryChanged() },
        h('option', { value: '' }, t('reg.pick_category')),
        this.rules.categories.map((c) => h('option', { value: c }, tn('category', c))));
    }
    if (path === 'priority') {
      return h('select', common, h('option', { value: '' }, t('reg.priority_default')),
        this.rules.priorities.map((p) => h('option', { value: String(p) }, tn('priority', String(p)))));
    }
    const choices = this.rules.choices[path];
    if (choices) {
      return h('select', common, h('option', { value: '' }, t('reg.choose')),
        choices.map((v) => h('option', { value: v }, tn('citizen.value', v))));
    }
    if (path === 'description') {
      return h('textarea', { ...common, rows: 3, oninput: () => this.refreshSuggestions() });
    }
    if (TIMES.includes(path)) return h('input', { ...common, type: 'datetime-local' });
    if (path === 'caller.phone') {
      return h('input', { ...common, type: 'tel', autocomplete: 'off', inputmode: 'tel', oninput: () => this.refreshCandidates() });
    }
    if (path === 'address') {
      return h('input', { ...common, autocomplete: 'off', oninput: () => this.refreshPlace() });
    }
    return h('input', { ...common, autocomplete: 'off' });
  }

  field(path) {
    const input = this.input(path);
    this.inputs[path] = input;
    const required = h('span.req', { 'aria-hidden': 'true' });
    const label = h('label.reg-field', { dataset: { field: path }, for: input.id },
      h('span.reg-label', {}, LABELS[path](), required), input,
      h('span.field-error', { id: `reg-${path.replace('.', '_')}-error`, 'aria-live': 'polite' }));
    this.labels[path] = label;
    return label;
  }

  build({ phone, callId, name }) {
    this.inputs = {};
    this.labels = {};
    this.point = null;
    this.callId = callId;
    this.key = `desk-${crypto.randomUUID()}`; // one registration per form, however often it is sent
    const extra = [...new Set(Object.values(this.rules.fields).flat())];
    this.summary = h('div.reg-summary', { role: 'alert' });
    this.placeBox = h('div.place-match', { 'aria-live': 'polite' });
    this.pointBox = h('div.point');
    this.dupList = h('ul.candidates', { 'aria-live': 'polite' });
    this.kbList = h('ul.suggestions', { 'aria-live': 'polite' });
    this.mapRoot = h('div.reg-map');
    this.form = h('form.reg-form', { novalidate: true, onsubmit: (e) => { e.preventDefault(); this.save(); } },
      h('header.reg-head', {}, h('h2', { id: 'reg-title' }, t('reg.title')),
        h('button.icon.close', { type: 'button', title: t('reg.close'), 'aria-label': t('reg.close'), onclick: () => this.hide() }, '×')),
      callId ? h('p.reg-call', {}, t('reg.from_call'), ' ', h('span.mono.call-id', {}, callId), ' ', h('span.muted', {}, t('reg.recording_linked'))) : null,
      this.summary,
      h('div.reg-grid', {}, COMMON.map((p) => this.field(p)),
        h('div.reg-place', {}, this.placeBox, h('div.reg-map-box', {}, this.mapRoot,
          h('p.muted.map-hint', {}, t('reg.map_hint'))), this.pointBox),
        extra.map((p) => this.field(p))),
      h('section.reg-side', { 'aria-label': t('reg.side') },
        h('h3', {}, t('reg.dup.title')), this.dupList,
        h('h3', {}, t('reg.kb.title')), this.kbList),
      h('div.form-buttons', {},
        h('button.primary', { type: 'submit' }, t('reg.save')),
        h('button.secondary', { type: 'button', onclick: () => this.discard() }, t('reg.discard'))));
    this.inputs['caller.phone'].value = phone;
    this.inputs['caller.name'].value = name;
    fill(this.drawer, this.form);
    this.map = new MapView(this.mapRoot, { onSelect: (id) => { if (id) this.onOpenCase(id); }, onPick: (lat, lon) => this.setPoint(lat, lon, 'map') });
    districtCollection().then((c) => { this.map.setDistricts(c); this.drawPoint(); });
    this.categoryChanged();
    this.drawPoint();
    fill(this.kbList, h('li.muted', {}, t('reg.kb.type')));
  }

  categoryChanged() {
    const category = this.inputs.category.value;
    const asks = new Set(this.rules.fields[category] || []);
    const required = new Set(this.rules.required[category] || []);
    for (const [path, label] of Object.entries(this.labels)) {
      if (!COMMON.includes(path)) label.hidden = !asks.has(path);
      label.querySelector('.req').textContent = required.has(path) ? ' *' : '';
      this.inputs[path].setAttribute('aria-required', required.has(path) ? 'true' : 'false');
    }
    const priority = this.inputs.priority.options[0];
    const fallback = this.rules.default_priority[category];
    priority.textContent = fallback ? t('reg.priority_default_is', { p: tn('priority', String(fallback)) }) : t('reg.priority_default');
    this.refreshCandidates();
    this.refreshSuggestions();
  }

  setPoint(lat, lon, source) {
    this.point = { lat: Number(lat.toFixed(6)), lon: Number(lon.toFixed(6)), source };
    this.drawPoint();
    this.showError('location', null);
    this.refreshCandidates();
  }

  drawPoint() {
    if (!this.map) return;
    const marks = this.candidates.map((c) => c.case).filter((c) => c.location);
    if (this.point) marks.push({ case_id: '', light: 'green', location: this.point });
    this.map.setCases(marks, '');
    if (this.point) this.map.frame([this.point, ...marks.map((c) => c.location)]);
    fill(this.pointBox, this.point
      ? [h('span.muted', {}, this.point.source === 'map' ? t('reg.point_map') : t('reg.point_gazetteer')), ' ',
        h('span.mono.point-value', {}, `${this.point.lat}, ${this.point.lon}`), ' ',
        h('button.link', { type: 'button', onclick: () => { this.point = null; this.drawPoint(); this.refreshCandidates(); } }, t('reg.point_clear'))]
      : h('span.muted', {}, t('reg.point_none')));
  }

  /** Where the gazetteer puts the address: taken at once when no point is chosen, else offered. */
  async locateAddress(force) {
    const text = this.inputs.address.value.trim();
    if (!text) { fill(this.placeBox); return; }
    let found;
    try {
      found = await api(`/api/v1/places/match?text=${encodeURIComponent(text.slice(0, 200))}`);
    } catch (err) {
      fill(this.placeBox, h('span.muted', { title: err.message }, t('reg.place.unavailable')));
      return;
    }
    if (text !== this.inputs.address.value.trim()) return;
    const use = (p) => h('button.link.use-place', { type: 'button', dataset: { place: p.place_id },
      onclick: () => this.setPoint(p.lat, p.lon, 'gazetteer') }, t('reg.place.use'));
    const describe = (p) => (p.district_name ? t('reg.place.named', { name: p.name, district: p.district_name }) : p.name);
    const m = found.match;
    if (m && (!this.point || this.point.source === 'gazetteer' || force)) this.setPoint(m.lat, m.lon, 'gazetteer');
    fill(this.placeBox,
      m ? h('div.place-found', { dataset: { place: m.place_id } }, t('reg.place.found', { place: describe(m), score: Math.round(m.score) }), ' ', use(m))
        : h('div.muted.place-none', {}, t(found.alternatives.length ? 'reg.place.ambiguous' : 'reg.place.none')),
      found.alternatives.length ? h('ul.place-alternatives', {}, found.alternatives.map((p) =>
        h('li', { dataset: { place: p.place_id } }, describe(p), ' ', use(p)))) : null);
  }

  async loadCandidates() {
    if (!this.form) return;
    const category = this.inputs.category.value;
    const phone = this.inputs['caller.phone'].value.trim();
    if (!category) { fill(this.dupList, h('li.muted', {}, t('reg.dup.pick_category'))); return; }
    if (!phone && !this.point) { fill(this.dupList, h('li.muted', {}, t('reg.dup.need_more'))); return; }
    const query = new URLSearchParams({ category });
    if (phone) query.set('phone', phone);
    if (this.point) { query.set('lat', this.point.lat); query.set('lon', this.point.lon); }
    let items;
    try {
      items = (await api(`/api/v1/cases/candidates?${query}`)).items;
    } catch (err) {
      const why = err instanceof ApiError && err.status === 400 ? t('reg.dup.bad_input') : errorText(err);
      fill(this.dupList, h('li.muted', { title: err.message }, why));
      return;
    }
    this.candidates = items;
    this.drawPoint();
    fill(this.dupList, items.length ? items.map(({ reason, distance_m: m, case: c }) => h('li.candidate', { dataset: { case: c.case_id, reason } },
      h('div.candidate-head', {},
        h('b', {}, reason === 'same_caller' ? t('reg.dup.same_caller') : t('reg.dup.same_place', { m: Math.round(m ?? 0) })),
        h(`span.status.s-${c.status}`, {}, tn('status', c.status))),
      h('div', {}, h('span.mono', {}, c.case_id), ' · ', h('span.muted', {}, when(c.accepted_at))),
      h('div.desc', {}, String(c.description || '').slice(0, SNIPPET)),
      c.address ? h('div.muted.desc', {}, c.address) : null,
      h('button.link', { type: 'button', onclick: () => this.onOpenCase(c.case_id) }, t('reg.dup.open'))))
      : h('li.muted.no-candidates', {}, t('reg.dup.none')));
  }

  async loadSuggestions() {
    if (!this.form) return;
    const text = this.inputs.description.value.trim();
    if (text.length < 2) { fill(this.kbList, h('li.muted', {}, t('reg.kb.type'))); return; }
    const query = new URLSearchParams({ text: text.slice(0, 500) });
    if (this.inputs.category.value) query.set('category', this.inputs.category.value);
    try {
      const { items } = await api(`/api/v1/knowledge/suggestions?${query}`);
      fill(this.kbList, items.length ? items.map((a) => h('li.suggestion', { dataset: { article: a.article_id } },
        h('details', {}, h('summary', {}, a.title), a.short_answer ? h('p', {}, a.short_answer) : h('p', {}, a.snippet))))
        : h('li.muted', {}, t('reg.kb.none')));
    } catch (err) {
      fill(this.kbList, h('li.muted', { title: err.message }, t('reg.kb.unavailable')));
    }
  }

  /** The API body of the form: only the fields the category shows, blanks left out. */
  body() {
    const value = (path) => {
      const el = this.inputs[path];
      if (!el || this.labels[path].hidden) return undefined;
      const v = el.value.trim();
      if (!v) return undefined;
      return TIMES.includes(path) ? typedInstant(v) : v;
    };
    const body = { category: value('category') || '', channel: 'phone', description: value('description') || '',
      caller: { name: value('caller.name'), phone: value('caller.phone') } };
    if (value('priority')) body.priority = Number(value('priority'));
    for (const path of ['address', 'account_number', 'customer_type', 'service_time', 'special_needs']) {
      if (value(path) !== undefined) body[path] = value(path);
    }
    const fault = { type: value('fault.type'), began_at: value('fault.began_at'), scope: value('fault.scope') };
    if (Object.values(fault).some((v) => v !== undefined)) body.fault = fault;
    if (this.point) body.location = { lat: this.point.lat, lon: this.point.lon };
    if (this.callId) body.call_id = this.callId;
    return body;
  }

  showError(path, code, message) {
    const label = this.labels[path];
    if (!label) return false;
    const slot = label.querySelector('.field-error');
    slot.textContent = code ? fieldError(code) : '';
    slot.dataset.message = message || ''; // the server's own words, for support; the reader sees the catalogue's
    slot.dataset.code = code || '';
    this.inputs[path].setAttribute('aria-invalid', code ? 'true' : 'false');
    label.classList.toggle('invalid', Boolean(code));
    return true;
  }

  async save() {
    for (const path of Object.keys(this.labels)) this.showError(path, null);
    fill(this.summary);
    const button = this.form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const body = this.body();
      const made = await api('/api/v1/cases', { method: 'POST', body, headers: { 'Idempotency-Key': this.key } });
      document.dispatchEvent(new CustomEvent(REGISTERED_EVENT, { detail: { case_id: made.case_id, call_id: body.call_id || null } }));
      this.discard();
      this.onSaved(made.case_id);
    } catch (err) {
      this.failed(err);
    } finally {
      button.disabled = false;
    }
  }

  failed(err) {
    const fields = err instanceof ApiError ? err.fields : [];
    const elsewhere = fields.filter((f) => !this.showError(f.field, f.code, f.message));
    fill(this.summary, h('p.err', { dataset: { code: err.code || '', message: err.message } },
      fields.length ? t('reg.fix', { n: fields.length }) : errorText(err)),
    elsewhere.length ? h('ul.err', {}, elsewhere.map((f) => h('li', { dataset: { field: f.field } },
      t('reg.field_error', { field: (LABELS[f.field] || (() => f.field))(), error: fieldError(f.code) })))) : null);
    const first = fields.map((f) => this.inputs[f.field]).find(Boolean);
    if (first) first.focus();
  }
}
