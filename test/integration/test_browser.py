"""The dashboard: its embedded files over HTTP, and Chromium driving it live.

The browser test runs test/browser/dashboard.py against the real server and
three real agents: Selenium drives Debian's Chromium through chromedriver
(chromium, chromium-driver and python3-selenium, which `tools/deps --test`
installs). The script runs under this Python if it can import selenium, else
under /usr/bin/python3 (Debian's selenium is for Debian's Python). It fails,
never skips, when Chromium, chromedriver or selenium cannot run
(PIMON_CHROMIUM and PIMON_CHROMEDRIVER name other binaries). The screenshot
is kept in build/meson-logs/dashboard.png; PIMON_SCREENSHOT_TO=PATH also
copies it there (e.g. docs/dashboard.png).
"""

import importlib.util
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from harness import BUILD, FIXTURES, SLOW, check, run_tests

BROWSER_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "..", "browser"))
DRIVER = os.path.join(BROWSER_DIR, "dashboard.py")
SYSTEM_PYTHON = "/usr/bin/python3"

TYPES = {
    ".js": "application/javascript",
    ".css": "text/css",
    ".png": "image/png",
}


def fetch(env, path, method="GET", headers=None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    url = "http://127.0.0.1:%d%s" % (env.http_port, path)
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5 * SLOW) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def asset_links(html):
    """Every src= and href= of the page."""
    return re.findall(r'(?:src|href)="([^"]*)"', html)


def test_page_and_assets_served_from_the_binary(env):
    """GET / and every asset it links: 200, the right type, nothing from outside."""
    env.start_server(workers=1)
    status, headers, body = fetch(env, "/")
    check(status == 200, "GET / answered %d" % status)
    check(headers["Content-Type"] == "text/html; charset=utf-8",
          "GET / content type %r" % headers["Content-Type"])
    check(headers["Cache-Control"] == "no-cache", "GET / cache control %r" % headers["Cache-Control"])
    html = body.decode("utf-8")
    check('name="viewport"' in html, "no viewport meta in the page")
    check(not re.search(r"https?://", html, re.I),
          "the page names an outside URL: %s" % re.findall(r"https?://\S+", html, re.I))
    links = [l for l in asset_links(html) if not l.startswith(("#", "data:"))]
    check(len(links) >= 4, "the page links only %s" % links)
    names = set()
    for link in links:
        check(re.match(r"^/assets/[\w.-]+\?v=[0-9a-f]{16}$", link), "unversioned link %r" % link)
        status, h, data = fetch(env, link)
        name = link.split("?")[0].rsplit("/", 1)[1]
        names.add(name)
        want = TYPES[os.path.splitext(name)[1]]
        check(status == 200 and len(data) > 0, "GET %s answered %d, %d bytes" % (link, status, len(data)))
        check(h["Content-Type"] == want, "%s content type %r, want %r" % (link, h["Content-Type"], want))
        check("immutable" in h["Cache-Control"], "%s cache control %r" % (link, h["Cache-Control"]))
        check(b"sourceMappingURL" not in data, "%s points at a source map it does not serve" % link)
        # Without this build's version the asset is still served, but revalidated.
        status, h, data2 = fetch(env, link.split("?")[0])
        check(status == 200 and data2 == data and h["Cache-Control"] == "no-cache",
              "unversioned %s: %d %r" % (link, status, h["Cache-Control"]))
    check({"app.js", "style.css", "dygraph.min.js", "dygraph.min.css"} <= names,
          "the page does not load the app and the charting library: %s" % sorted(names))


def test_page_revalidates_and_answers_head(env):
    """ETag and If-None-Match give 304; HEAD gives the length and no body."""
    env.start_server(workers=1)
    status, headers, body = fetch(env, "/")
    etag = headers["ETag"]
    check(etag and etag.startswith('"') and etag.endswith('"'), "ETag %r" % etag)
    status, h, data = fetch(env, "/", headers={"If-None-Match": etag})
    check(status == 304 and data == b"", "If-None-Match: %d with %d bytes" % (status, len(data)))
    status, h, data = fetch(env, "/", headers={"If-None-Match": '"stale"'})
    check(status == 200 and data == body, "a stale ETag got %d" % status)
    status, h, data = fetch(env, "/", method="HEAD")
    check(status == 200 and data == b"" and h["Content-Length"] == str(len(body)),
          "HEAD /: %d, %d bytes, Content-Length %r" % (status, len(data), h["Content-Length"]))
    check("default-src 'none'" in h["Content-Security-Policy"], "CSP %r" % h["Content-Security-Policy"])
    status, h, data = fetch(env, "/", method="POST")
    check(status == 405, "POST / answered %d" % status)


