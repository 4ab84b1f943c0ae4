// Who is calling (来电弹屏): the caller card. A call offered to or answered by the signed-in agent
// (the `ring` change on the live stream) opens it at once; a phone number typed in the search box
// opens it too. It shows the number's tier (an icon with a label for screen readers), its open
// cases first with "add to this case", the calls, missed-call tasks and SMS/WeChat messages, and
// for dispatchers the customer registry's form. "New case" sends the DOM event `intake:register`
// ({phone, call_id}) on `document` for the registration form; without that form (register.js),
// a minimal registration form opens in the card.
import { api } from './api.js';
import { h, fill, when } from './util.js';
import { t, tn, errorText, typedInstant } from './i18n.js';

export const REGISTER_EVENT = 'intake:register';
const REGISTRARS = ['dispatcher', 'admin'];
const SUPERVISORS = ['dispatcher', 'auditor', 'admin'];
const CONTACT_KIND = {
  call: () => t('caller.kind.call'),
  case: () => t('caller.kind.case'),
  message: () => t('caller.kind.message'),
};
const CALLERS = ['agent', 'dispatcher', 'admin'];
const FRESH_MS = 5 * 60 * 1000;
const PHONE_LIKE = /^\+?[\d\s\-()]{5,}$/;

const TIERS = {
  vip: { icon: '★', label: () => t('caller.tier.vip') },
  important: { icon: '◆', label: () => t('caller.tier.important') },
  elderly: { icon: '♥', label: () => t('caller.tier.elderly') },
  blacklisted: { icon: '⛔', label: () => t('caller.tier.blacklisted') },
  none: { icon: '○', label: () => t('caller.tier.none') },
};
const SETTABLE = ['vip', 'important', 'blacklisted', 'none'];
const CALL_STATUS = {
  offered: () => t('caller.call.offered'),
  answered: () => t('caller.call.answered'),
  abandoned: () => t('caller.call.abandoned'),
  ended: () => t('caller.call.ended'),
};
const RING_STATUS = {
  offered: () => t('caller.ring.offered'),
  answered: () => t('caller.ring.answered'),
  lookup: () => t('caller.ring.lookup'),
};

/** Whether a typed search looks like a phone number (then the card opens beside the results). */
export function looksLikePhone(text) {
  return PHONE_LIKE.test(String(text || '').trim()) && String(text).replace(/\D/g, '').length >= 5;
}

/** The tier as an icon whose label screen readers read (and sighted users see on hover). */
export function tierIcon(tier) {
  const spec = TIERS[tier] || TIERS.none;
  return h('span.tier-icon', { role: 'img', 'aria-label': spec.label(), title: spec.label(), dataset: { tier } },
    spec.icon);
}

export class CallerCard {
  constructor(me, { onSelectCase, onChanged }) {
    this.me = me;
    this.onSelectCase = onSelectCase;
    this.onChanged = onChanged;
    this.root = h('aside.caller-card', { 'aria-label': t('caller.card'), 'aria-live': 'polite', hidden: true });
    this.message = h('div.caller-msg', { role: 'status' });
    this.phone = null;
    this.callId = null;
    this.status = null;
    this.data = null;
    this.fallback = null;  // the card's own registration form, kept across re-renders
  }

  /** A `ring` change from the live stream: open the card when the call is this agent's. */
  ring(change) {
    if (!change || this.me.role !== 'agent' || change.agent !== this.me.subject) return;
    const at = Date.parse(change.at || '');
    if (!Number.isNaN(at) && Math.abs(Date.now() - at) > FRESH_MS) return;  // an old call replayed
    const same = this.callId === change.call_id && !this.root.hidden;
    this.show(change.phone, change.call_id, change.status, !same);
  }

