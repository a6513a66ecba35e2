// Drive Chromium over the pimon dashboard for test/integration/test_browser.py.
//
// node dashboard.mjs --url URL --hosts a,b,c --host a --victim c
//                    --down-within SECONDS --out DIR [--timeout-scale X]
//
// Steps: the grid shows every host up; a host's page draws charts with
// data; back to the grid; then it prints "STEP stop-agent", waits for a
// line "go" on stdin (the caller stops the victim's agent meanwhile), and
// waits until the grid shows the victim down, first. Screenshots go to DIR.
// Any failed expectation: "FAIL: ..." and a non-zero exit.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const CHROMIUM = process.env.PIMON_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Parse --key value pairs.
function parseArgs(argv) {
	const out = {};
	for (let i = 0; i < argv.length; i += 2) {
		if (!argv[i].startsWith('--') || i + 1 >= argv.length)
			fail('usage: --url URL --hosts a,b --host a --victim b --down-within S --out DIR');
		out[argv[i].slice(2)] = argv[i + 1];
	}
	for (const k of ['url', 'hosts', 'host', 'victim', 'down-within', 'out'])
		if (!out[k])
			fail('missing --' + k);
	return out;
}

// A failed expectation: the message is printed, the exit status is code.
class Failure extends Error {
	constructor(msg, code) {
		super(msg);
		this.code = code;
	}
}

// Stop the run with why.
function fail(msg, code = 1) {
	throw new Failure(msg, code);
}

// Log a step as it happens.
function step(msg) {
	console.log('step: ' + msg);
}

let args, hosts, scale;
const T = (ms) => Math.round(ms * scale);

// Wait for a line on stdin.
function readLine() {
	return new Promise((resolve) => {
		const rl = readline.createInterface({ input: process.stdin });
		rl.once('line', (line) => {
			resolve(line.trim());
			rl.close();
		});
		rl.once('close', () => resolve(''));
	});
}

// Wait for a page-side condition, failing with what was awaited.
async function waitFor(page, what, fn, arg, timeoutMs) {
	try {
		return await page.waitForFunction(fn, arg, { timeout: T(timeoutMs), polling: 100 });
	} catch (e) {
		const snap = await page.evaluate(() => ({
			hash: location.hash,
			status: document.getElementById('status') ? document.getElementById('status').textContent : '',
			cards: Array.from(document.querySelectorAll('.card')).map((c) => c.dataset.host + '=' + c.dataset.state),
			charts: Array.from(document.querySelectorAll('.chart')).map((c) =>
				c.dataset.metric + ':' + c.dataset.points + (c.dataset.error ? ' (' + c.dataset.error + ')' : '')),
			note: document.getElementById('chart-error') ? document.getElementById('chart-error').textContent : '',
		})).catch(() => ({}));
		fail('timed out after ' + T(timeoutMs) + ' ms waiting for ' + what + '; page: ' + JSON.stringify(snap));
	}
}

// Whether the page scrolls sideways (it should not, even on a phone).
async function overflowsX(page) {
	return page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
}

