// The map: district polygons drawn as SVG in web-mercator world units, cases coloured
// by light, providers near the selected case; optional raster tiles by configuration.
import { h, s, fill, callerOf, placeOf } from './util.js';
import { t, tn, names, errorText } from './i18n.js';

const WORLD = 256 * 1024; // world size in map units (zoom-10 pixels)
const LIGHTS = { green: '#22c55e', yellow: '#eab308', red: '#ef4444' };

/** WGS84 to web-mercator map units. */
export function project(lon, lat) {
  const sin = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return [((lon + 180) / 360) * WORLD, (0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI)) * WORLD];
}

/** Web-mercator map units back to WGS84 [lat, lon] (the inverse of `project`). */
export function unproject(x, y) {
  const lon = (x / WORLD) * 360 - 180;
  const lat = (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / WORLD))) * 180) / Math.PI;
  return [lat, lon];
}

function rings(geometry) {
  if (!geometry) return [];
  if (geometry.type === 'Polygon') return [geometry.coordinates];
  if (geometry.type === 'MultiPolygon') return geometry.coordinates;
  return [];
}

function pathOf(geometry, bounds) {
  let d = '';
  let largest = { area: -1, box: null };
  for (const polygon of rings(geometry)) {
    polygon.forEach((ring, index) => {
      const box = [Infinity, Infinity, -Infinity, -Infinity];
      ring.forEach(([lon, lat], i) => {
        const [x, y] = project(lon, lat);
        d += `${i ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)}`;
        box[0] = Math.min(box[0], x); box[1] = Math.min(box[1], y);
        box[2] = Math.max(box[2], x); box[3] = Math.max(box[3], y);
      });
      d += 'Z';
      bounds[0] = Math.min(bounds[0], box[0]); bounds[1] = Math.min(bounds[1], box[1]);
      bounds[2] = Math.max(bounds[2], box[2]); bounds[3] = Math.max(bounds[3], box[3]);
      const area = (box[2] - box[0]) * (box[3] - box[1]);
      if (index === 0 && area > largest.area) largest = { area, box };
    });
  }
  return { d, labelAt: largest.box ? [(largest.box[0] + largest.box[2]) / 2, (largest.box[1] + largest.box[3]) / 2] : null };
}

/** The map panel. */
export class MapView {
  constructor(root, { tiles, onSelect, onArea, onPick, heat }) {
    this.root = root;
    this.heat = heat; // (query string) => cells of GET /api/v1/heatmap, for the roles that may read it
    this.tiles = tiles || '';
    this.onSelect = onSelect;
    this.onArea = onArea;
    this.onPick = onPick; // a click (not a drag) on the map picks that point: onPick(lat, lon)
    this.areas = new Map();
    this.view = [0, 0, WORLD, WORLD];
    this.svg = s('svg', { class: 'map-svg', role: 'img', 'aria-label': t('map.title') });
    this.tileLayer = s('g', { class: 'tiles' });
    this.districtLayer = s('g', { class: 'districts' });
    this.labelLayer = s('g', { class: 'labels' });
    this.providerLayer = s('g', { class: 'providers' });
    this.caseLayer = s('g', { class: 'cases' });
    this.heatLayer = s('g', { class: 'heat' });
    this.svg.append(this.tileLayer, this.districtLayer, this.heatLayer, this.labelLayer, this.providerLayer, this.caseLayer);
    this.areaSelect = h('select.area', { 'aria-label': t('map.area'), onchange: () => { this.picked = true; this.showArea(this.areaSelect.value); } });
    this.legend = h('div.legend', {},
      ...Object.entries(LIGHTS).map(([name, color]) => h('span', {}, h('i', { style: `background:${color}` }), tn('light', name))),
      h('span', {}, h('i.provider-key'), t('map.provider')));
    this.tooltip = h('div.map-tip', { hidden: true });
    fill(root,
      h('div.map-tools', {},
        this.areaSelect,
        h('button.icon', { title: t('map.zoom_in'), onclick: () => this.zoom(0.6) }, '+'),
        h('button.icon', { title: t('map.zoom_out'), onclick: () => this.zoom(1 / 0.6) }, '−'),
        h('button.icon', { title: t('map.fit'), onclick: () => this.showArea(this.areaSelect.value) }, '⤢'),
        this.heat ? h('button.icon.heat-toggle', { title: t('report.heat'), 'aria-label': t('report.heat'), onclick: () => this.toggleHeat() }, '▦') : null),
      this.heatForm = h('form.heat-form', { hidden: true, onsubmit: (e) => { e.preventDefault(); this.loadHeat(); } }),
      this.svg, this.legend, this.tooltip);
    this.bindPanZoom();
    new ResizeObserver(() => this.apply()).observe(root);
  }