def test_unknown_path_is_a_json_404(env):
    """Paths the dashboard does not own fall through to the listener's JSON 404."""
    env.start_server(workers=1)
    for path in ["/nope", "/assets/nope.js", "/index.htm", "/assets/"]:
        status, h, data = fetch(env, path)
        check(status == 404, "GET %s answered %d" % (path, status))
        check(h["Content-Type"] == "application/json" and b'"error"' in data,
              "GET %s: %r %r" % (path, h["Content-Type"], data))


def selenium_python():
    """A Python that can import selenium: this one, else Debian's; None if neither."""
    if importlib.util.find_spec("selenium"):
        return sys.executable
    if os.access(SYSTEM_PYTHON, os.X_OK) and subprocess.run(
            [SYSTEM_PYTHON, "-c", "import selenium"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL).returncode == 0:
        return SYSTEM_PYTHON
    return None


class Driver:
    """The browser script, its output read line by line on a thread."""

    def __init__(self, argv, log_path):
        """Start the script with its output also copied to log_path.

        It runs in a process group of its own, with chromedriver and
        Chromium, so that close() can end all of them.
        """
        self.lines = queue.Queue()
        self.log = open(log_path, "w")
        self.out = []
        self.p = subprocess.Popen(argv, cwd=BROWSER_DIR, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        """Queue each line of output; None at the end."""
        for line in self.p.stdout:
            self.log.write(line)
            self.log.flush()
            self.out.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, prefix, deadline):
        """The first line starting with prefix; None once the script ended."""
        while True:
            left = deadline - time.monotonic()
            check(left > 0, "the browser script said no %r in time:\n%s" % (prefix, self.text()))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                return None
            print("  | " + line)
            if line.startswith(prefix):
                return line

    def finish(self, deadline):
        """Wait for the exit status, killing the script past the deadline."""
        try:
            return self.p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            check(False, "the browser script did not finish in time:\n%s" % self.text())

    def text(self):
        """The last lines of output, for failure messages."""
        return "\n".join(self.out[-60:])

    def kill(self):
        """Kill the script and what it started."""
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()

    def close(self):
        """Kill the script if it still runs, and anything it left; close the log."""
        self.kill()
        self.log.close()


def test_dashboard_in_chromium(env):
    """Three live hosts, one host's charts, then one agent stopped and shown down."""
    python = selenium_python()
    check(python, "selenium is importable neither by %s nor by %s: run tools/deps --test"
          % (sys.executable, SYSTEM_PYTHON))
    timeout, poll = 2.0, 2.0
    env.start_server(workers=4, interval=0.5, timeout=timeout, hb_interval=0.5)
    names = ["pi-kitchen", "pi-garage", "pi-attic"]
    # One agent reads a Raspberry Pi's /sys: a model and a thermal zone.
    agents = {
        "pi-kitchen": env.start_agent("pi-kitchen", sys_root=os.path.join(FIXTURES, "pi4", "sys")),
        "pi-garage": env.start_agent("pi-garage"),
        "pi-attic": env.start_agent("pi-attic"),
    }
    env.wait_hosts_up(names)
    victim = "pi-attic"
    # Down after the heartbeat timeout, shown at the next grid refresh; the rest is margin.
    down_within = timeout + poll + 8
    argv = [python, "-u", DRIVER, "--url", "http://127.0.0.1:%d/" % env.http_port,
            "--hosts", ",".join(names), "--host", "pi-kitchen", "--victim", victim,
            "--down-within", str(down_within), "--out", env.dir, "--timeout-scale", str(SLOW)]
    drv = Driver(argv, os.path.join(env.dir, "browser.log"))
    try:
        deadline = time.monotonic() + 150 * SLOW
        line = drv.wait_line("STEP stop-agent", deadline)
        if line is None:
            code = drv.finish(deadline)
            check(False, "the browser script stopped early (status %s):\n%s" % (code, drv.text()))
        agents[victim].signal(signal.SIGSTOP)
        drv.p.stdin.write("go\n")
        drv.p.stdin.flush()
        shot = drv.wait_line("SCREENSHOT ", deadline)
        code = drv.finish(deadline)
        check(code == 0 and shot, "the browser script failed (status %s):\n%s" % (code, drv.text()))
    finally:
        drv.close()
        agents[victim].signal(signal.SIGCONT)
    path = shot.split(" ", 1)[1]
    check(os.path.getsize(path) > 10000, "the screenshot %s is nearly empty" % path)
    keep = os.path.join(BUILD, "meson-logs", "dashboard.png")
    if os.path.isdir(os.path.dirname(keep)):
        shutil.copyfile(path, keep)
        print("  screenshot: %s" % keep)
    print("  screenshot: %s" % path)
    dest = os.environ.get("PIMON_SCREENSHOT_TO")
    if dest:
        shutil.copyfile(path, dest)
        print("  screenshot copied to %s" % dest)


if __name__ == "__main__":
    run_tests(globals())
