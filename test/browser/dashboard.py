"""Drive Chromium over the pimon dashboard for test/integration/test_browser.py.

python3 dashboard.py --url URL --hosts a,b,c --host a --victim c
                     --down-within SECONDS --out DIR [--timeout-scale X]

Steps: the grid shows every host up; a host's page draws charts with
data; back to the grid; then it prints "STEP stop-agent", waits for a
line "go" on stdin (the caller stops the victim's agent meanwhile), and
waits until the grid shows the victim down, first. Screenshots go to DIR.
Any failed expectation: "FAIL: ..." and a non-zero exit.

It needs Debian's chromium, chromium-driver (/usr/bin/chromedriver) and
python3-selenium; PIMON_CHROMIUM and PIMON_CHROMEDRIVER name other
binaries. What the page does is read from chromedriver's logs: the
"performance" log (the DevTools Network events: every request, response
and failure) and the "browser" log (console messages and uncaught errors).
"""

import base64
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = os.environ.get("PIMON_CHROMIUM") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("PIMON_CHROMEDRIVER") or "/usr/bin/chromedriver"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REQUIRED = ["url", "hosts", "host", "victim", "down-within", "out"]

# What the page exposes when a wait times out.
SNAPSHOT_JS = """
const text = (id) => document.getElementById(id) ? document.getElementById(id).textContent : '';
return {
    hash: location.hash,
    status: text('status'),
    cards: Array.from(document.querySelectorAll('.card')).map((c) => c.dataset.host + '=' + c.dataset.state),
    charts: Array.from(document.querySelectorAll('.chart')).map((c) =>
        c.dataset.metric + ':' + c.dataset.points + (c.dataset.error ? ' (' + c.dataset.error + ')' : '')),
    note: text('chart-error'),
};
"""

# Whether every host of arguments[0] has a card in state arguments[1], its badge saying so.
CARDS_IN_STATE_JS = """
return arguments[0].every((n) => {
    const c = Array.from(document.querySelectorAll('.card')).find((e) => e.dataset.host === n);
    return !!c && c.dataset.state === arguments[1] && c.querySelector('.badge').textContent === arguments[1];
});
"""

CPU_CHART_JS = """
const c = document.querySelector('.chart[data-metric="cpu"]');
return !!c && !!c.querySelector('canvas') && Number(c.dataset.points) > 1;
"""

# The values and the since line of the card of host arguments[0].
CARD_JS = """
const c = Array.from(document.querySelectorAll('.card')).find((e) => e.dataset.host === arguments[0]);
const v = {};
for (const m of c.querySelectorAll('.metric'))
    v[m.dataset.metric] = m.querySelector('.value').textContent;
return { values: v, since: c.querySelector('.since').textContent };
"""

CHARTS_JS = """
return Array.from(document.querySelectorAll('.chart')).map((c) => ({
    metric: c.dataset.metric, points: Number(c.dataset.points), width: c.querySelector('.plot').clientWidth,
}));
"""

# Whether the page scrolls sideways (it should not, even on a phone).
OVERFLOWS_X_JS = "return document.documentElement.scrollWidth > window.innerWidth + 1;"


def dumps(v):
    """v as JSON, for messages."""
    return json.dumps(v, ensure_ascii=False)


def param(u, name, kind=float):
    """The query parameter name of the split URL u as kind; NaN (or None) when absent or not a number."""
    vals = urllib.parse.parse_qs(u.query).get(name)
    if kind is str:
        return vals[0] if vals else None
    try:
        return kind(vals[0])
    except (TypeError, ValueError):
        return math.nan


class Failure(Exception):
    """A failed expectation: the message is printed, the exit status is code."""

    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.code = code


def fail(msg, code=1):
    """Stop the run with why."""
    raise Failure(msg, code)


def step(msg):
    """Log a step as it happens."""
    print("step: " + msg, flush=True)


def parse_args(argv):
    """--key value pairs."""
    out = {}
    if len(argv) % 2:
        fail("usage: --url URL --hosts a,b --host a --victim b --down-within S --out DIR")
    for i in range(0, len(argv), 2):
        if not argv[i].startswith("--"):
            fail("usage: --url URL --hosts a,b --host a --victim b --down-within S --out DIR")
        out[argv[i][2:]] = argv[i + 1]
    for k in REQUIRED:
        if not out.get(k):
            fail("missing --" + k)
    return out


