// KPI tiles with small charts, the missed-call queue per agent, incidents (storm view).
import { api, ApiError } from './api.js';
import { h, s, fill, ago, when } from './util.js';
import { t, tn, errorText } from './i18n.js';
import { causeSlot } from './incident_facts.js';

const pct = (v) => (v === null || v === undefined ? '—' : `${(v * 100).toFixed(1)}%`);

function gauge(value, target) {
  const width = 120;
  const filled = value === null || value === undefined ? 0 : Math.max(0, Math.min(1, value)) * width;
  const good = value !== null && value !== undefined && value >= target;
  return s('svg', { class: 'spark', viewBox: `0 0 ${width} 10`, preserveAspectRatio: 'none' },
    s('rect', { x: 0, y: 2, width, height: 6, rx: 3, class: 'track' }),
    s('rect', { x: 0, y: 2, width: filled, height: 6, rx: 3, class: good ? 'good' : 'bad' }),
    s('line', { x1: target * width, x2: target * width, y1: 0, y2: 10, class: 'target' }));
}

function bars(series) {
  const max = Math.max(1, ...series.map((p) => p.count));
  const width = 120;
  const step = width / Math.max(1, series.length);
  return s('svg', { class: 'spark', viewBox: `0 0 ${width} 24`, preserveAspectRatio: 'none' },
    series.map((p, i) => s('rect', { x: i * step + 0.5, width: Math.max(1, step - 1), y: 24 - (p.count / max) * 22,
      height: (p.count / max) * 22 + 0.01, class: 'bar' }, s('title', {}, `${when(p.hour)}: ${p.count}`))));
}

function stack(lights) {
  const total = Math.max(1, lights.green + lights.yellow + lights.red);
  let x = 0;
  const parts = ['red', 'yellow', 'green'].map((k) => {
    const w = (lights[k] / total) * 120;
    const rect = s('rect', { x, y: 2, width: w, height: 6, class: `l-${k}` });
    x += w;
    return rect;
  });
  return s('svg', { class: 'spark', viewBox: '0 0 120 10', preserveAspectRatio: 'none' }, parts);
}

function tile(key, title, value, chart, note) {
  return h('div.tile', { 'data-kpi': key }, h('div.tile-title', {}, title), h('div.tile-value', {}, value),
    chart || h('div.spark-gap'), h('div.tile-note', {}, note || ''));
}

/** Render the KPI tiles from GET /api/v1/kpis. */
export async function renderKpis(root) {
  let body;
  try {
    body = await api('/api/v1/kpis');
  } catch (err) {
    fill(root, h('div.tile.muted', { title: err.message }, t('kpi.unavailable', { error: errorText(err) })));
    return;
  }
  const k = body.kpis || {};
  const missing = (name) => tile(name, t(`kpi.${name}`), '—', null, t('kpi.no_source'));
  const ar = k.answer_rate;
  const wait = k.average_wait_s;
  const ab = k.abandoned_per_hour;
  const lights = k.cases_by_light;
  const fcr = k.first_contact_resolution;
  fill(root,
    ar ? tile('answer_rate', t('kpi.answer_rate'), pct(ar.value), gauge(ar.value, ar.target),
      t('kpi.answer_rate_note', { target: pct(ar.target), n: ar.offered })) : missing('answer_rate'),
    ab ? tile('abandoned_per_hour', t('kpi.abandoned_per_hour'), String(ab.value), bars(ab.series || []),
      t('kpi.abandoned_note', { n: ab.total })) : missing('abandoned_per_hour'),
    wait ? tile('average_wait_s', t('kpi.average_wait_s'), wait.value === null ? '—' : t('kpi.seconds', { n: Math.round(wait.value) }),
      gauge(wait.value === null ? null : 1 - Math.min(1, wait.value / 120), 0.5), t('kpi.wait_note', { n: wait.target })) : missing('average_wait_s'),
    lights ? tile('cases_by_light', t('kpi.cases_by_light'), String(lights.value), stack(lights.series),
      h('span', {}, ...['red', 'yellow', 'green'].flatMap((k, i) => [i ? ' · ' : '', h(`b.t-${k}`, {}, lights.series[k]), ' ', tn('light', k)])))
      : missing('cases_by_light'),
    fcr ? tile('first_contact_resolution', t('kpi.first_contact_resolution'), pct(fcr.value), gauge(fcr.value, fcr.target),
      t('kpi.target_at_least', { target: pct(fcr.target) })) : missing('first_contact_resolution'),
    k.open_missed_calls ? tile('open_missed_calls', t('kpi.open_missed_calls'), String(k.open_missed_calls.value), null, t('kpi.missed_note'))
      : missing('open_missed_calls'));
}

