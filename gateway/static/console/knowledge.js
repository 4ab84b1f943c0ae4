// The knowledge page (知识库): search published articles by Chinese text, pinyin or initials, and read one.
import { api, takeToken } from './api.js';
import { h, fill } from './util.js';

const KINDS = { policy: '政策', procedure: '办事指南', faq: '常见问题', outage_notice: '停电公告' };
const STATUSES = { draft: '草稿', in_review: '审核中', approved: '已审核', published: '已发布', withdrawn: '已撤回' };

function page() {
  const input = h('input', { type: 'search', name: 'q', placeholder: '输入问题、拼音或首字母，如 停电 / tingdian / td', 'aria-label': '搜索知识库', autocomplete: 'off' });
  const results = h('ol.results', { 'aria-live': 'polite' });
  const reader = h('article.panel.reader', { 'aria-label': '文章' }, h('p.muted', {}, '选择左侧的文章阅读。'));
  const status = h('p.muted.status');
  fill(document.body,
    h('header.topbar', {}, h('div.brand', {}, h('span.logo', {}, '◎'), 'intake', h('span.sep', {}, '/'),
      h('span.title', {}, '知识库'), h('span.muted', {}, '95598 · 12345')),
    h('div.top-right', {}, h('a', { href: '/' }, '返回工作台'))),
    h('main.kb', {},
      h('section.panel', {}, h('form', { role: 'search', onsubmit: (e) => { e.preventDefault(); search(input.value, results, reader, status); } },
        input, h('button.primary', { type: 'submit' }, '搜索')), status, results),
      reader));
  input.focus();
}

async function search(q, results, reader, status) {
  if (!q.trim()) return;
  fill(status, '搜索中…');
  try {
    const body = await api(`/api/v1/knowledge/search?q=${encodeURIComponent(q.trim())}&limit=20`);
    fill(status, body.items.length ? `找到 ${body.items.length} 篇` : '没有找到相关文章');
    fill(results, body.items.map((item) => h('li', {}, h('button.secondary', {
      'data-article': item.article_id, onclick: () => read(item.article_id, reader),
    }, h('b', {}, item.title), h('div.snippet', {}, item.snippet)))));
  } catch (err) {
    fill(status, `搜索失败：${err.message}`);
  }
}

async function read(id, reader) {
  try {
    const a = await api(`/api/v1/knowledge/articles/${encodeURIComponent(id)}`);
    const c = a.published || a.content;
    fill(reader,
      h('h2', {}, c.title),
      h('p.muted', {}, `${KINDS[c.kind] || c.kind} · ${STATUSES[a.status] || a.status} · 第 ${a.published_revision || a.revision} 版（共 ${a.revisions.length} 版）· ${id}`),
      c.short_answer ? h('p.answer', {}, h('b', {}, '简要答复：'), c.short_answer) : null,
      h('pre', {}, c.body),
      c.keywords.length ? h('p.muted', {}, `关键词：${c.keywords.join('、')}`) : null);
  } catch (err) {
    fill(reader, h('p.err', {}, `无法打开文章：${err.message}`));
  }
}

if (!takeToken()) {
  fill(document.body, h('main.signin', {}, h('div.card', {}, h('p', {}, '请先在工作台登录。'), h('a', { href: '/' }, '前往登录'))));
} else {
  page();
}