class Watch:
    """What the browser reports: problems, and the URL of every series request.

    Chromedriver keeps both logs until read; poll() reads them. A problem is
    an uncaught error, a console error (a failed fetch is judged from its
    response instead), a failed request (but an aborted one), a request to
    anywhere but the server, or an HTTP error (but from /api/v1/alarms).
    """

    def __init__(self, driver):
        self.driver = driver
        self.problems = []
        self.series = []
        self.urls = {}

    def drain(self):
        """Forget what the browser did so far (its start page)."""
        self.driver.get_log("performance")
        self.driver.get_log("browser")
        self.urls.clear()

    def poll(self):
        """Read both logs."""
        for entry in self.driver.get_log("browser"):
            if entry.get("level") != "SEVERE":
                continue
            msg = entry.get("message", "")
            if entry.get("source") == "javascript":
                self.problems.append("page error: " + msg)
            elif "Failed to load resource" not in msg:
                # A failed fetch is judged from its response below, not from the console.
                self.problems.append("console error: " + msg)
        for entry in self.driver.get_log("performance"):
            try:
                outer = json.loads(entry["message"])
            except (KeyError, ValueError):
                continue
            m = outer.get("message", {})
            self.network(outer.get("webview", ""), m.get("method", ""), m.get("params", {}))

    def network(self, view, method, p):
        """One DevTools Network event of the tab view."""
        if method == "Network.requestWillBeSent":
            url = p["request"]["url"]
            self.urls[(view, p["requestId"])] = url
            u = urllib.parse.urlsplit(url)
            if u.hostname not in ("127.0.0.1", "localhost") and u.scheme != "data":
                self.problems.append("request outside the server: " + url)
            if "/series/" in u.path:
                self.series.append(u)
        elif method == "Network.responseReceived":
            r = p["response"]
            # The alarms endpoint may not exist on this server: the page copes.
            if r["status"] >= 400 and urllib.parse.urlsplit(r["url"]).path != "/api/v1/alarms":
                self.problems.append("HTTP %d for %s" % (r["status"], r["url"]))
        elif method == "Network.loadingFailed":
            err = p.get("errorText", "")
            if "ERR_ABORTED" not in err:
                url = self.urls.get((view, p["requestId"]), "(request %s)" % p["requestId"])
                self.problems.append("request failed: %s %s" % (url, err))