async function list(path) {
  try {
    return (await api(path)).items || [];
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    if (err instanceof ApiError && err.status === 403) return 'forbidden';
    throw err;
  }
}

/** An in-page form to give a call-back task to another agent (no browser dialogs). */
function reassignForm(task, root, me) {
  const slot = h('div.reassign');
  const open = () => {
    const input = h('input', { name: 'agent_id', required: true, 'aria-label': t('missed.agent'), placeholder: t('missed.agent') });
    const message = h('span.message', { role: 'status' });
    const form = h('form.inline', { onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api(`/api/v1/missed-calls/${encodeURIComponent(task.task_id)}/reassign`, {
          method: 'POST', body: { agent_id: input.value.trim(), expected_version: task.version } });
        fill(slot, button);
        await renderMissed(root, me);
      } catch (err) {
        fill(message, h('span.err', { title: err.message }, errorText(err)));
      }
    } }, input, h('button.primary', { type: 'submit' }, t('missed.reassign_send')),
    h('button.secondary', { type: 'button', onclick: () => fill(slot, button) }, t('form.cancel')), message);
    fill(slot, form);
    input.focus();
  };
  const button = h('button.link', { type: 'button', onclick: open }, t('missed.reassign'));
  return fill(slot, button);
}

/** The missed-call queue grouped by agent, with reassignment for dispatchers. */
export async function renderMissed(root, me) {
  const { role, subject } = me;
  const query = role === 'agent' ? `&agent_id=${encodeURIComponent(subject)}` : '';
  let items;
  try {
    items = await list(`/api/v1/missed-calls?status=open${query}`);
  } catch (err) {
    fill(root, h('div.muted', { title: err.message }, errorText(err)));
    return;
  }
  if (items === null) { fill(root, h('div.muted', {}, t('missed.unavailable'))); return; }
  if (items === 'forbidden') { fill(root, h('div.muted', {}, t('panel.forbidden'))); return; }
  if (root.querySelector('form.inline input:focus')) return; // do not wipe a reassignment being typed
  const byAgent = new Map();
  for (const task of items) {
    const agent = task.assigned_to || '';
    if (!byAgent.has(agent)) byAgent.set(agent, []);
    byAgent.get(agent).push(task);
  }
  const groups = [...byAgent.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([agent, tasks]) =>
    h('div.agent-group', { 'data-agent': agent },
      h('div.agent-head', {}, agent ? h('span.mono', {}, agent) : h('span', {}, t('missed.unassigned')), h('span.badge', {}, tasks.length)),
      tasks.map((task) => h('div.task', { 'data-task': task.task_id },
        h('span.mono', {}, task.caller || '—'),
        h('span.muted', {}, t('missed.attempts', { n: task.attempts || 1, ago: ago(task.last_missed_at) })),
        (role === 'dispatcher' || role === 'admin') ? reassignForm(task, root, me) : null))));
  fill(root, groups.length ? groups : h('div.muted', {}, t('missed.none')));
}

/** The incidents (clusters of linked cases) of the storm view. */
export async function renderIncidents(root, { onSelectCase, me = { role: '' }, districtNames = new Map() }) {
  let items;
  try {
    items = await list('/api/v1/incidents');
  } catch (err) {
    fill(root, h('div.muted', { title: err.message }, errorText(err)));
    return;
  }
  if (items === null) { fill(root, h('div.muted', {}, t('incidents.unavailable'))); return; }
  if (items === 'forbidden') { fill(root, h('div.muted', {}, t('panel.forbidden'))); return; }
  if (root.querySelector('form.incident-facts')) return; // do not wipe a cause being typed
  const again = () => renderIncidents(root, { onSelectCase, me, districtNames });
  fill(root, items.length ? items.map((inc) => h('div.incident', { 'data-incident': inc.incident_id },
    h('div.incident-head', {}, h('span.mono', {}, inc.incident_id), h(`span.status.s-${inc.status}`, {}, tn('incident_status', inc.status))),
    h('div', {}, `${tn('category', inc.category)} · ${inc.district_name || districtNames.get(inc.district) || inc.district || ''}`),
    h('div.muted', {}, t('incidents.cases', { n: (inc.case_ids || inc.cases || []).length || inc.case_count || 0 }),
      inc.cause ? ` · ${t('incidents.cause', { cause: inc.cause })}` : '',
      inc.expected_restoration_at ? ` · ${t('incidents.back', { when: when(inc.expected_restoration_at) })}` : ''),
    h('div.chips', {}, (inc.case_ids || []).slice(0, 8).map((id) => h('button.chip', { onclick: () => onSelectCase(id) }, id))),
    causeSlot(inc, me, again)))
    : h('div.muted', {}, t('incidents.none')));
}