  /** Open the card of a number (`callId`: the ringing call, if any). */
  async show(phone, callId = null, status = 'lookup', fresh = true) {
    if (fresh) { fill(this.message); this.fallback = null; }
    this.view = 'card';
    this.root.dataset.view = 'card';
    this.phone = phone || null;
    this.callId = callId;
    this.status = status;
    this.root.hidden = false;
    this.root.dataset.phone = this.phone || '';
    this.root.dataset.call = callId || '';
    this.root.dataset.status = status;
    if (!this.phone) { this.data = null; this.render(); return; }
    try {
      this.data = await api(`/api/v1/callers/${encodeURIComponent(this.phone)}`);
      this.phone = this.data.phone;
      this.root.dataset.phone = this.phone;
    } catch (err) {
      this.data = null;
      this.say(errorText(err), true);
    }
    this.render();
  }

  close() {
    this.root.hidden = true;
    this.view = null;
    this.callId = null;
    fill(this.root);
  }

  say(text, bad = false, caseId = null) {
    fill(this.message, h(bad ? 'span.err' : 'span.ok', {}, text, caseId ? h('span.mono', {}, ' ', caseId) : null));
  }

  async reload() {
    if (this.root.hidden) return;
    if (this.view === 'harassment') await this.showHarassment();
    else if (this.phone) await this.show(this.phone, this.callId, this.status, false);
  }

  /** The supervisor's button to the harassment list (none for other roles). */
  supervisorButton() {
    if (!SUPERVISORS.includes(this.me.role)) return null;
    return h('button.secondary', { type: 'button', dataset: { harassment: 'open' }, onclick: () => this.showHarassment() },
      t('caller.harassment.open'));
  }

  /** Blacklisted numbers with their counters, and the separate queue of their recent contacts. */
  async showHarassment() {
    this.view = 'harassment';
    this.root.hidden = false;
    this.root.dataset.view = 'harassment';
    let numbers = [];
    let queue = [];
    try {
      [numbers, queue] = await Promise.all([
        api('/api/v1/customers?tier=blacklisted&limit=50').then((b) => b.items || []),
        api('/api/v1/harassment?limit=30').then((b) => b.items || [])]);
    } catch (err) {
      fill(this.root, h('p.err', {}, errorText(err)));
      return;
    }
    fill(this.root,
      h('header.caller-head', {}, tierIcon('blacklisted'),
        h('div.caller-who', {}, h('div.caller-title', {}, t('caller.harassment.title'))),
        h('button.icon.secondary', { type: 'button', 'aria-label': t('caller.close'), title: t('caller.close'), onclick: () => this.close() }, '×')),
      this.section('caller.harassment.numbers', numbers, (n) => h('li.harassment-number', { dataset: { phone: n.phone, contacts: String(n.contacts) } },
        h('button.link.mono', { type: 'button', onclick: () => this.show(n.phone) }, n.phone), ' ',
        h('b', {}, t('caller.harassment.count', { n: n.contacts })), ' ',
        h('span.muted', {}, when(n.last_contact_at)), ' ', h('span.desc', {}, n.reason))),
      this.section('caller.harassment.queue', queue, (q) => h('li.harassment-contact', { dataset: { phone: q.phone, case: q.case_id || '' } },
        h('span', {}, when(q.at)), ' ', h('span.mono', {}, q.phone), ' ',
        h('b', {}, (CONTACT_KIND[q.kind] || (() => q.kind))()), ' ', h('span', {}, tn('channel', q.channel)),
        q.case_id ? h('button.link.mono', { type: 'button', onclick: () => this.onSelectCase(q.case_id) }, q.case_id) : null)));
  }

