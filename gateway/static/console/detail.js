// Case detail: the facts, the providers near it, and the actions the case's state and the
// role allow, each sent with the case's version when its form opened (409 on a stale one).
import { api, ApiError } from './api.js';
import { h, fill, when, ago, callerOf, placeOf } from './util.js';
import { t, tn, errorText, typedInstant, names } from './i18n.js';
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
    fields: [['to'], ['kind', ['unit', 'provider']], ['note', null, true]] },
  confirm: { roles: ['unit'], unit: true, when: (c) => c.status === 'dispatched', fields: [] },
  reject: { roles: ['unit'], unit: true, when: (c) => ['dispatched', 'confirmed'].includes(c.status), fields: [['reason']] },
  'request-extension': { roles: ['unit'], unit: true, when: (c) => WORKING.includes(c.status) && !(c.sla || {}).pending_extension,
    fields: [['until', 'datetime-local'], ['reason']] },
  'decide-extension': { roles: ['dispatcher'], when: (c) => Boolean((c.sla || {}).pending_extension),
    fields: [['approve', ['true', 'false']], ['note', null, true]] },
  feedback: { roles: ['unit'], unit: true, when: (c) => WORKING.includes(c.status), fields: [['text']] },
  complete: { roles: ['unit', 'dispatcher'], unit: true, when: (c) => BUSY.includes(c.status), fields: [['result', null, true]] },
  callback: { roles: ['agent'], when: (c) => Boolean((c.sla || {}).completed_at) && ['completed', 'archived'].includes(c.status),
    fields: [['outcome', ['satisfied', 'unsatisfied', 'not_confirmed']], ['note', null, true]] },
  link: { roles: ['dispatcher', 'agent'], when: () => true, fields: [['other_case_id']] },
  unlink: { roles: ['dispatcher'], when: (c) => (c.linked_case_ids || []).length > 0,
    fields: [['other_case_id', 'linked']] },
  supplement: { roles: ['agent', 'dispatcher'], when: (c) => ['closed', 'archived'].includes(c.status), fields: [['text']] },
  close: { roles: ['agent', 'dispatcher'], when: (c) => c.status !== 'closed', fields: [['reason']] },
  // moves between levels (docs/organisation.md): only where the token's level has one above / below
  'report-up': { roles: ['dispatcher', 'agent'], when: (c) => WAITING.includes(c.status) && Boolean(ORG.up),
    fields: [['reason']] },
  'dispatch-down': { roles: ['dispatcher'], when: (c) => WAITING.includes(c.status) && ORG.down.length > 0,
    fields: [['node', 'org_down'], ['note', null, true]] },
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

function fact(key, value) {
  return [h('dt', {}, t(`fact.${key}`)), h('dd', {}, value === null || value === undefined || value === '' ? '—' : value)];
}

/** The detail panel. */
export class Detail {
  constructor(root, { role, subject, onTimeline, onProviders, onChanged, canReadHistory }) {
    Object.assign(this, { root, role, subject, onTimeline, onProviders, onChanged, canReadHistory });
    this.item = null;
    // kept across re-renders of the same case, so a confirmation or a half-filled form survives
    this.form = h('div.action-form');
    this.message = h('div.message', { role: 'status' });
    this.clear();
  }

  clear() {
    this.item = null;
    fill(this.root, h('div.placeholder', {}, h('div.big', {}, '☰'), t('detail.placeholder')));
  }

  /** Show one case (as the API answers it). */
  async show(item, districtName) {
    if (!this.item || this.item.case_id !== item.case_id) { fill(this.form); fill(this.message); }
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
      h('p.description', {}, item.description || ''),
      h('dl.facts', {},
        fact('category', tn('category', item.category)), fact('priority', item.priority ? tn('priority', item.priority) : null),
        fact('channel', tn('channel', item.channel)), fact('caller', [caller.name, caller.phone].filter(Boolean).join(' · ')),
        fact('address', item.address), fact('district', districtName || (place && place.district)),
        fact('accepted', when(item.accepted_at || item.created_at)),
        fact('deadline', item.deadline ? `${when(item.deadline)} (${ago(item.deadline)})` : null),
        sla.pending_extension ? fact('pending_extension', when(sla.pending_extension)) : null,
        fact('owner', item.owner && h('span.owner', { 'data-owner': item.owner }, ownerName(item.owner))),
        fact('assigned_to', item.assigned_to && h('span.mono', {}, item.assigned_to)),
        fact('incident', item.incident_id && h('span.mono', {}, item.incident_id)),
        fact('linked', (item.linked_case_ids || []).length ? h('span.mono', {}, item.linked_case_ids.join(', ')) : null),
        fact('version', item.version)),
      h('div.actions', {}, buttons.length ? buttons : h('span.muted.no-actions', {}, t(this.role === 'auditor' ? 'detail.read_only' : 'detail.no_actions')),
        this.canReadHistory ? h('button.action.secondary', { 'data-timeline': item.case_id, onclick: () => this.onTimeline(item.case_id) }, t('timeline.open')) : null),
      this.form, this.message,
      h('h3', {}, t('providers.title')), this.providers);
    const form = this.form.querySelector('form');
    if (form && !allowed.includes(form.dataset.action)) fill(this.form);
    await this.loadProviders(place);
  }

  async loadProviders(place) {
    if (!place) {
      fill(this.providers, h('li.muted', {}, t('providers.no_location')));
      this.onProviders([], null);
      return;
    }
    try {
      const found = await api(`/api/v1/providers/nearest?lat=${place.lat}&lon=${place.lon}&k=5`);
      const items = found.items || [];
      const canDispatch = actionsFor(this.role, this.item, this.subject).includes('dispatch');
      fill(this.providers, items.length ? items.map((p) => h('li', {},
        h('span', {}, p.name || p.id), h('span.muted', {}, t('providers.km', { km: (Number(p.distance_m || 0) / 1000).toFixed(2) })),
        canDispatch ? h('button.link', { onclick: () => this.openAction('dispatch', { to: p.id, kind: 'provider' }) }, t('providers.dispatch')) : null))
        : h('li.muted', {}, t('providers.none')));
      this.onProviders(items, place);
    } catch (err) {
      const why = err instanceof ApiError && err.status === 404 ? t('providers.unavailable') :
        err instanceof ApiError && err.status === 403 ? t('panel.forbidden') : errorText(err);
      fill(this.providers, h('li.muted', { title: err.message }, why));
      this.onProviders([], null);
    }
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
    return h('input', { name: field, type: kind || 'text', 'aria-label': title, required: !optional,
      placeholder: optional ? t('form.optional') : '' });
  }

  openAction(name, preset = {}) {
    const spec = ACTIONS[name];
    const inputs = spec.fields.map(([field, kind, optional]) => {
      const input = this.input(field, kind, optional);
      if (preset[field] !== undefined) input.value = preset[field];
      return h('label', {}, h('span', {}, t(`field.${field}`)), input);
    });
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
    for (const el of form.querySelectorAll('input, select')) {
      if (el.value === '') continue;
      if (el.name === 'approve') body[el.name] = el.value === 'true';
      else if (el.name === 'priority') body[el.name] = Number(el.value);
      else if (el.type === 'datetime-local') body[el.name] = typedInstant(el.value);
      else if (el.name === 'node') body.to = el.value; // dispatch-down names the node it goes to
      else body[el.name] = el.value;
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
