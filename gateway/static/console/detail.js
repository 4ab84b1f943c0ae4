// Case detail: the facts, the providers near it, and the actions the case's state and the
// role allow, each sent with the case's version when its form opened (409 on a stale one).
import { api, ApiError } from './api.js';
import { h, fill, when, ago, callerOf, placeOf } from './util.js';
import { t, tn, errorText, typedInstant, names } from './i18n.js';
import { assigneeSelect, kindOf, renderSuggestions } from './assign.js';
import { intakeFacts, renderRecordings } from './case_intake.js';
import { ORG, ownerName } from './org.js';

const WAITING = ['accepted', 'classified', 'rejected'];
const WORKING = ['confirmed', 'in_progress'];
const BUSY = ['dispatched', ...WORKING];
const OPEN = [...WAITING, ...BUSY];

/**
 * Actions by name: who may take them, in which state of the case (as the server's rules,
 * docs/cases-sla.md), and their fields: [name, choices ('names': the catalogue's) or input type, optional].
 * Field labels are `field.<name>`; a choice is named by `tn(<field>, value)`.
 */
export const ACTIONS = {
  classify: { roles: ['dispatcher', 'agent'], when: (c) => WAITING.includes(c.status),
    fields: [['category', 'names'], ['priority', 'names']] },
  dispatch: { roles: ['dispatcher'], when: (c) => OPEN.includes(c.status),
    fields: [['to', 'assignee'], ['note', null, true]] },
  confirm: { roles: ['unit'], unit: true, when: (c) => c.status === 'dispatched', fields: [] },
  reject: { roles: ['unit'], unit: true, when: (c) => ['dispatched', 'confirmed'].includes(c.status), fields: [['reason']] },
  'request-extension': { roles: ['unit'], unit: true, when: (c) => WORKING.includes(c.status) && !(c.sla || {}).pending_extension,
    fields: [['until', 'datetime-local'], ['reason']] },
  'decide-extension': { roles: ['dispatcher'], when: (c) => Boolean((c.sla || {}).pending_extension),
    fields: [['approve', ['true', 'false']], ['note', null, true]] },
  feedback: { roles: ['unit'], unit: true, when: (c) => WORKING.includes(c.status), fields: [['text']] },
  complete: { roles: ['unit', 'dispatcher'], unit: true, when: (c) => BUSY.includes(c.status), fields: [['result', null, true]] },
  callback: { roles: ['agent'], when: (c) => Boolean((c.sla || {}).completed_at) && ['completed', 'archived'].includes(c.status) && !(c.callback || {}).outcome,
    fields: [['outcome', ['satisfied', 'unsatisfied', 'not_confirmed']], ['case_score', 'score', true], ['unit_score', 'score', true],
      ['note', null, true]] },
  link: { roles: ['dispatcher', 'agent'], when: () => true, fields: [['other_case_id']] },
  unlink: { roles: ['dispatcher'], when: (c) => (c.linked_case_ids || []).length > 0,
    fields: [['other_case_id', 'linked']] },
  supplement: { roles: ['agent', 'dispatcher'], when: (c) => ['closed', 'archived'].includes(c.status), fields: [['text']] },
  close: { roles: ['agent', 'dispatcher'], when: (c) => c.status !== 'closed', fields: [['reason']] },
  reminder: { roles: ['agent'], when: (c) => !['closed', 'archived'].includes(c.status),
    fields: [['remind_at', 'datetime-local'], ['note', null, true]] },
  // moves between levels (docs/organisation.md): only where the token's level has one above / below
  'report-up': { roles: ['dispatcher', 'agent'], when: (c) => WAITING.includes(c.status) && Boolean(ORG.up),
    fields: [['reason']] },
  'dispatch-down': { roles: ['dispatcher'], when: (c) => WAITING.includes(c.status) && ORG.down.length > 0,
    fields: [['node', 'org_down'], ['note', null, true]] },
  // sets a hold (dispatch/personal/hold.py); an auditor or admin releases it through the API
  'legal-hold': { roles: ['dispatcher'], when: (c) => !c.legal_hold, fields: [['reason']] },
};

/** The actions a role may take on this case now (a unit only on the cases assigned to it). */
export function actionsFor(role, item, subject) {
  return Object.keys(ACTIONS).filter((name) => {
    const spec = ACTIONS[name];
    if (role !== 'admin' && !spec.roles.includes(role)) return false;
    if (role === 'unit' && spec.unit && item.assigned_to !== subject) return false;
    return spec.when(item);
  });
}