class Run:
    """Every step, on one Chromium."""

    def __init__(self, args):
        self.args = args
        self.scale = float(args.get("timeout-scale") or 1)
        self.hosts = args["hosts"].split(",")
        self.driver = None
        self.watch = None

    def T(self, seconds):
        """A deadline's length, scaled for slow builds."""
        return seconds * self.scale

    def start(self, profile):
        """Start chromedriver and Chromium with a fresh profile."""
        # The driver is named, never looked for: selenium-manager would go to the network.
        for what, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                fail("%s is not installed (%s): run tools/deps --test" % (what, path), 2)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in CHROMIUM_ARGS + ["--user-data-dir=" + profile]:
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service(executable_path=CHROMEDRIVER,
                          log_path=os.path.join(self.args["out"], "chromedriver.log"))
        try:
            self.driver = webdriver.Chrome(service=service, options=opts)
        except WebDriverException as e:
            fail("chromium could not start (%s, %s): %s" % (CHROMIUM, CHROMEDRIVER, e.msg), 2)
        self.driver.set_page_load_timeout(self.T(15))
        self.driver.set_script_timeout(self.T(15))
        self.watch = Watch(self.driver)
        # Chromium opens its new-tab page first: leave it, then forget it.
        self.driver.get("about:blank")
        self.watch.drain()

    def js(self, script, *args):
        """Run script in the page, reading the logs meanwhile."""
        v = self.driver.execute_script(script, *args)
        self.watch.poll()
        return v

    def cdp(self, cmd, params=None):
        """A DevTools command to the current tab."""
        return self.driver.execute_cdp_cmd(cmd, params or {})

    def viewport(self, width, height):
        """Size the current tab's viewport, and wait until the page has it."""
        # Not a mobile viewport: that would zoom out to fit a page too wide, hiding it.
        self.cdp("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.wait_for("a viewport of %dx%d" % (width, height),
                      "return window.innerWidth === arguments[0] && window.innerHeight === arguments[1];",
                      [width, height], 5)
        # Two frames: the page has laid itself out at that size and painted it.
        self.driver.execute_async_script(
            "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done()));")

    def until(self, fn, timeout):
        """Poll the logs until fn() is truthy; its last value."""
        deadline = time.monotonic() + self.T(timeout)
        while True:
            self.watch.poll()
            v = fn()
            if v or time.monotonic() > deadline:
                return v
            time.sleep(0.1)

    def snapshot(self):
        """What the page shows, for a failure message."""
        try:
            return self.driver.execute_script(SNAPSHOT_JS)
        except WebDriverException:
            return {}

    def wait_for(self, what, script, args, timeout):
        """Poll a page-side condition until it is truthy, failing with what was awaited."""
        deadline = time.monotonic() + self.T(timeout)
        last = ""
        while True:
            try:
                v = self.js(script, *args)
                if v:
                    return v
            except WebDriverException as e:
                # The page may be navigating: ask again.
                last = " (last error: %s)" % (e.msg or "").splitlines()[0] if e.msg else ""
            if time.monotonic() > deadline:
                fail("timed out after %d ms waiting for %s%s; page: %s"
                     % (round(self.T(timeout) * 1000), what, last,
                        dumps(self.snapshot())))
            time.sleep(0.1)

    def click(self, selector, timeout=5):
        """Click the element selector finds once it is there and clickable."""
        deadline = time.monotonic() + self.T(timeout)
        while True:
            try:
                self.driver.find_element(By.CSS_SELECTOR, selector).click()
                self.watch.poll()
                return
            except WebDriverException as e:
                if time.monotonic() > deadline:
                    fail("could not click %s within %d ms: %s; page: %s"
                         % (selector, round(self.T(timeout) * 1000), (e.msg or "").splitlines()[0],
                            dumps(self.snapshot())))
            time.sleep(0.1)

    def goto(self, url):
        """Load url in the current tab."""
        try:
            self.driver.get(url)
        except WebDriverException as e:
            fail("could not load %s: %s" % (url, e.msg))
        self.watch.poll()

    def screenshot(self, name):
        """The whole page, beyond the viewport, as DIR/name."""
        size = self.cdp("Page.getLayoutMetrics")["cssContentSize"]
        # At least the viewport: the content's size leaves out a scroll bar.
        view = self.js("return [window.innerWidth, window.innerHeight];")
        clip = {"x": 0, "y": 0, "width": max(math.ceil(size["width"]), view[0]),
                "height": max(math.ceil(size["height"]), view[1]), "scale": 1}
        shot = self.cdp("Page.captureScreenshot",
                        {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path = os.path.join(self.args["out"], name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path

    def run(self):
        """Every step; returns the screenshot's path."""
        a = self.args
        host, victim = a["host"], a["victim"]
        self.viewport(1280, 800)
        step("open " + a["url"])
        self.goto(a["url"])
        self.wait_for("hosts %s shown up" % ", ".join(self.hosts), CARDS_IN_STATE_JS, [self.hosts, "up"], 15)
        card = self.js(CARD_JS, host)
        step("card of %s: %s" % (host, dumps(card)))
        v = card["values"]
        pct = r"^\d+(\.\d)?%$"
        if not (re.search(pct, v.get("cpu", "")) and re.search(pct, v.get("mem", ""))
                and re.search(pct, v.get("disk", "")) and re.search(r"^\d+\.\d\d$", v.get("load", ""))
                and re.search(r"^\d+°C$", v.get("temp", ""))):
            fail("the card of %s lacks CPU, memory, disk, temperature or load: %s" % (host, dumps(card)))
        if not re.search(r"worker \d+", card["since"]) or "up for" not in card["since"]:
            fail("the card of %s lacks since or worker: %s" % (host, card["since"]))

        step("open the page of " + host)
        self.click('.card[data-host="%s"]' % host)
        self.wait_for("the URL of %s's page" % host,
                      "return location.hash === '#/host/' + encodeURIComponent(arguments[0]);", [host], 5)
        self.wait_for("a CPU chart drawn with more than one point", CPU_CHART_JS, [], 20)
        charts = self.js(CHARTS_JS)
        step("charts: " + " ".join("%s=%s" % (c["metric"], c["points"]) for c in charts))
        for want in ("cpu", "mem", "load", "disk"):
            if not any(c["metric"] == want for c in charts):
                fail("no %s chart on the host page: %s" % (want, dumps(charts)))
        cpu_width = next(c["width"] for c in charts if c["metric"] == "cpu")
        # The chart has its data, so the request has been logged: read the log until it is there.
        cpu_url = self.until(lambda: next((u for u in self.watch.series if u.path.endswith("/series/cpu")), None),
                             5)
        if not cpu_url:
            fail("no request for the CPU series")
        if not (abs(param(cpu_url, "points") - cpu_width) <= 2 and param(cpu_url, "field", str) == "usage"
                and param(cpu_url, "to") > param(cpu_url, "from")):
            fail("the CPU series request ?%s should ask usage over a window, points about %s"
                 % (cpu_url.query, cpu_width))
        self.screenshot("host.png")

        step("switch to the 1 h window")
        before = len(self.watch.series)
        self.click('.window button[data-window="3600000"]')
        self.wait_for("the 1 h button active",
                      "const b = document.querySelector('.window button.active');"
                      " return !!b && b.dataset.window === '3600000';", [], 5)
        if not self.until(lambda: any(param(u, "to") - param(u, "from") == 3600000
                                      for u in self.watch.series[before:]), 5):
            fail('no series request over one hour after choosing "1 h"')

        step("back to the grid")
        self.driver.back()
        self.wait_for("the grid again", "return location.hash === '' || location.hash === '#/';", [], 5)
        self.wait_for("the grid visible with every host",
                      "return !document.getElementById('fleet').hidden &&"
                      " document.querySelectorAll('.card').length === arguments[0];", [len(self.hosts)], 5)

        print("STEP stop-agent", flush=True)
        go = sys.stdin.readline().strip()
        if go != "go":
            fail('expected "go" on stdin after stopping the agent, got ' + dumps(go))
        t0 = time.monotonic()
        self.wait_for(victim + " shown down", CARDS_IN_STATE_JS, [[victim], "down"], float(a["down-within"]))
        step("%s shown down after %d ms" % (victim, round((time.monotonic() - t0) * 1000)))
        first = self.js("return document.querySelector('.card').dataset.host;")
        if first != victim:
            fail("the down host %s should come first in the grid, not %s" % (victim, first))
        self.js("if (document.activeElement) document.activeElement.blur();")
        self.cdp("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 0, "y": 0})
        # As tall as the content: the picture is for the README.
        self.viewport(1200, 360)
        shot = self.screenshot("dashboard.png")

        step("a phone-sized page does not scroll sideways")
        grid = self.driver.current_window_handle
        self.driver.switch_to.new_window("tab")
        self.viewport(390, 844)
        self.goto(a["url"])
        self.wait_for("cards on the phone-sized page", "return document.querySelectorAll('.card').length > 0;",
                      [], 10)
        if self.js(OVERFLOWS_X_JS):
            fail("the grid scrolls sideways at 390 px wide")
        self.goto(a["url"] + "#/host/" + urllib.parse.quote(host, safe="!~*'()"))
        self.wait_for("a chart on the phone-sized host page",
                      "const c = document.querySelector('.chart[data-metric=\"cpu\"]');"
                      " return !!c && Number(c.dataset.points) > 1;", [], 20)
        if self.js(OVERFLOWS_X_JS):
            fail("the host page scrolls sideways at 390 px wide")
        self.screenshot("phone.png")
        self.driver.close()
        self.driver.switch_to.window(grid)
        self.watch.poll()

        if self.watch.problems:
            fail("the page reported problems:\n  " + "\n  ".join(self.watch.problems))
        return shot


def main():
    try:
        args = parse_args(sys.argv[1:])
        profile = tempfile.mkdtemp(prefix="pimon-chromium-")
        run = Run(args)
        try:
            run.start(profile)
            shot = run.run()
        finally:
            if run.driver:
                try:
                    run.driver.quit()
                except Exception:
                    pass
            shutil.rmtree(profile, ignore_errors=True)
        print("SCREENSHOT " + shot, flush=True)
        return 0
    except Failure as e:
        print("FAIL: " + str(e), flush=True)
        return e.code
    except Exception:
        print("FAIL: " + traceback.format_exc().rstrip(), flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
