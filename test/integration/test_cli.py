"""Command lines and configuration files of the real binaries."""

import os
import re
import subprocess

from harness import (AGENT_BIN, CTL_BIN, FIXTURES, SERVER_BIN, SLOW, TestSkip, check, free_port,
                     run_tests)

CONFIGS = os.path.join(FIXTURES, "config")
EXAMPLE = os.path.join(FIXTURES, "..", "..", "etc", "pimon.cfg")


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30 * SLOW)


def bad_file(env, name, text):
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_bad_configs_exit_2_with_file_and_line(env):
    cases = {
        "syntax.cfg": ("server: {\n  workers = 4\n  listen = ;\n};\n", 3),
        "unknown.cfg": ("server: {\n  workers = 4;\n  wrokers = 2;\n};\n", 3),
        "type.cfg": ("agent: {\n\n  server = 8080;\n};\n", 3),
        "range.cfg": ("server: {\n  workers = 0;\n};\n", 2),
        "range2.cfg": ("server:\n{\n  workers = 100000;\n};\n", 3),
        "float.cfg": ("server: { workers = 2.5; };\n", 1),
    }
    for name, (text, line) in cases.items():
        path = bad_file(env, name, text)
        for binary in (SERVER_BIN, AGENT_BIN):
            for argv in ([binary, "-t", "-c", path], [binary, "-c", path]):
                r = run(argv)
                check(r.returncode == 2, "%s %s: status %d" % (argv[0], name, r.returncode))
                check(re.search(r"%s:%d: " % (re.escape(path), line), r.stderr),
                      "%s %s: no %s:%d in %r" % (os.path.basename(binary), name, path, line,
                                                 r.stderr))


def test_missing_named_file_exits_2(env):
    path = os.path.join(env.dir, "nope.cfg")
    for binary in (SERVER_BIN, AGENT_BIN, CTL_BIN):
        argv = [binary, "-c", path] + (["hosts"] if binary == CTL_BIN else ["-t"])
        r = run(argv)
        check(r.returncode == 2 and path in r.stderr, "%s: %d %r" % (binary, r.returncode,
                                                                     r.stderr))


def test_good_configs_check_ok(env):
    for path in [EXAMPLE, os.path.join(CONFIGS, "good_custom.cfg")]:
        for binary in (SERVER_BIN, AGENT_BIN):
            r = run([binary, "-t", "-c", path])
            check(r.returncode == 0, "%s -t %s: %d %s" % (binary, path, r.returncode, r.stderr))


def test_every_fixture_bad_config_refused(env):
    bad = sorted(f for f in os.listdir(CONFIGS) if f.startswith("bad_"))
    check(len(bad) >= 10, "only %d bad fixtures" % len(bad))
    for f in bad:
        path = os.path.join(CONFIGS, f)
        r = run([SERVER_BIN, "-t", "-c", path])
        check(r.returncode == 2 and r.stderr.startswith("pimon-server: %s:" % path),
              "%s: %d %r" % (f, r.returncode, r.stderr))


def test_help_and_version(env):
    for binary in (SERVER_BIN, AGENT_BIN, CTL_BIN):
        r = run([binary, "--help"])
        check(r.returncode == 0 and "usage:" in r.stdout, "%s --help" % binary)
        r = run([binary, "--version"])
        check(r.returncode == 0 and re.match(r"pimon-\w+ \d+\.\d+", r.stdout),
              "%s --version: %r" % (binary, r.stdout))
        r = run([binary, "--no-such-flag"])
        check(r.returncode == 2, "%s with a bad flag: %d" % (binary, r.returncode))


def test_ctl_unreachable_exit_3(env):
    r = run([CTL_BIN, "-a", "127.0.0.1:%d" % free_port(), "hosts"])
    check(r.returncode == 3 and "cannot reach" in r.stderr, "%d %r" % (r.returncode, r.stderr))
    r = run([CTL_BIN, "-a", "127.0.0.1:1", "frobnicate"])
    check(r.returncode == 2, "unknown command: %d" % r.returncode)


def test_server_unusable_data_dir_fails_clearly(env):
    blocker = bad_file(env, "file", "not a folder")
    r = run([SERVER_BIN, "-d", os.path.join(blocker, "sub"), "-l", "127.0.0.1:%d" % free_port(),
             "-H", ""])
    check(r.returncode == 1 and "data" in r.stderr, "%d %r" % (r.returncode, r.stderr))


def test_systemd_readiness_is_true(env):
    """Type=notify: READY=1 only once the agent port listens, STOPPING=1 on
    SIGTERM, exit 0."""
    import socket
    import signal
    sock_path = os.path.join(env.dir, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(sock_path)
    ns.settimeout(15 * SLOW)
    port = free_port()
    cfg = env.write_cfg("s.cfg", {"server": {"listen": "127.0.0.1:%d" % port,
                                             "http": {"listen": ""},
                                             "data_dir": os.path.join(env.dir, "d")}})
    p = subprocess.Popen([SERVER_BIN, "-c", cfg], env=dict(os.environ, NOTIFY_SOCKET=sock_path),
                         stderr=subprocess.DEVNULL)
    try:
        check(ns.recv(64) == b"READY=1", "no READY=1")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # ready means listening: this connect must succeed at once
        p.send_signal(signal.SIGTERM)
        check(ns.recv(64) == b"STOPPING=1", "no STOPPING=1")
        check(p.wait(30 * SLOW) == 0, "exit status %s" % p.returncode)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        ns.close()


def test_systemd_units_verify(env):
    """The units parse and their hardening directives are known to systemd."""
    import shutil
    if not shutil.which("systemd-analyze"):
        raise TestSkip("no systemd-analyze here")
    etc = os.path.join(FIXTURES, "..", "..", "etc")
    for unit, binary in (("pimon-server.service", SERVER_BIN), ("pimon-agent.service", AGENT_BIN)):
        text = open(os.path.join(etc, unit)).read()
        text = text.replace("/usr/bin/" + os.path.basename(binary), os.path.abspath(binary))
        for needed in ("NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=",
                       "DynamicUser=yes", "Type=notify", "StateDirectory="):
            check(needed in text, "%s lacks %s" % (unit, needed))
        path = os.path.join(env.dir, unit)
        with open(path, "w") as f:
            f.write(text)
        r = run(["systemd-analyze", "verify", path])
        problems = [l for l in (r.stdout + r.stderr).splitlines()
                    if l.strip() and "man " not in l and "Documentation" not in l]
        check(not problems, "%s: %s" % (unit, problems))


if __name__ == "__main__":
    run_tests(globals())