/** Where the case's point came from: the contact, the gazetteer's match of its words (with the score), an agent. */
function located(loc) {
  const source = tn('location_source', loc.source || 'given');
  const p = loc.place;
  if (!p) return source;
  const score = p.score === null || p.score === undefined ? '' : ` · ${t('located.score', { score: Math.round(p.score) })}`;
  return h('span', { 'data-place': p.id }, `${p.name} (${source}${score})`);
}

/** The call-back's outcome and the citizen's 1-5 scores, or null before the call-back. */
function callbackOf(item) {
  const cb = item.callback || {};
  if (!cb.outcome) return null;
  const score = (n) => (n === null || n === undefined ? '—' : n);
  return t('report.callback_scores', { outcome: tn('outcome', cb.outcome), case: score(cb.case_score), unit: score(cb.unit_score) });
}

function fact(key, value) {
  return [h('dt', {}, t(`fact.${key}`)), h('dd', {}, value === null || value === undefined || value === '' ? '—' : value)];
}

/** The detail panel. */
export class Detail {
  constructor(root, { role, subject, onTimeline, onProviders, onChanged, canReadHistory, canSuggest, canHearCalls }) {
    Object.assign(this, { root, role, subject, onTimeline, onProviders, onChanged, canReadHistory, canSuggest, canHearCalls });
    this.item = null;
    // kept across re-renders of the same case, so a confirmation or a half-filled form survives
    this.form = h('div.action-form');
    this.message = h('div.message', { role: 'status' });
    this.recordings = h('section.recordings-box'); // kept across re-renders: a recording may be playing
    this.clear();
  }

  clear() {
    this.item = null;
    fill(this.root, h('div.placeholder', {}, h('div.big', {}, '☰'), t('detail.placeholder')));
  }

  /** Show one case (as the API answers it). */
  async show(item, districtName) {
    const other = !this.item || this.item.case_id !== item.case_id;
    if (other) { fill(this.form); fill(this.message); fill(this.recordings); }
    this.item = item;
    const caller = callerOf(item);
    const place = placeOf(item);
    this.providers = h('ul.providers', {}, h('li.muted', {}, t('providers.loading')));
    const allowed = actionsFor(this.role, item, this.subject);
    const buttons = allowed.map((name) =>
      h('button.action', { 'data-action': name, onclick: () => this.openAction(name) }, tn('action', name)));
    const sla = item.sla || {};
    fill(this.root,
      h('header.detail-head', {},
        h('div', {}, h(`span.light.${item.light || 'green'}`, { title: tn('light', item.light || 'green') }), h('span.mono.case-id', {}, item.case_id)),
        h(`span.status.s-${item.status}`, {}, tn('status', item.status))),
      h('p.description', {}, item.description || h('span.muted', {}, t('detail.no_description'))),
      h('dl.facts', {},
        fact('category', tn('category', item.category)), fact('priority', item.priority ? tn('priority', item.priority) : null),
        fact('channel', tn('channel', item.channel)), fact('caller', [caller.name, caller.phone].filter(Boolean).join(' · ')),
        fact('address', item.address), fact('district', districtName || (place && place.district)),
        item.location ? fact('located', located(item.location)) : null,
        fact('accepted', when(item.accepted_at || item.created_at)),
        fact('deadline', item.deadline ? `${when(item.deadline)} (${ago(item.deadline)})` : null),
        sla.pending_extension ? fact('pending_extension', when(sla.pending_extension)) : null,
        item.legal_hold ? fact('legal_hold', [item.legal_hold.reason, item.legal_hold.by, when(item.legal_hold.at)].filter(Boolean).join(' · ')) : null,
        (item.reminder || {}).at ? fact('reminder', [when(item.reminder.at), item.reminder.note].filter(Boolean).join(' · ')) : null,
        fact('owner', item.owner && h('span.owner', { 'data-owner': item.owner }, ownerName(item.owner))),
        fact('assigned_to', item.assigned_to && h('span.assignee', {}, item.assignee_name ? `${item.assignee_name} ` : '', h('span.mono', {}, item.assigned_to))),
        fact('incident', item.incident_id && h('span.mono', {}, item.incident_id)),
        fact('linked', (item.linked_case_ids || []).length ? h('span.mono', {}, item.linked_case_ids.join(', ')) : null),
        fact('callback', callbackOf(item)),
        intakeFacts(item),
        fact('version', item.version)),
      h('div.actions', {}, buttons.length ? buttons : h('span.muted.no-actions', {}, t(this.role === 'auditor' ? 'detail.read_only' : 'detail.no_actions')),
        this.canReadHistory ? h('button.action.secondary', { 'data-timeline': item.case_id, onclick: () => this.onTimeline(item.case_id) }, t('timeline.open')) : null),
      this.form, this.message, this.recordings,
      this.canSuggest ? [h('h3', {}, t('providers.title')), this.providers] : null);
    const form = this.form.querySelector('form');
    if (form && !allowed.includes(form.dataset.action)) fill(this.form);
    const playing = [...this.recordings.querySelectorAll('audio')].some((a) => !a.paused);
    // recordings are personal data: a unit hears those of the cases assigned to it (gateway/privacy.py)
    const hears = this.canHearCalls || (this.role === 'unit' && item.assigned_to === this.subject);
    if (!hears) fill(this.recordings);
    await Promise.all([this.canSuggest ? this.loadProviders(place) : null,
      playing || !hears ? null : renderRecordings(this.recordings, item.case_id)]);
  }

