/* pimon's dashboard: the fleet grid and each host's charts, drawn from the
 * server's JSON API by polling. Host-provided text only ever reaches the
 * page through textContent. */
'use strict';

(function () {
	const API = '/api/v1';
	const GRID_EVERY_MS = 2000;
	const ALARMS_RETRY_MS = 30000;
	const FETCH_TIMEOUT_MS = 8000;
	// Percent charts end a little above 100 so that the 100% tick shows.
	const PCT_TOP = 103;
	const WINDOWS = [900000, 3600000, 86400000, 604800000];
	const COLORS = ['#4ea1ff', '#f5a524', '#3ecf8e', '#f0616d', '#b18cff', '#2dd4e0', '#f472b6',
		'#e5d04b'];

	const $ = (id) => document.getElementById(id);

	const app = {
		hosts: [],
		hostsAt: 0,
		alarms: [],
		alarmsMissingAt: 0,
		route: { page: 'fleet' },
		windowMs: readWindow(),
		charts: [],
		chartsKey: '',
		chartsGen: 0,
		chartsTimer: 0,
		pollTimer: 0,
	};

	// --- small helpers ---

	// Create an element with a class and text (never HTML).
	function el(tag, cls, text) {
		const e = document.createElement(tag);
		if (cls)
			e.className = cls;
		if (text !== undefined && text !== null)
			e.textContent = String(text);
		return e;
	}

	// The saved chart window, or 15 minutes.
	function readWindow() {
		try {
			const w = Number(localStorage.getItem('pimon.window'));
			if (WINDOWS.includes(w))
				return w;
		} catch (e) { /* storage may be off */ }
		return WINDOWS[0];
	}

	// A number, or null when the value is missing or not finite.
	function num(v) {
		return typeof v === 'number' && isFinite(v) ? v : null;
	}

	// The largest field over the instances of a metric (disks, zones).
	function maxOver(group, field) {
		let best = null;
		if (!group || typeof group !== 'object')
			return null;
		for (const k of Object.keys(group)) {
			const v = num(group[k] && group[k][field]);
			if (v !== null && (best === null || v > best))
				best = v;
		}
		return best;
	}

	// A duration in ms as "42s", "5m 3s", "2h 5m", "3d 4h".
	function fmtDuration(ms) {
		let s = Math.max(0, Math.floor(ms / 1000));
		const d = Math.floor(s / 86400);
		const h = Math.floor((s % 86400) / 3600);
		const m = Math.floor((s % 3600) / 60);
		s %= 60;
		if (d)
			return d + 'd ' + h + 'h';
		if (h)
			return h + 'h ' + m + 'm';
		if (m)
			return m + 'm ' + s + 's';
		return s + 's';
	}

	// A Unix ms time as local date and time.
	function fmtTime(ms) {
		return num(ms) === null ? '-' : new Date(ms).toLocaleString();
	}

	// A percentage for a card: "4.2%", "37%", or "-".
	function fmtPct(v) {
		return num(v) === null ? '-' : (Math.abs(v) < 10 ? v.toFixed(1) : v.toFixed(0)) + '%';
	}

	// Bytes per second in B/s, kB/s, MB/s, GB/s.
	function fmtRate(v) {
		if (num(v) === null)
			return '-';
		const units = ['B/s', 'kB/s', 'MB/s', 'GB/s'];
		let i = 0;
		while (Math.abs(v) >= 1000 && i < units.length - 1) {
			v /= 1000;
			i++;
		}
		const frac = Math.abs(v) < 10 && (i > 0 || v !== Math.round(v));
		return (frac ? v.toFixed(1) : Math.round(v)) + ' ' + units[i];
	}

	// A byte count in kB, MB, GB.
	function fmtBytes(v) {
		if (num(v) === null)
			return '-';
		return fmtRate(v).replace('/s', '');
	}

	// "ok", "warn" or "crit" for a value against two thresholds.
	function level(v, warn, crit) {
		if (num(v) === null)
			return 'none';
		return v >= crit ? 'crit' : v >= warn ? 'warn' : 'ok';
	}

	// A server with server.http.read_token_file wants a token: open the
	// dashboard once as /?token=TOKEN; it is kept for this tab only and
	// taken out of the address bar.
	const TOKEN = (function () {
		const p = new URLSearchParams(location.search);
		const t = p.get('token');
		if (t) {
			sessionStorage.setItem('pimonToken', t);
			history.replaceState(null, '', location.pathname + location.hash);
		}
		return sessionStorage.getItem('pimonToken');
	})();

	// GET a JSON document; throws an Error with .status on HTTP errors.
	async function getJSON(url) {
		const ctl = new AbortController();
		const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
		try {
			const headers = TOKEN ? { Authorization: 'Bearer ' + TOKEN } : {};
			const r = await fetch(url, { cache: 'no-store', signal: ctl.signal, headers });
			if (!r.ok) {
				let msg = 'HTTP ' + r.status;
				try {
					const body = await r.json();
					if (body && body.error)
						msg += ': ' + body.error;
				} catch (e) { /* not JSON */ }
				const err = new Error(msg);
				err.status = r.status;
				throw err;
			}
			return await r.json();
		} finally {
			clearTimeout(timer);
		}
	}

	// --- connection status in the header ---

	// Show whether the last poll reached the server.
	function setStatus(ok, text) {
		const s = $('status');
		s.dataset.state = ok ? 'live' : 'error';
		s.textContent = text;
	}

	// --- polling the fleet ---

	// Fetch hosts (and alarms when the server has them), then redraw.
	async function poll() {
		clearTimeout(app.pollTimer);
		try {
			const hosts = await getJSON(API + '/hosts');
			app.hosts = Array.isArray(hosts) ? hosts : [];
			app.hostsAt = Date.now();
			await pollAlarms();
			setStatus(true, 'live · ' + new Date().toLocaleTimeString());
		} catch (e) {
			setStatus(false, 'server unreachable (' + e.message + ')');
		}
		render();
		app.pollTimer = setTimeout(poll, GRID_EVERY_MS);
	}

	// Fetch active alarms; a server without /alarms is asked again later.
	async function pollAlarms() {
		if (app.alarmsMissingAt && Date.now() - app.alarmsMissingAt < ALARMS_RETRY_MS)
			return;
		try {
			const body = await getJSON(API + '/alarms');
			// Either a list, or {"active": [...], "recent": [...]}.
			const list = Array.isArray(body) ? body : body && Array.isArray(body.active) ? body.active : [];
			app.alarms = list.filter(alarmActive);
			app.alarmsMissingAt = 0;
		} catch (e) {
			if (e.status !== 404 && e.status !== 405)
				throw e;
			app.alarms = [];
			app.alarmsMissingAt = Date.now();
		}
	}

	// Whether an alarm from the API is still firing.
	function alarmActive(a) {
		if (!a || typeof a !== 'object')
			return false;
		if (a.active === false || a.firing === false)
			return false;
		const st = typeof a.state === 'string' ? a.state.toLowerCase() : '';
		return !['ok', 'clear', 'cleared', 'resolved', 'inactive'].includes(st);
	}

	// One line describing an alarm.
	function alarmText(a) {
		const what = a.name || a.rule || a.alarm || a.id || 'alarm';
		let metric = a.metric ? String(a.metric) : '';
		if (metric && a.field)
			metric += '.' + a.field;
		if (metric && a.instance)
			metric += ' [' + a.instance + ']';
		const parts = [String(what).replace(/_/g, ' ')];
		if (metric)
			parts.push(metric);
		if (num(a.value) !== null)
			parts.push('= ' + (Math.round(a.value * 100) / 100));
		const why = a.message || a.reason;
		if (why)
			parts.push('— ' + why);
		return parts.join(' ');
	}

	// --- rendering ---

	// Draw the page the route names.
	function render() {
		renderSummary();
		if (app.route.page === 'host')
			renderHost();
		else
			renderFleet();
	}

	// "3 hosts · 2 up · 1 down" in the header.
	function renderSummary() {
		const up = app.hosts.filter((h) => h.state === 'up').length;
		const down = app.hosts.length - up;
		const s = $('summary');
		s.textContent = '';
		s.append(el('span', '', app.hosts.length + (app.hosts.length === 1 ? ' host' : ' hosts')));
		s.append(el('span', 'count up', up + ' up'));
		const d = el('span', 'count down' + (down ? '' : ' zero'), down + ' down');
		s.append(d);
		if (app.alarms.length)
			s.append(el('span', 'count alarm', app.alarms.length + (app.alarms.length === 1 ? ' alarm' :
				' alarms')));
	}

	// Alarms by host name.
	function alarmsByHost() {
		const m = new Map();
		for (const a of app.alarms) {
			const h = String(a.host || '');
			if (!m.has(h))
				m.set(h, []);
			m.get(h).push(a);
		}
		return m;
	}

	// The grid: down hosts first, then hosts with alarms, then by name.
	function renderFleet() {
		const byHost = alarmsByHost();
		renderAlarms();
		const grid = $('grid');
		const rank = (h) => (h.state !== 'up' ? 0 : byHost.has(h.name) ? 1 : 2);
		const hosts = app.hosts.slice().sort((a, b) =>
			rank(a) - rank(b) || String(a.name).localeCompare(String(b.name)));
		const old = new Map();
		for (const c of grid.children)
			old.set(c.dataset.host, c);
		const keep = new Set();
		for (const h of hosts) {
			const name = String(h.name);
			let card = old.get(name);
			if (!card)
				card = buildCard(name);
			updateCard(card, h, byHost.get(name) || []);
			grid.append(card);
			keep.add(name);
		}
		for (const [name, c] of old)
			if (!keep.has(name))
				c.remove();
		$('empty').hidden = app.hosts.length > 0 || !app.hostsAt;
	}

	// The active alarms above the grid.
	function renderAlarms() {
		const box = $('alarms');
		const list = $('alarm-list');
		list.textContent = '';
		for (const a of app.alarms) {
			const li = el('li');
			li.dataset.level = String(a.level || 'warning');
			const host = el('a', 'alarm-host', a.host || '-');
			if (a.host)
				host.href = '#/host/' + encodeURIComponent(a.host);
			li.append(host, el('span', 'alarm-text', alarmText(a)));
			if (num(a.since) !== null)
				li.append(el('span', 'muted', 'for ' + fmtDuration(Date.now() - a.since)));
			list.append(li);
		}
		box.hidden = app.alarms.length === 0;
		box.dataset.level = app.alarms.some((a) => a.level === 'critical') ? 'critical' : 'warning';
	}

	// An empty card for a host; updateCard fills it.
	function buildCard(name) {
		const card = el('a', 'card');
		card.dataset.host = name;
		card.href = '#/host/' + encodeURIComponent(name);
		const head = el('div', 'card-head');
		head.append(el('span', 'name', name), el('span', 'badge'));
		const metrics = el('div', 'metrics');
		for (const [key, label] of [['cpu', 'CPU'], ['mem', 'Mem'], ['disk', 'Disk'], ['temp', 'Temp'],
			['load', 'Load']]) {
			const m = el('div', 'metric');
			m.dataset.metric = key;
			const bar = el('div', 'bar');
			bar.append(el('span'));
			m.append(el('span', 'label', label), el('span', 'value'), bar);
			metrics.append(m);
		}
		card.append(head, el('div', 'since'), metrics, el('div', 'foot'));
		return card;
	}

	// Set one metric tile of a card.
	function setMetric(card, key, text, pct, lvl) {
		const m = card.querySelector('.metric[data-metric="' + key + '"]');
		m.querySelector('.value').textContent = text;
		m.dataset.level = lvl;
		const fill = m.querySelector('.bar > span');
		fill.style.width = (pct === null ? 0 : Math.max(0, Math.min(100, pct))) + '%';
	}

	// Fill a card from a host of /api/v1/hosts.
	function updateCard(card, h, alarms) {
		const up = h.state === 'up';
		card.dataset.state = up ? 'up' : 'down';
		card.classList.toggle('has-alarm', alarms.length > 0);
		const badge = card.querySelector('.badge');
		badge.textContent = up ? 'up' : 'down';
		badge.dataset.state = up ? 'up' : 'down';
		const since = card.querySelector('.since');
		since.textContent = '';
		const ago = num(h.since) !== null ? fmtDuration(Date.now() - h.since) : '-';
		const sinceText = el('span', '', (up ? 'up for ' : 'down for ') + ago);
		sinceText.title = 'since ' + fmtTime(h.since) + (h.reason ? ' (' + h.reason + ')' : '');
		since.append(sinceText);
		if (!up && h.reason)
			since.append(el('span', 'reason', String(h.reason)));
		if (num(h.worker) !== null && h.worker >= 0)
			since.append(el('span', 'muted', 'worker ' + h.worker));
		const l = h.latest || {};
		const cpu = num(l.cpu && l.cpu.usage);
		const mem = num(l.mem && l.mem.used_pct);
		const disk = maxOver(l.disk, 'used_pct');
		const temp = maxOver(l.temp, 'celsius');
		const load = num(l.load && l.load.load1);
		setMetric(card, 'cpu', fmtPct(cpu), cpu, level(cpu, 75, 90));
		setMetric(card, 'mem', fmtPct(mem), mem, level(mem, 80, 92));
		setMetric(card, 'disk', fmtPct(disk), disk, level(disk, 80, 92));
		setMetric(card, 'temp', temp === null ? '-' : temp.toFixed(0) + '°C', temp, level(temp, 70, 80));
		setMetric(card, 'load', load === null ? '-' : load.toFixed(2), null, 'none');
		const foot = [h.model, h.os].filter((s) => s).map(String);
		card.querySelector('.foot').textContent = foot.join(' · ') || String(h.addr || '');
		card.querySelector('.foot').title = [h.addr, h.kernel, h.version && 'agent ' + h.version]
			.filter((s) => s).join(' · ');
	}

	// --- the host page ---

	// The host the route names, from the last poll, or null.
	function currentHost() {
		return app.hosts.find((h) => String(h.name) === app.route.name) || null;
	}

	// Header, facts and charts of one host.
	function renderHost() {
		const h = currentHost();
		$('host-name').textContent = app.route.name;
		const badge = $('host-state');
		const facts = $('host-facts');
		if (!h) {
			badge.textContent = app.hostsAt ? 'unknown' : '…';
			badge.dataset.state = 'unknown';
			$('host-since').textContent = app.hostsAt ? 'the server does not know this host' : '';
			facts.textContent = '';
			return;
		}
		const up = h.state === 'up';
		badge.textContent = up ? 'up' : 'down';
		badge.dataset.state = up ? 'up' : 'down';
		$('host-since').textContent = (up ? 'up for ' : 'down for ') +
			(num(h.since) !== null ? fmtDuration(Date.now() - h.since) : '-') +
			(h.reason ? ' · ' + h.reason : '');
		facts.textContent = '';
		const rows = [
			['Address', h.addr],
			['Worker', h.worker],
			['Model', h.model],
			['OS', h.os],
			['Kernel', h.kernel],
			['Agent', h.version],
			['Uptime', num(h.uptime_s) !== null ? fmtDuration(h.uptime_s * 1000) : null],
			['Memory', h.latest && h.latest.mem ? fmtBytes(h.latest.mem.total_bytes) : null],
			['Last seen', num(h.last_seen) !== null ? fmtTime(h.last_seen) : null],
		];
		for (const [k, v] of rows) {
			if (v === null || v === undefined || v === '')
				continue;
			const d = el('div');
			d.append(el('dt', '', k), el('dd', '', v));
			facts.append(d);
		}
		ensureCharts(h);
	}

	// The charts a host's latest values call for: one per metric, one line per instance.
	function chartSpecs(h) {
		const l = (h && h.latest) || {};
		const specs = [];
		const keys = (o) => (o && typeof o === 'object' ? Object.keys(o).sort() : []);
		if (l.cpu)
			specs.push({ id: 'cpu', title: 'CPU usage', unit: 'pct', range: [0, PCT_TOP],
				series: [{ metric: 'cpu', field: 'usage', label: 'usage' }] });
		if (l.mem)
			specs.push({ id: 'mem', title: 'Memory used', unit: 'pct', range: [0, PCT_TOP],
				series: [{ metric: 'mem', field: 'used_pct', label: 'used' }] });
		if (l.load)
			specs.push({ id: 'load', title: 'Load (1 min)', unit: 'load',
				series: [{ metric: 'load', field: 'load1', label: 'load1' }] });
		const zones = keys(l.temp);
		if (zones.length)
			specs.push({ id: 'temp', title: 'Temperature', unit: 'celsius',
				series: zones.map((z) => ({ metric: 'temp', field: 'celsius', instance: z, label: z })) });
		const mounts = keys(l.disk);
		if (mounts.length)
			specs.push({ id: 'disk', title: 'Disk used', unit: 'pct', range: [0, PCT_TOP],
				series: mounts.map((m) => ({ metric: 'disk', field: 'used_pct', instance: m, label: m })) });
		// An interface that never moved a byte (a dummy, a bond's spare) gets no chart.
		const used = (n) => num(n && n.rx_bytes) !== 0 || num(n && n.tx_bytes) !== 0;
		for (const i of keys(l.net).filter((k) => used(l.net[k])))
			specs.push({ id: 'net:' + i, title: 'Network ' + i, unit: 'rate',
				series: [
					{ metric: 'net', field: 'rx_bytes_s', instance: i, label: 'rx' },
					{ metric: 'net', field: 'tx_bytes_s', instance: i, label: 'tx' },
				] });
		return specs;
	}

	// Format a value for a chart's unit.
	function fmtUnit(unit, v) {
		if (num(v) === null)
			return '-';
		switch (unit) {
		case 'pct':
			return v.toFixed(1) + '%';
		case 'celsius':
			return v.toFixed(1) + '°C';
		case 'rate':
			return fmtRate(v);
		default:
			return (Math.round(v * 100) / 100).toString();
		}
	}

	// Build the chart cards when the host's set of charts changes.
	function ensureCharts(h) {
		const specs = chartSpecs(h);
		const key = app.route.name + '|' + specs.map((s) => s.id + ':' + s.series.length).join(',');
		if (key === app.chartsKey)
			return;
		destroyCharts();
		app.chartsKey = key;
		const box = $('charts');
		for (const spec of specs) {
			const card = el('section', 'chart');
			card.dataset.metric = spec.id;
			card.dataset.points = '0';
			const head = el('div', 'chart-head');
			head.append(el('h3', '', spec.title));
			const legend = el('div', 'legend');
			head.append(legend);
			const plot = el('div', 'plot');
			card.append(head, plot);
			box.append(card);
			const c = { spec, card, plot, legend, graph: null, data: [], zoomed: false };
			plot.addEventListener('dblclick', () => {
				c.zoomed = false;
				if (c.graph)
					draw(c, c.data);
			});
			app.charts.push(c);
		}
		refreshCharts();
	}

	// Drop every chart (leaving the host page or rebuilding it).
	function destroyCharts() {
		clearTimeout(app.chartsTimer);
		app.chartsGen++;
		for (const c of app.charts)
			if (c.graph)
				c.graph.destroy();
		app.charts = [];
		app.chartsKey = '';
		$('charts').textContent = '';
		$('chart-error').hidden = true;
	}

	// How often charts refresh for a window.
	function chartsEveryMs() {
		return app.windowMs <= 3600000 ? 5000 : 10000;
	}

	// Fetch every chart's series and redraw; then again after a while.
	async function refreshCharts() {
		clearTimeout(app.chartsTimer);
		const gen = ++app.chartsGen;
		const to = Date.now();
		const from = to - app.windowMs;
		let failure = null;
		await Promise.all(app.charts.map(async (c) => {
			try {
				const data = await fetchChart(c, from, to);
				if (gen !== app.chartsGen)
					return;
				c.from = from;
				c.to = to;
				draw(c, data);
				c.card.removeAttribute('data-error');
			} catch (e) {
				if (gen !== app.chartsGen)
					return;
				c.card.dataset.error = e.message;
				failure = failure || e;
			}
		}));
		if (gen !== app.chartsGen)
			return;
		const note = $('chart-error');
		note.hidden = !failure;
		if (failure)
			note.textContent = 'Could not load the time series: ' + failure.message;
		app.chartsTimer = setTimeout(refreshCharts, chartsEveryMs());
	}

	// One chart's series, merged into dygraph rows [Date, v1, v2, ...].
	async function fetchChart(c, from, to) {
		const points = Math.max(20, Math.min(2000, Math.round(c.plot.clientWidth || 600)));
		const name = encodeURIComponent(app.route.name);
		const lists = await Promise.all(c.spec.series.map((s) => {
			const q = new URLSearchParams({ field: s.field, from: String(from), to: String(to),
				points: String(points) });
			if (s.instance !== undefined)
				q.set('instance', s.instance);
			return getJSON(API + '/hosts/' + name + '/series/' + encodeURIComponent(s.metric) + '?' +
				q.toString());
		}));
		return mergeSeries(lists.map((r) => (r && Array.isArray(r.points) ? r.points : [])));
	}

	// Join [[t, v], ...] lists on time; a list without a value at t gives null.
	function mergeSeries(lists) {
		const rows = new Map();
		lists.forEach((pts, i) => {
			for (const p of pts) {
				if (!Array.isArray(p) || num(p[0]) === null)
					continue;
				let row = rows.get(p[0]);
				if (!row) {
					row = new Array(lists.length + 1).fill(null);
					row[0] = p[0];
					rows.set(p[0], row);
				}
				row[i + 1] = num(p[1]);
			}
		});
		return Array.from(rows.values()).sort((a, b) => a[0] - b[0])
			.map((r) => { r[0] = new Date(r[0]); return r; });
	}

	// Draw (or redraw) one chart with rows; sets data-points on its card.
	function draw(c, data) {
		c.data = data;
		const spec = c.spec;
		const opts = {
			file: data.length ? data : [[new Date(c.to || Date.now()), ...spec.series.map(() => null)]],
			labels: ['time', ...spec.series.map((s) => s.label)],
			colors: spec.series.map((_, i) => COLORS[i % COLORS.length]),
			legend: 'never',
			connectSeparatedPoints: true,
			strokeWidth: 1.6,
			fillGraph: spec.series.length === 1,
			fillAlpha: 0.12,
			gridLineColor: 'rgba(255,255,255,0.07)',
			axisLineColor: 'rgba(255,255,255,0.25)',
			axisLabelFontSize: 11,
			includeZero: true,
			highlightCircleSize: 3,
			axes: {
				y: {
					axisLabelWidth: spec.unit === 'rate' ? 64 : 44,
					axisLabelFormatter: (v) => (spec.unit === 'rate' ? fmtRate(v) : spec.unit === 'pct' ?
						v + '%' : String(Math.round(v * 100) / 100)),
				},
			},
			highlightCallback: (e, x, pts) => showLegend(c, x, pts),
			unhighlightCallback: () => showLegend(c, null, null),
			zoomCallback: () => { c.zoomed = true; },
			drawCallback: (g) => { c.card.dataset.points = String(countPoints(c.data)); },
		};
		if (!c.zoomed) {
			opts.dateWindow = [c.from || Date.now() - app.windowMs, c.to || Date.now()];
			opts.valueRange = spec.range ? spec.range : null;
		}
		if (!c.graph)
			c.graph = new Dygraph(c.plot, opts.file, opts);
		else
			c.graph.updateOptions(opts);
		showLegend(c, null, null);
	}

	// Rows that hold at least one value.
	function countPoints(data) {
		return data.filter((r) => r.slice(1).some((v) => v !== null)).length;
	}

	// The legend: values under the cursor, or the latest ones.
	function showLegend(c, x, pts) {
		const spec = c.spec;
		const values = spec.series.map(() => null);
		let when = null;
		if (pts && pts.length) {
			when = x;
			for (const p of pts) {
				const i = spec.series.findIndex((s) => s.label === p.name);
				if (i >= 0)
					values[i] = p.yval;
			}
		} else {
			for (let i = 0; i < spec.series.length; i++)
				for (let r = c.data.length - 1; r >= 0; r--)
					if (c.data[r][i + 1] !== null) {
						values[i] = c.data[r][i + 1];
						break;
					}
		}
		c.legend.textContent = '';
		if (when !== null)
			c.legend.append(el('span', 'when', new Date(when).toLocaleTimeString()));
		spec.series.forEach((s, i) => {
			const item = el('span', 'item');
			const sw = el('i', 'swatch');
			sw.style.backgroundColor = COLORS[i % COLORS.length];
			item.append(sw, el('span', 'key', s.label), el('span', 'val', fmtUnit(spec.unit, values[i])));
			c.legend.append(item);
		});
	}

	// Highlight the chosen window's button.
	function renderWindowButtons() {
		for (const b of document.querySelectorAll('.window button'))
			b.classList.toggle('active', Number(b.dataset.window) === app.windowMs);
	}

	// --- routing ---

	// Read the route from location.hash: "#/" or "#/host/NAME".
	function parseRoute() {
		const m = /^#\/host\/(.+)$/.exec(location.hash);
		if (m) {
			try {
				return { page: 'host', name: decodeURIComponent(m[1]) };
			} catch (e) { /* a malformed escape: show the grid */ }
		}
		return { page: 'fleet' };
	}

	// Switch pages when the hash changes.
	function onRoute() {
		const r = parseRoute();
		const changed = r.page !== app.route.page || r.name !== app.route.name;
		app.route = r;
		$('fleet').hidden = r.page !== 'fleet';
		$('host').hidden = r.page !== 'host';
		if (changed)
			destroyCharts();
		document.title = r.page === 'host' ? r.name + ' · pimon' : 'pimon';
		if (r.page === 'host')
			window.scrollTo(0, 0);
		render();
	}

	// Wire up the page and start polling.
	function start() {
		// The page draws its own legend with textContent: drop dygraphs' (it
		// writes HTML, and sets an inline style the page's CSP refuses).
		if (Dygraph.PLUGINS && Dygraph.Plugins && Dygraph.Plugins.Legend)
			Dygraph.PLUGINS = Dygraph.PLUGINS.filter((p) => p !== Dygraph.Plugins.Legend);
		for (const b of document.querySelectorAll('.window button')) {
			b.addEventListener('click', () => {
				app.windowMs = Number(b.dataset.window);
				try {
					localStorage.setItem('pimon.window', String(app.windowMs));
				} catch (e) { /* storage may be off */ }
				renderWindowButtons();
				for (const c of app.charts)
					c.zoomed = false;
				refreshCharts();
			});
		}
		renderWindowButtons();
		window.addEventListener('hashchange', onRoute);
		document.addEventListener('visibilitychange', () => {
			if (!document.hidden) {
				poll();
				if (app.route.page === 'host' && app.charts.length)
					refreshCharts();
			}
		});
		onRoute();
		poll();
	}

	start();
})();