  /** Draw the district polygons, grouped into areas (cities). */
  setDistricts(collection) {
    this.areas.clear();
    const paths = [];
    const labels = [];
    for (const feature of collection.features || []) {
      const props = feature.properties || {};
      const area = props.city || String(props.adcode || '').slice(0, 4);
      if (!this.areas.has(area)) this.areas.set(area, { bounds: [Infinity, Infinity, -Infinity, -Infinity], count: 0 });
      const entry = this.areas.get(area);
      const { d, labelAt } = pathOf(feature.geometry, entry.bounds);
      entry.count += 1;
      paths.push(s('path', { d, class: 'district', 'data-adcode': props.adcode, 'data-name': props.name },
        s('title', {}, `${props.name || ''} ${props.adcode || ''}`)));
      if (labelAt) labels.push(s('text', { x: labelAt[0], y: labelAt[1], class: 'district-label' }, props.name || ''));
    }
    fill(this.districtLayer, paths);
    fill(this.labelLayer, labels);
    fill(this.areaSelect, [...this.areas.keys()].map((name) => h('option', { value: name }, name)));
    this.root.classList.toggle('empty', paths.length === 0);
    const widest = [...this.areas.entries()].sort((a, b) => b[1].count - a[1].count)[0];
    if (widest) this.showArea(widest[0]);
  }

  /** The area holding a point, or null. */
  areaOf(lat, lon) {
    const [x, y] = project(lon, lat);
    for (const [name, area] of this.areas) {
      const [x0, y0, x1, y1] = area.bounds;
      if (x >= x0 && x <= x1 && y >= y0 && y <= y1) return name;
    }
    return null;
  }

  /** Until the user picks an area, frame the one with the most cases. */
  followCases(items) {
    if (this.picked) return;
    const counts = new Map();
    for (const item of items) {
      const place = placeOf(item);
      const area = place && this.areaOf(place.lat, place.lon);
      if (area) counts.set(area, (counts.get(area) || 0) + 1);
    }
    const busiest = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
    if (busiest && busiest[0] !== this.areaSelect.value) this.showArea(busiest[0]);
  }

  /** Frame one area. */
  showArea(name) {
    const area = this.areas.get(name);
    if (!area) return;
    this.areaSelect.value = name;
    const [x0, y0, x1, y1] = area.bounds;
    const pad = Math.max(x1 - x0, y1 - y0) * 0.04;
    this.view = [x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad];
    this.apply();
    if (this.onArea) this.onArea(name);
  }

  /** Frame the area holding this point. */
  showPoint(lat, lon) {
    const name = this.areaOf(lat, lon);
    if (name && this.areaSelect.value !== name) this.showArea(name);
  }

  /** Place case markers coloured by light. */
  setCases(items, selectedId) {
    this.cases = items;
    this.selectedId = selectedId;
    const markers = [];
    for (const item of items) {
      const place = placeOf(item);
      if (!place) continue;
      const [x, y] = project(place.lon, place.lat);
      const selected = item.case_id === selectedId;
      markers.push(s('circle', {
        cx: x, cy: y, class: `case-dot light-${item.light || 'green'}${selected ? ' selected' : ''}`,
        'data-case': item.case_id, fill: LIGHTS[item.light] || LIGHTS.green,
        onclick: () => this.onSelect(item.case_id),
        onmouseenter: (e) => this.tip(e, `${item.case_id} · ${tn('category', item.category)} · ${tn('status', item.status)}` +
          (callerOf(item).name ? ` · ${callerOf(item).name}` : '')),
        onmouseleave: () => { this.tooltip.hidden = true; },
      }));
    }
    markers.sort((a, b) => a.classList.contains('selected') - b.classList.contains('selected'));
    fill(this.caseLayer, markers);
    this.followCases(items);
    this.scaleMarks();
  }