  async loadProviders(place) {
    const canDispatch = actionsFor(this.role, this.item, this.subject).includes('dispatch');
    await renderSuggestions(this.providers, this.item, place, {
      canDispatch, onFound: this.onProviders,
      onPick: (p) => this.openAction('dispatch', { to: p.id, kind: 'provider', name: p.name }),
    });
  }

  input(field, kind, optional) {
    const title = t(`field.${field}`);
    if (kind === 'names') kind = names(field); // every value the catalogue names (category, priority)
    if (Array.isArray(kind)) return h('select', { name: field, 'aria-label': title }, kind.map((c) => h('option', { value: c }, tn(field, c))));
    if (kind === 'org_down') {
      return h('select', { name: field, 'aria-label': title }, ORG.down.map((n) => h('option', { value: n.id }, n.name)));
    }
    if (kind === 'linked') {
      return h('select', { name: field, 'aria-label': title }, (this.item.linked_case_ids || []).map((id) => h('option', { value: id }, id)));
    }
    if (kind === 'score') {
      return h('input', { name: field, type: 'number', min: '1', max: '5', step: '1', 'aria-label': title, placeholder: t('form.optional') });
    }
    return h('input', { name: field, type: kind || 'text', 'aria-label': title, required: !optional,
      placeholder: optional ? t('form.optional') : '' });
  }

  async openAction(name, preset = {}) {
    const spec = ACTIONS[name];
    const inputs = [];
    for (const [field, kind, optional] of spec.fields) {
      const input = kind === 'assignee' ? await assigneeSelect(preset) : this.input(field, kind, optional);
      if (preset[field] !== undefined) input.value = preset[field];
      inputs.push(h('label', {}, h('span', {}, t(`field.${field}`)), input));
    }
    const form = h('form', { dataset: { action: name, version: String(this.item.version) },
      onsubmit: (e) => { e.preventDefault(); this.send(name, form); } },
    h('div.form-title', {}, tn('action', name)), inputs,
    h('div.form-buttons', {}, h('button.primary', { type: 'submit' }, t('form.send', { action: tn('action', name) })),
      h('button.secondary', { type: 'button', onclick: () => fill(this.form) }, t('form.cancel'))));
    fill(this.form, form);
    fill(this.message);
    if (!spec.fields.length) this.send(name, form);
    else form.querySelector('input, select').focus();
  }

  async send(name, form) {
    const body = { expected_version: Number(form.dataset.version) };
    if (name === 'legal-hold') body.hold = true;
    for (const el of form.querySelectorAll('input, select')) {
      if (el.value === '') continue;
      if (el.name === 'approve') body[el.name] = el.value === 'true';
      else if (el.name === 'priority' || el.name.endsWith('_score')) body[el.name] = Number(el.value);
      else if (el.type === 'datetime-local') body[el.name] = typedInstant(el.value);
      else if (el.name === 'node') body.to = el.value; // dispatch-down names the node it goes to
      else body[el.name] = el.value;
      if (el.name === 'to') body.kind = kindOf(el);
    }
    const caseId = this.item.case_id;
    try {
      await api(`/api/v1/cases/${encodeURIComponent(caseId)}/${name}`, { method: 'POST', body });
      fill(this.form);
      fill(this.message, h('span.ok', {}, t('form.sent', { action: tn('action', name) })));
      this.onChanged(caseId);
    } catch (err) {
      const status = tn('status', this.item.status);
      fill(this.message, h('span.err', { title: err.message, 'data-code': err.code || '' }, errorText(err, { status })));
      if (err instanceof ApiError && err.status === 409) this.onChanged(caseId);
    }
  }
}
