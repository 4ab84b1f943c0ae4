// The knowledge page (知识库): search published articles by Chinese text, pinyin or initials, and read one.
import { api, takeToken } from './api.js';
import { h, fill } from './util.js';
import { errorText, loadCatalogue, t, tn } from './i18n.js';

function page() {
  const input = h('input', { type: 'search', name: 'q', placeholder: t('kb.search_placeholder', { pinyin: 'tingdian', initials: 'td' }), 'aria-label': t('kb.search_label'), autocomplete: 'off' });
  const results = h('ol.results', { 'aria-live': 'polite' });
  const reader = h('article.panel.reader', { 'aria-label': t('kb.article') }, h('p.muted', {}, t('kb.pick')));
  const status = h('p.muted.status');
  fill(document.body,
    h('header.topbar', {}, h('div.brand', {}, h('span.logo', {}, '◎'), 'intake', h('span.sep', {}, '/'),
      h('span.title', {}, t('kb.title')), h('span.muted', {}, '95598 · 12345')),
    h('div.top-right', {}, h('a', { href: '/' }, t('kb.back')))),
    h('main.kb', {},
      h('section.panel', {}, h('form', { role: 'search', onsubmit: (e) => { e.preventDefault(); search(input.value, results, reader, status); } },
        input, h('button.primary', { type: 'submit' }, t('kb.search'))), status, results),
      reader));
  input.focus();
}

async function search(q, results, reader, status) {
  if (!q.trim()) return;
  fill(status, t('kb.searching'));
  try {
    const body = await api(`/api/v1/knowledge/search?q=${encodeURIComponent(q.trim())}&limit=20`);
    fill(status, body.items.length ? t('kb.found', { n: body.items.length }) : t('kb.none'));
    fill(results, body.items.map((item) => h('li', {}, h('button.secondary', {
      'data-article': item.article_id, onclick: () => read(item.article_id, reader),
    }, h('b', {}, item.title), h('div.snippet', {}, item.snippet)))));
  } catch (err) {
    fill(status, t('kb.search_failed', { error: errorText(err) }));
    status.title = err.message || ''; // the server's English stays in a tooltip, as everywhere
  }
}

async function read(id, reader) {
  try {
    const a = await api(`/api/v1/knowledge/articles/${encodeURIComponent(id)}`);
    const c = a.published || a.content;
    fill(reader,
      h('h2', {}, c.title),
      h('p.muted', {}, t('kb.meta', { kind: tn('article_kind', c.kind), status: tn('article_status', a.status),
        revision: a.published_revision || a.revision, revisions: a.revisions.length, id })),
      c.short_answer ? h('p.answer', {}, h('b', {}, t('kb.short_answer')), c.short_answer) : null,
      h('pre', {}, c.body),
      c.keywords.length ? h('p.muted', {}, t('kb.keywords', { words: c.keywords.join('、') })) : null);
  } catch (err) {
    fill(reader, h('p.err', { title: err.message || '' }, t('kb.open_failed', { error: errorText(err) })));
  }
}

await loadCatalogue();
document.title = t('kb.page_title');
if (!takeToken()) {
  fill(document.body, h('main.signin', {}, h('div.card', {}, h('p', {}, t('kb.signin_first')), h('a', { href: '/' }, t('kb.to_signin')))));
} else {
  page();
}