  /** Show providers near the selected case (empty list clears them). */
  setProviders(items, origin) {
    const marks = [];
    for (const p of items) {
      if (p.lat === undefined || p.lon === undefined) continue;
      const [x, y] = project(Number(p.lon), Number(p.lat));
      if (origin) {
        const [ox, oy] = project(origin.lon, origin.lat);
        marks.push(s('line', { x1: ox, y1: oy, x2: x, y2: y, class: 'provider-link' }));
      }
      marks.push(s('rect', { x, y, class: 'provider-dot', 'data-provider': p.id,
        onmouseenter: (e) => this.tip(e, `${p.name || p.id} · ${t('map.metres', { n: Math.round(p.distance_m || 0) })}`),
        onmouseleave: () => { this.tooltip.hidden = true; } }));
    }
    fill(this.providerLayer, marks);
    if (origin) this.frame([origin, ...items.filter((p) => p.lat !== undefined)]);
    this.scaleMarks();
  }

  /** Frame these points (at least about 2 km across). */
  frame(points) {
    const xy = points.map((p) => project(Number(p.lon), Number(p.lat)));
    const xs = xy.map(([x]) => x);
    const ys = xy.map(([, y]) => y);
    const minimum = 12; // map units, about 2 km at these latitudes
    const w = Math.max(Math.max(...xs) - Math.min(...xs), minimum);
    const hgt = Math.max(Math.max(...ys) - Math.min(...ys), minimum);
    const cx = (Math.max(...xs) + Math.min(...xs)) / 2;
    const cy = (Math.max(...ys) + Math.min(...ys)) / 2;
    this.view = [cx - w * 0.75, cy - hgt * 0.75, w * 1.5, hgt * 1.5];
    this.picked = true;
    this.apply();
  }

  tip(event, text) {
    const box = this.root.getBoundingClientRect();
    this.tooltip.textContent = text;
    this.tooltip.style.left = `${event.clientX - box.left + 12}px`;
    this.tooltip.style.top = `${event.clientY - box.top + 12}px`;
    this.tooltip.hidden = false;
  }

  unitsPerPixel() {
    const width = this.svg.clientWidth || 600;
    const height = this.svg.clientHeight || 400;
    return Math.max(this.view[2] / width, this.view[3] / height);
  }

  scaleMarks() {
    const u = this.unitsPerPixel();
    for (const dot of this.caseLayer.children) dot.setAttribute('r', (dot.classList.contains('selected') ? 8 : 5.5) * u);
    for (const mark of this.providerLayer.querySelectorAll('rect')) {
      const size = 8 * u;
      const x = Number(mark.getAttribute('data-x') ?? mark.getAttribute('x'));
      const y = Number(mark.getAttribute('data-y') ?? mark.getAttribute('y'));
      mark.setAttribute('data-x', x); mark.setAttribute('data-y', y);
      mark.setAttribute('x', x - size / 2); mark.setAttribute('y', y - size / 2);
      mark.setAttribute('width', size); mark.setAttribute('height', size);
    }
    this.labelLayer.setAttribute('font-size', 11 * u);
  }

  apply() {
    this.svg.setAttribute('viewBox', this.view.map((v) => v.toFixed(2)).join(' '));
    this.scaleMarks();
    this.drawTiles();
  }

  zoom(factor, cx, cy) {
    const [x, y, w, hgt] = this.view;
    const px = cx ?? x + w / 2;
    const py = cy ?? y + hgt / 2;
    this.view = [px - (px - x) * factor, py - (py - y) * factor, w * factor, hgt * factor];
    this.apply();
  }

