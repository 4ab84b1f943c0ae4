// The reports page (报表): pick a report, dates, period and grouping; a bar chart of one column
// (plain SVG drawn here), the table, and CSV / XLSX exports of the same question.
import { api, takeToken, token, ApiError } from './api.js';
import { h, s, fill } from './util.js';
import { loadCatalogue, t, tn, language, errorText, ZONE } from './i18n.js';

/** Reports and their groupings (the first is the default), as the server has them. */
const REPORTS = {
  calls: ['all', 'queue'],
  cases: ['category', 'district', 'channel', 'unit', 'agent', 'all'],
  satisfaction: ['unit', 'agent', 'all'],
  units: ['unit'],
  agents: ['agent'],
};
const PERIODS = ['day', 'week', 'month'];
/** The groupings a token scoped below the city may ask for (the others sum the whole hotline);
 * the case report also by category, channel and in all: the cases its part of the tree holds. */
const SCOPED_GROUPS = ['unit', 'district', 'agent'];
const SCOPED_CASE_GROUPS = ['category', 'channel', 'all'];

/** The reports and groupings this caller may ask for. */
async function reportsFor() {
  const me = await api('/api/v1/me').catch(() => ({}));
  if (!me.scoped) return REPORTS;
  const allowed = (name, g) => SCOPED_GROUPS.includes(g) || (name === 'cases' && SCOPED_CASE_GROUPS.includes(g));
  return Object.fromEntries(Object.entries(REPORTS)
    .map(([name, groups]) => [name, groups.filter((g) => allowed(name, g))])
    .filter(([, groups]) => groups.length));
}

function today() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: ZONE, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
}

/** A rate (a fraction of 1) as people read it: "33.3%". */
function percent(value) {
  return `${(Number(value) * 100).toFixed(1)}%`;
}

function select(name, values, nameOf, label) {
  return h('select', { name, 'aria-label': label }, values.map((v) => h('option', { value: v }, nameOf(v))));
}

class ReportsPage {
  constructor(reports) {
    this.reports = reports;
    this.report = select('report', Object.keys(reports), (v) => tn('report.name', v), t('report.report_label'));
    this.report.value = 'cases';
    this.group = h('select', { name: 'group', 'aria-label': t('report.group_label') });
    this.by = select('by', PERIODS, (v) => tn('report.by', v), t('report.by_label'));
    const day = today();
    this.from = h('input', { type: 'date', name: 'from', value: `${day.slice(0, 8)}01`, 'aria-label': t('report.from') });
    this.to = h('input', { type: 'date', name: 'to', value: day, 'aria-label': t('report.to') });
    this.column = h('select', { name: 'column', 'aria-label': t('report.chart_column') });
    this.status = h('p.muted.status', { role: 'status' });
    this.chart = h('div.report-chart');
    this.table = h('div.report-table');
    this.exports = h('div.report-exports', {},
      [['csv', t('report.export_csv')], ['xlsx', t('report.export_xlsx')]].map(([format, text]) => h('a.export', {
        href: '#', 'data-export': format, onclick: (e) => { e.preventDefault(); this.download(format); } }, text)));
    this.report.onchange = () => { this.groups(); this.load(); };
    for (const el of [this.group, this.by, this.from, this.to]) el.onchange = () => this.load();
    this.column.onchange = () => this.draw();
    this.groups();
    const label = (key, el) => h('label', {}, h('span', {}, t(key)), el);
    fill(document.body,
      h('header.topbar', {}, h('div.brand', {}, h('span.logo', {}, '◎'), 'intake', h('span.sep', {}, '/'),
        h('span.title', {}, t('report.title'))), h('div.top-right', {}, h('a', { href: '/' }, t('report.back')))),
      h('main.reports', {},
        h('section.panel', {}, h('form.report-form', { onsubmit: (e) => { e.preventDefault(); this.load(); } },
          label('report.report_label', this.report), label('report.from', this.from), label('report.to', this.to),
          label('report.by_label', this.by), label('report.group_label', this.group), this.exports), this.status),
        h('section.panel', {}, h('label.chart-pick', {}, h('span', {}, t('report.chart_column')), this.column), this.chart),
        h('section.panel', {}, this.table)));
  }

