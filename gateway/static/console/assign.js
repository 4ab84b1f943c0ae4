// Dispatch choices: the units to pick from (GET /api/v1/units) and the providers suggested for
// the case's category (GET /api/v1/providers/nearest?category=), each with its skills and load.
import { api, ApiError } from './api.js';
import { h, fill } from './util.js';
import { t, tn, errorText } from './i18n.js';

let unitsOnce = null;

/** Every unit a case can go to (asked once per page). */
export function loadUnits() {
  if (!unitsOnce) unitsOnce = api('/api/v1/units').then((body) => body.items || []).catch(() => { unitsOnce = null; return []; });
  return unitsOnce;
}

/** The `to` field of the dispatch form: a list of units, plus the provider chosen from the suggestions. */
export async function assigneeSelect(preset = {}) {
  const units = await loadUnits();
  const select = h('select', { name: 'to', 'aria-label': t('field.to'), required: true },
    h('option', { value: '' }, t('assign.pick')),
    preset.to && preset.kind === 'provider'
      ? h('option', { value: preset.to, dataset: { kind: 'provider' } }, `${preset.name || preset.to} · ${t('assign.provider')}`) : null,
    h('optgroup', { label: t('assign.units') }, units.map((u) => h('option', { value: u.id, dataset: { kind: 'unit' } },
      `${u.name} · ${u.district_name || u.district || ''} · ${t('assign.load', { n: u.load })}`))));
  if (preset.to) select.value = preset.to;
  return select;
}

/** The kind of what the select holds (unit or provider). */
export function kindOf(select) {
  const option = select.selectedOptions && select.selectedOptions[0];
  return (option && option.dataset.kind) || 'unit';
}

function skills(list) {
  return (list || []).map((s) => tn('skill', s)).join('、');
}

/** Fill `root` with the providers suggested for the case; `onPick(provider)` when one is chosen. */
export async function renderSuggestions(root, item, place, { canDispatch, onPick, onFound }) {
  if (!place) {
    fill(root, h('li.muted', {}, t('providers.no_location')));
    onFound([], null);
    return;
  }
  try {
    const query = new URLSearchParams({ lat: place.lat, lon: place.lon, k: 5, category: item.category || '' });
    const found = await api(`/api/v1/providers/nearest?${query}`);
    const items = found.items || [];
    fill(root, items.length ? items.map((p) => h('li', { 'data-provider': p.id },
      h('span', {}, p.name || p.id),
      h('span.muted', {}, t('providers.km', { km: (Number(p.distance_m || 0) / 1000).toFixed(2) })),
      h('span.load', { title: t('assign.load_hint') }, t('assign.load_of', { n: p.load, of: p.capacity })),
      h('div.skills', {}, skills(p.skills)),
      canDispatch ? h('button.link', { type: 'button', onclick: () => onPick(p) }, t('providers.dispatch')) : null))
      : h('li.muted', {}, t(Array.isArray(found.needs) && !found.needs.length ? 'assign.unit_job' : 'providers.none')));
    onFound(items, place);
  } catch (err) {
    const why = err instanceof ApiError && err.status === 404 ? t('providers.unavailable') :
      err instanceof ApiError && err.status === 403 ? t('panel.forbidden') : errorText(err);
    fill(root, h('li.muted', { title: err.message }, why));
    onFound([], null);
  }
}
