// Plain citizen form: loads the Open311 services, posts the form to requests.json.
// The portal's channel key comes from the page address (?api_key=...). Every word comes
// from the console's message catalogue (Simplified Chinese by default, `?lang=en`).
import { t, tn, loadCatalogue, translatePage, typedInstant, language, switchLanguage, LANGUAGES } from '/console/i18n.js';

const base = '/open311/v2/';
const $ = (id) => document.getElementById(id);
const form = $('form');
const select = $('service_code');
const attrs = $('attributes');
const result = $('result');
let idempotencyKey = null;

function show(text, ok) {
  result.hidden = false;
  result.className = ok ? 'ok' : 'err';
  result.textContent = text;
}

function option(value, text) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = text;
  return o;
}

function field(attr) {
  const label = document.createElement('label');
  label.textContent = tn('citizen.attr', attr.code) + (attr.required ? t('citizen.required') : '');
  let input;
  if (attr.values && attr.values.length) {
    input = document.createElement('select');
    attr.values.forEach((v) => input.appendChild(option(v.key, tn('citizen.value', v.key))));
  } else {
    input = document.createElement('input');
    if (attr.datatype === 'datetime') input.type = 'datetime-local';
  }
  input.name = `attribute[${attr.code}]`;
  // `required` marks what a citizen should give (*), never a reason to refuse the report: what is
  // missing is listed on the case for an agent to complete (CONTRACT; Open311 takes it without)
  label.appendChild(input);
  return label;
}

function loadDefinition() {
  attrs.textContent = '';
  fetch(`${base}services/${encodeURIComponent(select.value)}.json`)
    .then((r) => (r.ok ? r.json() : { attributes: [] }))
    .then((d) => d.attributes.forEach((a) => attrs.appendChild(field(a))));
}

async function main() {
  await loadCatalogue();
  translatePage();
  const picker = $('lang');
  LANGUAGES.forEach((lang) => picker.appendChild(option(lang, tn('lang', lang))));
  picker.value = language();
  picker.setAttribute('aria-label', t('lang.switch'));
  picker.addEventListener('change', () => switchLanguage(picker.value));
  $('api_key').value = new URLSearchParams(location.search).get('api_key') || '';

  const list = await (await fetch(`${base}services.json`)).json();
  list.forEach((s) => select.appendChild(option(s.service_code, tn('category', s.service_code))));
  loadDefinition();
  select.addEventListener('change', loadDefinition);

  $('use_location').addEventListener('change', (e) => {
    if (!e.target.checked || !navigator.geolocation) return;
    navigator.geolocation.getCurrentPosition((p) => {
      $('lat').value = p.coords.latitude.toFixed(6);
      $('long').value = p.coords.longitude.toFixed(6);
    });
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!$('address_string').value.trim() && !$('lat').value) { show(t('citizen.need_place'), false); return; }
    idempotencyKey = idempotencyKey || (Date.now().toString(36) + Math.random().toString(36).slice(2));
    const body = new URLSearchParams(new FormData(form));
    // a time the citizen picks is Beijing time
    for (const input of form.querySelectorAll('input[type=datetime-local]')) if (input.value) body.set(input.name, typedInstant(input.value));
    fetch(`${base}requests.json`, { method: 'POST', body, headers: { 'Idempotency-Key': idempotencyKey } })
      .then((r) => r.json().catch(() => null).then((b) => [r, b]))
      .then(([r, answer]) => {
        if (r.ok) { show(t('citizen.accepted', { id: answer[0].service_request_id }), true); idempotencyKey = null; form.reset(); return; }
        // Open311 refuses with its error array; a proxy or the gateway (413, 429, 503) may answer
        // {"error": {...}} or no JSON at all. Nothing was taken: the same key goes with the next try.
        const problems = Array.isArray(answer) ? answer
          : [{ code: (answer && answer.error && answer.error.code) || String(r.status),
               description: (answer && answer.error && answer.error.message) || r.statusText }];
        const key = r.status === 413 ? 'citizen.too_large'
          : r.status === 429 || r.status >= 500 ? 'citizen.unavailable' : 'citizen.refused';
        show(t(key, { status: problems.map((x) => x.code).join(', ') }), false);
        result.title = problems.map((x) => x.description).join('; ');
      })
      .catch(() => show(t('citizen.network'), false));
  });
}

main();
