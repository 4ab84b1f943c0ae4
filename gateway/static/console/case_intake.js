// What a case's detail shows of its intake: every field taken (account number, customer type,
// fault, service time, special needs, the call it came with) and the recordings of its calls,
// playable in the page (GET /api/v1/cases/{id}/calls; links from INTAKE_RECORDING_URL).
import { api, ApiError } from './api.js';
import { h, fill, when } from './util.js';
import { t, tn, errorText } from './i18n.js';

const CALL_STATUS = {
  offered: () => t('rec.offered'), answered: () => t('rec.answered'),
  abandoned: () => t('rec.abandoned'), ended: () => t('rec.ended'),
};
const CHOICE = (v) => (v ? tn('citizen.value', v, 'reg.as_given') : null);

/** (label, value) of each intake field: those given, and those the case still misses. */
function rows(item) {
  const fault = item.fault || {};
  const missing = new Set(item.missing_fields || []);
  return [
    ['account_number', t('fact.account_number'), item.account_number],
    ['customer_type', t('fact.customer_type'), CHOICE(item.customer_type)],
    ['fault.type', t('fact.fault_type'), CHOICE(fault.type)],
    ['fault.began_at', t('fact.fault_began_at'), fault.began_at && !Number.isNaN(Date.parse(fault.began_at)) ? when(fault.began_at) : fault.began_at],
    ['fault.scope', t('fact.fault_scope'), CHOICE(fault.scope)],
    ['service_time', t('fact.service_time'), item.service_time && !Number.isNaN(Date.parse(item.service_time)) ? when(item.service_time) : item.service_time],
    ['special_needs', t('fact.special_needs'), item.special_needs],
    ['call_id', t('fact.call_id'), item.call_id && h('span.mono', {}, item.call_id)],
  ].filter(([path, , value]) => (value !== null && value !== undefined && value !== '') || missing.has(path));
}

/** The intake facts as `<dt>`/`<dd>` pairs for the detail's list (a missing one says so). */
export function intakeFacts(item) {
  return rows(item).flatMap(([path, label, value]) => [
    h('dt', { dataset: { intake: path } }, label),
    h('dd', { dataset: { intake: path } }, value === null || value === undefined || value === ''
      ? h('span.err', {}, t('reg.missing')) : value)]);
}

/** The recordings of a case's calls, filled into `root` (nothing for a role that may not hear them). */
export async function renderRecordings(root, caseId) {
  let items;
  try {
    items = (await api(`/api/v1/cases/${encodeURIComponent(caseId)}/calls`)).items || [];
  } catch (err) {
    if (err instanceof ApiError && (err.status === 403 || err.status === 404)) { fill(root); return; }
    fill(root, h('h3', {}, t('rec.title')), h('p.muted', { title: err.message }, errorText(err)));
    return;
  }
  fill(root, h('h3', {}, t('rec.title')), items.length ? h('ul.recordings', {}, items.map((call) => {
    const url = call.recording_url;
    const status = CALL_STATUS[call.status];
    return h('li.recording', { dataset: { call: call.call_id } },
      h('div', {}, h('span.mono', {}, call.call_id), ' · ', status ? status() : call.status,
        ' · ', h('span.muted', {}, when(call.answered_at || call.offered_at || call.ended_at))),
      url ? [h('audio', { controls: true, preload: 'none', src: url, 'aria-label': t('rec.audio', { id: call.call_id }) }),
        h('a.rec-link', { href: url, target: '_blank', rel: 'noopener noreferrer' }, t('rec.open'))]
        : h('span.muted.rec-none', {}, t('rec.no_link')));
  })) : h('p.muted.no-recordings', {}, t('rec.none')));
}
