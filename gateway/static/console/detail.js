// Case detail: the facts, the providers near it, and the actions the role allows,
// each sent with the case's expected_version (409 on a stale one).
import { api, ApiError } from './api.js';
import { h, fill, when, ago, label, callerOf, placeOf } from './util.js';

/** Actions by name: who may take them and what they ask for. */
export const ACTIONS = {
  dispatch: { roles: ['dispatcher'], fields: [['to', 'Unit or provider id'], ['kind', 'Kind', ['unit', 'provider']], ['note', 'Note', null, true]] },
  confirm: { roles: ['unit'], fields: [] },
  reject: { roles: ['unit'], fields: [['reason', 'Reason']] },
  'request-extension': { roles: ['unit'], fields: [['until', 'Until (ISO time)'], ['reason', 'Reason']] },
  'decide-extension': { roles: ['dispatcher'], fields: [['approve', 'Decision', ['true', 'false']], ['note', 'Note', null, true]] },
  feedback: { roles: ['unit'], fields: [['text', 'Progress']] },
  complete: { roles: ['unit', 'dispatcher'], fields: [['result', 'Result', null, true]] },
  callback: { roles: ['agent'], fields: [['outcome', 'Outcome', ['satisfied', 'unsatisfied', 'unconfirmed']], ['note', 'Note', null, true]] },
  link: { roles: ['dispatcher', 'agent'], fields: [['other_case_id', 'Other case id']] },
  unlink: { roles: ['dispatcher'], fields: [['other_case_id', 'Other case id']] },
  supplement: { roles: ['agent', 'dispatcher'], fields: [['text', 'Supplement']] },
  close: { roles: ['agent', 'dispatcher'], fields: [['reason', 'Reason']] },
};

/** The actions a role may take. */
export function actionsFor(role) {
  return Object.keys(ACTIONS).filter((name) => role === 'admin' || ACTIONS[name].roles.includes(role));
}

function fact(name, value) {
  return [h('dt', {}, name), h('dd', {}, value === null || value === undefined || value === '' ? '—' : value)];
}

/** The detail panel. */
export class Detail {
  constructor(root, { role, onTimeline, onProviders, onChanged, canReadHistory }) {
    Object.assign(this, { root, role, onTimeline, onProviders, onChanged, canReadHistory });
    this.item = null;
    this.clear();
  }

  clear() {
    this.item = null;
    fill(this.root, h('div.placeholder', {}, h('div.big', {}, '☰'), 'Select a case on the board or the map.'));
  }

  /** Show one case (as the API answers it). */
  async show(item, districtName) {
    this.item = item;
    const caller = callerOf(item);
    const place = placeOf(item);
    this.providers = h('ul.providers', {}, h('li.muted', {}, 'Looking for providers…'));
    this.form = h('div.action-form');
    this.message = h('div.message', { role: 'status' });
    const actions = actionsFor(this.role).map((name) =>
      h('button.action', { 'data-action': name, onclick: () => this.openAction(name) }, label(name)));
    fill(this.root,
      h('header.detail-head', {},
        h('div', {}, h(`span.light.${item.light || 'green'}`), h('span.mono.case-id', {}, item.case_id)),
        h(`span.status.s-${item.status}`, {}, label(item.status))),
      h('p.description', {}, item.description || ''),
      h('dl.facts', {},
        fact('Category', label(item.category)), fact('Priority', item.priority ? `P${item.priority}` : null),
        fact('Channel', item.channel), fact('Caller', [caller.name, caller.phone].filter(Boolean).join(' · ')),
        fact('Address', item.address), fact('District', districtName || (place && place.district)),
        fact('Accepted', when(item.accepted_at || item.created_at)),
        fact('Deadline', item.deadline ? `${when(item.deadline)} (${ago(item.deadline)})` : null),
        fact('Assigned to', item.assigned_to), fact('Incident', item.incident_id),
        fact('Linked', (item.linked_case_ids || []).join(', ')), fact('Version', item.version)),
      h('div.actions', {}, actions.length ? actions : h('span.muted', {}, 'Read-only for this role.'),
        this.canReadHistory ? h('button.action.secondary', { onclick: () => this.onTimeline(item.case_id) }, 'Timeline') : null),
      this.form, this.message,
      h('h3', {}, 'Providers nearby'), this.providers);
    await this.loadProviders(place);
  }

  async loadProviders(place) {
    if (!place) {
      fill(this.providers, h('li.muted', {}, 'No location on this case.'));
      this.onProviders([], null);
      return;
    }
    try {
      const found = await api(`/api/v1/providers/nearest?lat=${place.lat}&lon=${place.lon}&k=5`);
      const items = found.items || [];
      fill(this.providers, items.length ? items.map((p) => h('li', {},
        h('span', {}, p.name || p.id), h('span.muted', {}, `${(Number(p.distance_m || 0) / 1000).toFixed(2)} km`),
        actionsFor(this.role).includes('dispatch') ?
          h('button.link', { onclick: () => this.openAction('dispatch', { to: p.id, kind: 'provider' }) }, 'dispatch') : null))
        : h('li.muted', {}, 'No provider nearby.'));
      this.onProviders(items, place);
    } catch (err) {
      const why = err instanceof ApiError && err.status === 404 ? 'Provider search not available.' :
        err instanceof ApiError && err.status === 403 ? 'Not shown to this role.' : err.message;
      fill(this.providers, h('li.muted', {}, why));
      this.onProviders([], null);
    }
  }

  openAction(name, preset = {}) {
    const spec = ACTIONS[name];
    const inputs = spec.fields.map(([field, title, choices, optional]) => {
      const input = choices ?
        h('select', { name: field }, choices.map((c) => h('option', { value: c }, c))) :
        h('input', { name: field, placeholder: title + (optional ? ' (optional)' : ''), required: !optional });
      if (preset[field] !== undefined) input.value = preset[field];
      return h('label', {}, h('span', {}, title), input);
    });
    const form = h('form', { onsubmit: (e) => { e.preventDefault(); this.send(name, form); } },
      h('div.form-title', {}, label(name)), inputs,
      h('div.form-buttons', {}, h('button.primary', { type: 'submit' }, `Send ${label(name)}`),
        h('button.secondary', { type: 'button', onclick: () => fill(this.form) }, 'Cancel')));
    fill(this.form, form);
    fill(this.message);
    if (!spec.fields.length) this.send(name, form);
  }

  async send(name, form) {
    const body = { expected_version: this.item.version };
    for (const el of form.querySelectorAll('input, select')) {
      if (el.value === '') continue;
      body[el.name] = el.name === 'approve' ? el.value === 'true' : el.value;
    }
    try {
      await api(`/api/v1/cases/${encodeURIComponent(this.item.case_id)}/${name}`, { method: 'POST', body });
      fill(this.form);
      fill(this.message, h('span.ok', {}, `${label(name)} sent.`));
      this.onChanged(this.item.case_id);
    } catch (err) {
      const stale = err instanceof ApiError && err.status === 409;
      fill(this.message, h('span.err', {}, stale ? `Someone changed this case first (${err.message}); reloaded — check and retry.` : err.message));
      if (stale) this.onChanged(this.item.case_id);
    }
  }
}
