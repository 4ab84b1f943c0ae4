// KPI tiles with small charts, the missed-call queue per agent, incidents (storm view).
import { api, ApiError } from './api.js';
import { h, s, fill, ago, label, when } from './util.js';

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
    fill(root, h('div.tile.muted', {}, `KPIs unavailable: ${err.message}`));
    return;
  }
  const k = body.kpis || {};
  const missing = (name) => tile(name, label(name), '—', null, 'no data source yet');
  const ar = k.answer_rate;
  const wait = k.average_wait_s;
  const ab = k.abandoned_per_hour;
  const lights = k.cases_by_light;
  const fcr = k.first_contact_resolution;
  fill(root,
    ar ? tile('answer_rate', 'Answer rate', pct(ar.value), gauge(ar.value, ar.target), `target ≥ ${pct(ar.target)} · ${ar.offered} offered`) : missing('answer_rate'),
    ab ? tile('abandoned_per_hour', 'Abandoned / hour', String(ab.value), bars(ab.series || []), `${ab.total} in 24 h`) : missing('abandoned_per_hour'),
    wait ? tile('average_wait_s', 'Average wait', wait.value === null ? '—' : `${Math.round(wait.value)} s`,
      gauge(wait.value === null ? null : 1 - Math.min(1, wait.value / 120), 0.5), `target ≤ ${wait.target} s`) : missing('average_wait_s'),
    lights ? tile('cases_by_light', 'Open cases by light', String(lights.value), stack(lights.series),
      h('span', {}, h('b.t-red', {}, lights.series.red), ' red · ', h('b.t-yellow', {}, lights.series.yellow), ' yellow · ',
        h('b.t-green', {}, lights.series.green), ' green')) : missing('cases_by_light'),
    fcr ? tile('first_contact_resolution', 'First-contact resolution', pct(fcr.value), gauge(fcr.value, fcr.target),
      `target ≥ ${pct(fcr.target)}`) : missing('first_contact_resolution'),
    k.open_missed_calls ? tile('open_missed_calls', 'Missed calls open', String(k.open_missed_calls.value), null, 'call-backs due') : missing('open_missed_calls'));
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

/** The missed-call queue grouped by agent, with reassignment for dispatchers. */
export async function renderMissed(root, { role, subject, onReassign }) {
  const query = role === 'agent' ? `&agent_id=${encodeURIComponent(subject)}` : '';
  let items;
  try {
    items = await list(`/api/v1/missed-calls?status=open${query}`);
  } catch (err) {
    fill(root, h('div.muted', {}, err.message));
    return;
  }
  if (items === null) { fill(root, h('div.muted', {}, 'Missed-call queue not available.')); return; }
  if (items === 'forbidden') { fill(root, h('div.muted', {}, 'Not shown to this role.')); return; }
  const byAgent = new Map();
  for (const task of items) {
    const agent = task.assigned_to || 'unassigned';
    if (!byAgent.has(agent)) byAgent.set(agent, []);
    byAgent.get(agent).push(task);
  }
  const groups = [...byAgent.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([agent, tasks]) =>
    h('div.agent-group', { 'data-agent': agent },
      h('div.agent-head', {}, h('span', {}, agent), h('span.badge', {}, tasks.length)),
      tasks.map((t) => h('div.task', { 'data-task': t.task_id },
        h('span.mono', {}, t.caller || '—'),
        h('span.muted', {}, `${t.attempts || 1}× · ${ago(t.last_missed_at)}`),
        (role === 'dispatcher' || role === 'admin') ? h('button.link', { onclick: () => onReassign(t) }, 'reassign') : null))));
  fill(root, groups.length ? groups : h('div.muted', {}, 'No open missed calls. 100% called back.'));
}

/** The incidents (clusters of linked cases) of the storm view. */
export async function renderIncidents(root, { onSelectCase }) {
  let items;
  try {
    items = await list('/api/v1/incidents');
  } catch (err) {
    fill(root, h('div.muted', {}, err.message));
    return;
  }
  if (items === null) { fill(root, h('div.muted', {}, 'Incident view not available.')); return; }
  if (items === 'forbidden') { fill(root, h('div.muted', {}, 'Not shown to this role.')); return; }
  fill(root, items.length ? items.map((inc) => h('div.incident', { 'data-incident': inc.incident_id },
    h('div.incident-head', {}, h('span.mono', {}, inc.incident_id), h(`span.status.s-${inc.status}`, {}, label(inc.status))),
    h('div', {}, `${label(inc.category)} · ${inc.district_name || inc.district || ''}`),
    h('div.muted', {}, `${(inc.case_ids || inc.cases || []).length || inc.case_count || 0} cases`,
      inc.cause ? ` · cause: ${inc.cause}` : '', inc.expected_restoration_at ? ` · back ${ago(inc.expected_restoration_at)}` : ''),
    h('div.chips', {}, (inc.case_ids || []).slice(0, 8).map((id) => h('button.chip', { onclick: () => onSelectCase(id) }, id)))))
    : h('div.muted', {}, 'No open incidents.'));
}
