// A dispatcher records an incident's cause and expected restoration time (in-page form; the
// time typed is Beijing time): POST /api/v1/incidents/{id}/cause, an IncidentCauseSet event
// after which every caller of the incident is told.
import { api } from './api.js';
import { h, fill } from './util.js';
import { t, errorText, typedInstant, beijingIso } from './i18n.js';

const WRITERS = ['dispatcher'];
const SHOWN_MS = 8000;
const saved = new Map(); // incident id -> when its cause was saved: the confirmation outlives re-renders

/** The cause form of one incident, or nothing for a role that may not set it or a closed incident. */
export function causeSlot(inc, me, onDone) {
  if (!WRITERS.includes(me.role) || inc.status !== 'open') return null;
  const slot = h('div.incident-cause');
  const button = h('button.link', { type: 'button', 'data-cause': inc.incident_id, onclick: () => open() },
    t(inc.cause ? 'incident_facts.change' : 'incident_facts.set'));
  const open = () => {
    const cause = h('input', { name: 'cause', required: true, 'aria-label': t('incident_facts.cause'),
      placeholder: t('incident_facts.cause'), value: inc.cause || '' });
    const back = h('input', { name: 'expected_restoration_at', type: 'datetime-local', required: true,
      'aria-label': t('incident_facts.back'),
      value: inc.expected_restoration_at ? beijingIso(inc.expected_restoration_at).slice(0, 16) : '' });
    const message = h('span.message', { role: 'status' });
    const form = h('form.incident-facts', { onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api(`/api/v1/incidents/${encodeURIComponent(inc.incident_id)}/cause`, { method: 'POST', body: {
          cause: cause.value.trim(), expected_restoration_at: typedInstant(back.value), expected_version: inc.version } });
        saved.set(inc.incident_id, Date.now());
        fill(slot, h('span.ok', { role: 'status' }, t('incident_facts.saved')));
        onDone();
      } catch (err) {
        fill(message, h('span.err', { title: err.message, 'data-code': err.code || '' }, errorText(err)));
      }
    } },
    h('label', {}, h('span', {}, t('incident_facts.cause')), cause),
    h('label', {}, h('span', {}, t('incident_facts.back')), back),
    h('div.form-buttons', {}, h('button.primary', { type: 'submit' }, t('incident_facts.save')),
      h('button.secondary', { type: 'button', onclick: () => fill(slot, button) }, t('form.cancel'))), message);
    fill(slot, form);
    cause.focus();
  };
  const recent = Date.now() - (saved.get(inc.incident_id) || 0) < SHOWN_MS;
  return fill(slot, button, recent ? h('span.ok', { role: 'status' }, ' ', t('incident_facts.saved')) : null);
}