  bindPanZoom() {
    this.svg.addEventListener('wheel', (e) => {
      e.preventDefault();
      const pt = this.toMap(e);
      this.zoom(e.deltaY > 0 ? 1.2 : 1 / 1.2, pt[0], pt[1]);
    }, { passive: false });
    let drag = null;
    this.svg.addEventListener('pointerdown', (e) => {
      if (e.target.closest('.case-dot')) return;
      drag = { x: e.clientX, y: e.clientY, view: [...this.view] };
      this.svg.setPointerCapture(e.pointerId);
    });
    this.svg.addEventListener('pointermove', (e) => {
      if (!drag) return;
      const u = this.unitsPerPixel();
      this.view = [drag.view[0] - (e.clientX - drag.x) * u, drag.view[1] - (e.clientY - drag.y) * u, drag.view[2], drag.view[3]];
      this.apply();
    });
    this.svg.addEventListener('pointerup', (e) => {
      const still = drag && Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) < 5;
      drag = null;
      if (still && this.onPick) this.onPick(...unproject(...this.toMap(e)));
    });
  }

  toMap(event) {
    const box = this.svg.getBoundingClientRect();
    const u = this.unitsPerPixel();
    const [x, y, w, hgt] = this.view;
    const offsetX = (box.width * u - w) / 2;
    const offsetY = (box.height * u - hgt) / 2;
    return [x - offsetX + (event.clientX - box.left) * u, y - offsetY + (event.clientY - box.top) * u];
  }

  /** Show or hide the heat map of cases by category and its period and category pickers. */
  toggleHeat() {
    if (!this.heatForm.hidden) {
      this.heatForm.hidden = true;
      fill(this.heatLayer);
      return;
    }
    const day = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai' }).format(new Date());
    const change = () => this.loadHeat();
    this.heatFrom = h('input', { type: 'date', name: 'heat_from', value: `${day.slice(0, 8)}01`, 'aria-label': t('report.from'), onchange: change });
    this.heatTo = h('input', { type: 'date', name: 'heat_to', value: day, 'aria-label': t('report.to'), onchange: change });
    this.heatCategory = h('select', { name: 'heat_category', 'aria-label': t('report.heat_category'), onchange: change },
      h('option', { value: '' }, t('report.heat_all')), names('category').map((c) => h('option', { value: c }, tn('category', c))));
    this.heatNote = h('span.muted.heat-note', { role: 'status' });
    fill(this.heatForm, this.heatCategory, this.heatFrom, this.heatTo, this.heatNote);
    this.heatForm.hidden = false;
    this.loadHeat();
  }

  async loadHeat() {
    const q = new URLSearchParams({ from: this.heatFrom.value, to: this.heatTo.value });
    if (this.heatCategory.value) q.set('category', this.heatCategory.value);
    try {
      this.setHeat((await this.heat(q.toString())).items || []);
    } catch (err) {
      fill(this.heatLayer);
      fill(this.heatNote, errorText(err));
    }
  }

  /** Cells of about 1 km shaded by how many cases were accepted there (all categories summed). */
  setHeat(items) {
    const cells = new Map();
    for (const c of items) {
      const key = `${c.lat},${c.lon}`;
      const cell = cells.get(key) || { lat: c.lat, lon: c.lon, count: 0, categories: [] };
      cell.count += c.count;
      cell.categories.push(`${tn('category', c.category)} ${c.count}`);
      cells.set(key, cell);
    }
    const top = Math.max(1, ...[...cells.values()].map((c) => c.count));
    const rects = [...cells.values()].map((c) => {
      const [x0, y0] = project(c.lon - 0.005, c.lat + 0.005);
      const [x1, y1] = project(c.lon + 0.005, c.lat - 0.005);
      return s('rect', { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: 'heat-cell', 'data-count': c.count,
        'fill-opacity': (0.2 + 0.7 * (c.count / top)).toFixed(2) }, s('title', {}, `${t('report.heat_cases', { n: c.count })} · ${c.categories.join('、')}`));
    });
    fill(this.heatLayer, rects);
    fill(this.heatNote, t('report.heat_cases', { n: items.reduce((sum, c) => sum + c.count, 0) }));
  }

  /** Raster tiles under the polygons, only when INTAKE_MAP_TILES names a URL template. */
  drawTiles() {
    if (!this.tiles) return;
    const u = this.unitsPerPixel();
    const z = Math.max(0, Math.min(18, Math.round(Math.log2(WORLD / 256 / u))));
    const size = WORLD / 2 ** z;
    const [x, y, w, hgt] = this.view;
    const images = [];
    for (let tx = Math.floor(x / size); tx <= Math.floor((x + w) / size) && images.length < 64; tx += 1) {
      for (let ty = Math.floor(y / size); ty <= Math.floor((y + hgt) / size) && images.length < 64; ty += 1) {
        const href = this.tiles.replace('{z}', z).replace('{x}', tx).replace('{y}', ty);
        images.push(s('image', { href, x: tx * size, y: ty * size, width: size, height: size, class: 'map-tile' }));
      }
    }
    fill(this.tileLayer, images);
  }
}