  groups() {
    fill(this.group, this.reports[this.report.value].map((g) => h('option', { value: g }, tn('report.group', g))));
  }

  query(format) {
    const q = new URLSearchParams({ from: this.from.value, to: this.to.value, by: this.by.value,
      group: this.group.value, format, lang: language() });
    return `/api/v1/reports/${this.report.value}?${q}`;
  }

  async load() {
    fill(this.status, t('report.loading'));
    try {
      this.data = await api(this.query('json'));
      fill(this.status, t('report.rows', { n: this.data.items.length }));
      const first = this.data.columns.indexOf('name') + 1;  // after period, group and name
      const chartable = this.data.columns.slice(first);
      const kept = this.column.value;
      fill(this.column, chartable.map((c, i) => h('option', { value: c }, this.data.headers[i + first])));
      if (chartable.includes(kept)) this.column.value = kept;
      this.render();
    } catch (err) {
      this.data = null;
      fill(this.status, h('span.err', { 'data-code': err.code || '' }, errorText(err)));
      fill(this.chart); fill(this.table);
    }
  }

  render() {
    const { columns, headers, items } = this.data;
    const shown = columns.map((c, i) => [c, headers[i]]).filter(([c]) => c !== 'name');  // in the group's cell
    fill(this.table, h('table', {}, h('thead', {}, h('tr', {}, shown.map(([, x]) => h('th', {}, x)))),
      h('tbody', {}, items.map((item) => h('tr', {}, shown.map(([c]) => h('td', {}, this.cell(item, c))))))));
    this.draw();
  }

  /** A cell as shown: a group by its name (the server's, in the page's language; its key on hover),
   * a rate as a percentage (0.3333: "33.3%", the fraction on hover), other numbers as they are. */
  cell(item, column) {
    const value = item[column];
    if (value === null) return '—';
    if (column === 'group' && item.name) return h('span.group-name', { title: value }, item.name);
    if (this.isRate(column)) return h('span', { title: String(value) }, percent(value));
    return String(value);
  }

  isRate(column) {
    return (this.data.percent || []).includes(column);
  }

  /** Bars of the chosen column: one per row, labelled by period and group. */
  draw() {
    if (!this.data || !this.data.items.length) { fill(this.chart, h('p.muted', {}, t('report.empty'))); return; }
    const column = this.column.value;
    const items = this.data.items;
    const values = items.map((item) => Number(item[column] || 0));
    const top = Math.max(...values, 1e-9);
    const width = 1000;
    const height = 240;
    const step = width / items.length;
    const bars = items.map((item, i) => {
      const barHeight = (values[i] / top) * (height - 40);
      const label = `${item.period} ${item.name || item.group}`.trim();
      const shown = this.isRate(column) ? percent(values[i]) : values[i];
      return s('g', {}, s('rect', { class: 'bar', x: i * step + step * 0.1, y: height - 20 - barHeight,
        width: step * 0.8, height: barHeight, 'data-value': values[i] }, s('title', {}, `${label}: ${shown}`)),
      items.length <= 31 ? s('text', { x: i * step + step / 2, y: height - 6, 'text-anchor': 'middle' }, item.period.slice(5) || item.period) : null);
    });
    fill(this.chart, s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': t('report.chart') },
      s('text', { x: 4, y: 12 }, this.isRate(column) ? percent(top) : String(top)), ...bars));
  }

  /** Fetch the file with the token and save it under the server's name. */
  async download(format) {
    try {
      const response = await fetch(this.query(format), { headers: { Authorization: `Bearer ${token()}` } });
      if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, await response.text());
      const name = (response.headers.get('Content-Disposition') || '').match(/filename="([^"]+)"/);
      const link = h('a', { href: URL.createObjectURL(await response.blob()), download: name ? name[1] : `report.${format}` });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (err) {
      fill(this.status, h('span.err', {}, errorText(err)));
    }
  }
}

await loadCatalogue();
document.title = t('report.page_title');
if (!takeToken()) {
  fill(document.body, h('main.signin', {}, h('div.card', {}, h('p', {}, t('report.signin_first')), h('a', { href: '/' }, t('report.to_signin')))));
} else {
  new ReportsPage(await reportsFor()).load();
}