  render() {
    const d = this.data || { tier: 'none', cases: [], calls: [], missed_calls: [], messages: [] };
    const tier = d.tier || 'none';
    this.root.dataset.tier = tier;
    fill(this.root,
      h('header.caller-head', {},
        tierIcon(tier),
        h('div.caller-who', {},
          h('div.caller-title', {}, t('caller.title'), ' ', h('span.caller-ring', {}, (RING_STATUS[this.status] || RING_STATUS.lookup)())),
          h('div.caller-phone.mono', {}, this.phone || t('caller.withheld'))),
        h('button.icon.secondary', { type: 'button', 'aria-label': t('caller.close'), title: t('caller.close'), onclick: () => this.close() }, '×')),
      this.notes(d),
      CALLERS.includes(this.me.role) ? h('div.caller-actions', {},
        h('button.primary', { type: 'button', dataset: { callerAction: 'new-case' }, onclick: () => this.newCase() }, t('caller.new_case'))) : null,
      this.message, this.fallback,
      this.section('caller.cases', d.cases, (c) => this.caseRow(c)),
      this.section('caller.calls', d.calls, (c) => h('li.caller-call', { dataset: { call: c.call_id } },
        h('span', {}, when(c.offered_at || c.answered_at || c.abandoned_at || c.ended_at)), ' ',
        h('b', {}, (CALL_STATUS[c.status] || (() => c.status))()), ' ',
        c.agent ? h('span.mono', {}, c.agent) : null, c.case_id ? h('span.mono', {}, ' → ', c.case_id) : null)),
      this.section('caller.missed', d.missed_calls, (m) => h('li.caller-missed', { dataset: { task: m.task_id } },
        h('span', {}, when(m.last_missed_at)), ' ', t('caller.missed_item', { n: m.attempts }), ' ',
        h('b', {}, m.status === 'open' ? t('caller.task_open') : t('caller.task_closed')))),
      this.section('caller.messages', d.messages, (m) => h('li.caller-message', {},
        h('span', {}, when(m.at)), ' ', h('b', {}, tn('channel', m.channel)), ' ', h('span.desc', {}, m.text))),
      REGISTRARS.includes(this.me.role) && this.phone ? this.registryForm(d) : null);
  }

  notes(d) {
    const notes = [];
    const entry = d.customer;
    if (d.tier === 'blacklisted' && entry) {
      notes.push(h('p.caller-note.bad', { dataset: { contacts: String(entry.contacts) } },
        t('caller.blacklisted_note', { n: entry.contacts })));
    }
    if (entry && entry.active && entry.reason) {
      notes.push(h('p.caller-note', {}, t('caller.reason'), ' ', h('span.desc', {}, entry.reason), ' · ',
        t('caller.until', { until: entry.expires_at ? when(entry.expires_at) : t('caller.forever') }), ' · ',
        h('span.mono', {}, entry.set_by || '—')));
    }
    if (d.elder) notes.push(h('p.caller-note', {}, t('caller.elder', { name: d.elder.name })));
    return notes;
  }

  section(key, items, row) {
    const list = items || [];
    return h('section.caller-section', { dataset: { section: key.split('.').slice(1).join('-') } },
      h('h3', {}, t(key, { n: list.length })),
      list.length ? h('ul', {}, list.map(row)) : h('p.muted', {}, t('caller.none')));
  }

  caseRow(c) {
    const call = ((this.data && this.data.calls) || []).find((x) => x.call_id === this.callId);
    const done = Boolean(call && call.case_id === c.case_id);
    const add = c.open && this.callId && CALLERS.includes(this.me.role)
      ? h('button.link', { type: 'button', disabled: done, dataset: { callerAction: 'add', done: String(done) },
        onclick: (e) => this.addToCase(c.case_id, e.currentTarget) }, done ? t('caller.added_short') : t('caller.add'))
      : null;
    return h('li.caller-case', { dataset: { case: c.case_id, open: String(Boolean(c.open)) } },
      h('span.light-dot', { dataset: { light: c.light }, role: 'img', 'aria-label': tn('light', c.light), title: tn('light', c.light) }),
      h('button.link.mono', { type: 'button', onclick: () => this.onSelectCase(c.case_id) }, c.case_id), ' ',
      h('span', {}, tn('status', c.status)), ' · ', h('span', {}, tn('category', c.category)), ' · ',
      h('span', {}, when(c.accepted_at)), c.calls ? h('span.muted', {}, ' · ', t('caller.case_calls', { n: c.calls })) : null,
      ' ', add);
  }