// Run every step; returns the screenshot's path.
async function run() {
	const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pimon-chromium-'));
	let ctx;
	try {
		ctx = await chromium.launchPersistentContext(profile, {
			executablePath: CHROMIUM,
			headless: true,
			args: CHROMIUM_ARGS,
			viewport: { width: 1280, height: 800 },
			timeout: T(30000),
		});
	} catch (e) {
		fs.rmSync(profile, { recursive: true, force: true });
		fail('chromium could not start (' + CHROMIUM + '): ' + e.message, 2);
	}
	const problems = [];
	const seriesUrls = [];
	try {
		const page = ctx.pages()[0] || await ctx.newPage();
		page.on('pageerror', (e) => problems.push('page error: ' + e.message));
		page.on('console', (m) => {
			// A failed fetch is judged from its response below, not from the console.
			if (m.type() === 'error' && !/Failed to load resource/.test(m.text()))
				problems.push('console error: ' + m.text());
		});
		page.on('requestfailed', (r) => {
			if (!/ERR_ABORTED/.test(r.failure() ? r.failure().errorText : ''))
				problems.push('request failed: ' + r.url() + ' ' + (r.failure() ? r.failure().errorText : ''));
		});
		page.on('request', (r) => {
			const u = new URL(r.url());
			if (!['127.0.0.1', 'localhost'].includes(u.hostname) && u.protocol !== 'data:')
				problems.push('request outside the server: ' + r.url());
			if (u.pathname.includes('/series/'))
				seriesUrls.push(u);
		});
		page.on('response', (r) => {
			const u = new URL(r.url());
			// The alarms endpoint may not exist on this server: the page copes.
			if (r.status() >= 400 && u.pathname !== '/api/v1/alarms')
				problems.push('HTTP ' + r.status() + ' for ' + r.url());
		});

		step('open ' + args.url);
		await page.goto(args.url, { timeout: T(15000) });
		await waitFor(page, 'hosts ' + hosts.join(', ') + ' shown up', (names) =>
			names.every((n) => {
				const c = Array.from(document.querySelectorAll('.card')).find((e) => e.dataset.host === n);
				return c && c.dataset.state === 'up' && c.querySelector('.badge').textContent === 'up';
			}), hosts, 15000);
		const card = await page.evaluate((n) => {
			const c = Array.from(document.querySelectorAll('.card')).find((e) => e.dataset.host === n);
			const v = {};
			for (const m of c.querySelectorAll('.metric'))
				v[m.dataset.metric] = m.querySelector('.value').textContent;
			return { values: v, since: c.querySelector('.since').textContent };
		}, args.host);
		step('card of ' + args.host + ': ' + JSON.stringify(card));
		if (!/^\d+(\.\d)?%$/.test(card.values.cpu) || !/^\d+(\.\d)?%$/.test(card.values.mem) ||
			!/^\d+(\.\d)?%$/.test(card.values.disk) || !/^\d+\.\d\d$/.test(card.values.load) || !/^\d+°C$/.test(card.values.temp))
			fail('the card of ' + args.host + ' lacks CPU, memory, disk, temperature or load: ' +
				JSON.stringify(card));
		if (!/worker \d+/.test(card.since) || !/up for/.test(card.since))
			fail('the card of ' + args.host + ' lacks since or worker: ' + card.since);

		step('open the page of ' + args.host);
		await page.click('.card[data-host="' + args.host + '"]');
		await waitFor(page, 'the URL of ' + args.host + "'s page", (n) =>
			location.hash === '#/host/' + encodeURIComponent(n), args.host, 5000);
		await waitFor(page, 'a CPU chart drawn with more than one point', () => {
			const c = document.querySelector('.chart[data-metric="cpu"]');
			return c && c.querySelector('canvas') && Number(c.dataset.points) > 1;
		}, null, 20000);
		const charts = await page.evaluate(() => Array.from(document.querySelectorAll('.chart')).map((c) => ({
			metric: c.dataset.metric, points: Number(c.dataset.points), width: c.querySelector('.plot').clientWidth,
		})));
		step('charts: ' + charts.map((c) => c.metric + '=' + c.points).join(' '));
		for (const want of ['cpu', 'mem', 'load', 'disk'])
			if (!charts.some((c) => c.metric === want))
				fail('no ' + want + ' chart on the host page: ' + JSON.stringify(charts));
		const cpuWidth = charts.find((c) => c.metric === 'cpu').width;
		const cpuUrl = seriesUrls.find((u) => u.pathname.endsWith('/series/cpu'));
		if (!cpuUrl)
			fail('no request for the CPU series');
		const pts = Number(cpuUrl.searchParams.get('points'));
		if (!(Math.abs(pts - cpuWidth) <= 2) || cpuUrl.searchParams.get('field') !== 'usage' ||
			!(Number(cpuUrl.searchParams.get('to')) > Number(cpuUrl.searchParams.get('from'))))
			fail('the CPU series request ' + cpuUrl.search + ' should ask usage over a window, points about ' +
				cpuWidth);
		await page.screenshot({ path: path.join(args.out, 'host.png'), fullPage: true });

		step('switch to the 1 h window');
		const before = seriesUrls.length;
		await page.click('.window button[data-window="3600000"]');
		await waitFor(page, 'the 1 h button active', () =>
			document.querySelector('.window button.active').dataset.window === '3600000', null, 2000);
		const deadline = Date.now() + T(5000);
		while (!seriesUrls.slice(before).some((u) =>
			Number(u.searchParams.get('to')) - Number(u.searchParams.get('from')) === 3600000)) {
			if (Date.now() > deadline)
				fail('no series request over one hour after choosing "1 h"');
			await page.waitForTimeout(100);
		}

		step('back to the grid');
		await page.goBack();
		await waitFor(page, 'the grid again', () => location.hash === '' || location.hash === '#/', null, 5000);
		await waitFor(page, 'the grid visible with every host', (n) =>
			!document.getElementById('fleet').hidden && document.querySelectorAll('.card').length === n,
		hosts.length, 5000);

		console.log('STEP stop-agent');
		const go = await readLine();
		if (go !== 'go')
			fail('expected "go" on stdin after stopping the agent, got ' + JSON.stringify(go));
		const t0 = Date.now();
		const downMs = Number(args['down-within']) * 1000;
		await waitFor(page, args.victim + ' shown down', (n) => {
			const c = Array.from(document.querySelectorAll('.card')).find((e) => e.dataset.host === n);
			return c && c.dataset.state === 'down' && c.querySelector('.badge').textContent === 'down';
		}, args.victim, downMs);
		step(args.victim + ' shown down after ' + (Date.now() - t0) + ' ms');
		const first = await page.evaluate(() => document.querySelector('.card').dataset.host);
		if (first !== args.victim)
			fail('the down host ' + args.victim + ' should come first in the grid, not ' + first);
		await page.evaluate(() => document.activeElement && document.activeElement.blur());
		await page.mouse.move(0, 0);
		// As tall as the content: the picture is for the README.
		await page.setViewportSize({ width: 1200, height: 360 });
		await page.waitForTimeout(300);
		const shot = path.join(args.out, 'dashboard.png');
		await page.screenshot({ path: shot, fullPage: true });

		step('a phone-sized page does not scroll sideways');
		const phone = await ctx.newPage();
		await phone.setViewportSize({ width: 390, height: 844 });
		await phone.goto(args.url, { timeout: T(15000) });
		await waitFor(phone, 'cards on the phone-sized page', () => document.querySelectorAll('.card').length > 0,
			null, 10000);
		if (await overflowsX(phone))
			fail('the grid scrolls sideways at 390 px wide');
		await phone.goto(args.url + '#/host/' + encodeURIComponent(args.host), { timeout: T(15000) });
		await waitFor(phone, 'a chart on the phone-sized host page', () => {
			const c = document.querySelector('.chart[data-metric="cpu"]');
			return c && Number(c.dataset.points) > 1;
		}, null, 20000);
		if (await overflowsX(phone))
			fail('the host page scrolls sideways at 390 px wide');
		await phone.screenshot({ path: path.join(args.out, 'phone.png'), fullPage: true });
		await phone.close();

		if (problems.length)
			fail('the page reported problems:\n  ' + problems.join('\n  '));
		return shot;
	} finally {
		await ctx.close().catch(() => {});
		fs.rmSync(profile, { recursive: true, force: true });
	}
}

try {
	args = parseArgs(process.argv.slice(2));
	scale = Number(args['timeout-scale'] || 1);
	hosts = args.hosts.split(',');
	const shot = await run();
	console.log('SCREENSHOT ' + shot);
	process.exit(0);
} catch (e) {
	console.log('FAIL: ' + (e instanceof Failure ? e.message : e && e.stack ? e.stack : String(e)));
	process.exit(e instanceof Failure ? e.code : 1);
}