  async addToCase(caseId, button) {
    if (button) button.disabled = true;
    try {
      await api(`/api/v1/callers/${encodeURIComponent(this.phone)}/add-to-case`, { method: 'POST', body: { case_id: caseId, call_id: this.callId } });
      this.say(t('caller.added'), false, caseId);
      if (button) { button.textContent = t('caller.added_short'); button.dataset.done = 'true'; }
      this.onChanged();
    } catch (err) {
      if (button) button.disabled = false;
      this.say(errorText(err), true);
    }
  }

  /** "New case": the registration form takes the event; without it, the card's own small form. */
  async newCase() {
    const detail = { phone: this.phone, call_id: this.callId };
    let landed = true;
    try { await import('./register.js'); } catch { landed = false; }
    document.dispatchEvent(new CustomEvent(REGISTER_EVENT, { detail }));
    if (!landed) this.fallbackForm();
  }

  fallbackForm() {
    const category = h('select', { name: 'category', 'aria-label': t('caller.form.category') },
      ['complaint', 'consultation', 'power_fault', 'report', 'suggestion', 'home_service'].map((c) => h('option', { value: c }, tn('category', c))));
    const name = h('input', { name: 'name', placeholder: t('caller.form.name'), 'aria-label': t('caller.form.name') });
    const address = h('input', { name: 'address', placeholder: t('caller.form.address'), 'aria-label': t('caller.form.address') });
    const description = h('input', { name: 'description', required: true, placeholder: t('caller.form.description'), 'aria-label': t('caller.form.description') });
    const form = h('form.caller-form', { onsubmit: async (e) => {
      e.preventDefault();
      const body = { category: category.value, channel: 'phone', description: description.value,
        caller: { name: name.value || null, phone: this.phone }, address: address.value || null };
      if (this.callId) body.call_id = this.callId;
      try {
        const made = await api('/api/v1/cases', { method: 'POST', body });
        form.remove();
        this.fallback = null;
        this.say(t('caller.created'), false, made.case_id);
        this.onChanged();
        await this.reload();
      } catch (err) { this.say(errorText(err), true); }
    } }, category, name, address, description, h('button.primary', { type: 'submit' }, t('caller.form.save')));
    this.fallback = form;
    this.message.after(form);
    description.focus();
  }

  registryForm(d) {
    const entry = d.customer && d.customer.active ? d.customer : null;
    const tier = h('select', { name: 'tier', 'aria-label': t('caller.registry.tier') },
      SETTABLE.map((value) => h('option', { value }, TIERS[value].label())));
    tier.value = entry ? entry.tier : 'none';
    const reason = h('input', { name: 'reason', placeholder: t('caller.registry.reason'), 'aria-label': t('caller.registry.reason'), value: entry ? entry.reason : '' });
    const expires = h('input', { name: 'expires_at', placeholder: t('caller.registry.expires'), 'aria-label': t('caller.registry.expires') });
    const form = h('form.caller-registry', { onsubmit: async (e) => {
      e.preventDefault();
      const body = { tier: tier.value, reason: reason.value };
      if (expires.value.trim()) body.expires_at = typedInstant(expires.value);
      try {
        await api(`/api/v1/customers/${encodeURIComponent(this.phone)}`, { method: 'PUT', body });
        this.say(t('caller.registry.saved', { tier: TIERS[tier.value].label() }));
        this.onChanged();
      } catch (err) { this.say(errorText(err), true); }
    } }, h('h3', {}, t('caller.registry')), tier, reason, expires, h('button.primary', { type: 'submit' }, t('caller.registry.save')));
    return form;
  }
}

/** The search box: cases by phone, name, address or case id (and the caller card for a number). */
export function searchBox(onSearch) {
  const input = h('input', { type: 'search', name: 'q', placeholder: t('search.placeholder'), 'aria-label': t('search.label') });
  return h('form.search', { role: 'search', onsubmit: (e) => { e.preventDefault(); onSearch(input.value.trim()); } },
    input, h('button.secondary', { type: 'submit' }, t('search.submit')));
}
