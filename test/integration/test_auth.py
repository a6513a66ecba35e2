"""Only agents that know the secret get in: HMAC over a fresh nonce, no
replay, per-host secrets, owner-only secret files, failures slowed down."""

import os
import socket
import subprocess
import time

from harness import (AGENT_BIN, SERVER_BIN, SLOW, T_BYE, T_CHALLENGE, T_WELCOME, auth_proof,
                     check, free_port, hello, read_frame, run_tests, wait_closed, wait_for)

SECRET = b"correct horse battery staple 42"


def secret_file(env, name, data=SECRET, mode=0o600):
    path = os.path.join(env.dir, name)
    with open(path, "wb") as f:
        f.write(data + b"\n")
    os.chmod(path, mode)
    return path


def start_secured(env, extra=None):
    auth = {"token_file": secret_file(env, "server.secret")}
    auth.update(extra or {})
    env.start_server(extra={"auth": auth})


def connect(env):
    """A raw session: the socket and the server's nonce."""
    s = socket.create_connection(("127.0.0.1", env.port))
    f = read_frame(s, challenge=True)
    check(f is not None and f[0] == T_CHALLENGE and len(f[1]) == 32, "no CHALLENGE: %r" % (f,))
    return s, f[1]


def refused(s):
    f = read_frame(s, timeout=15)
    return f is not None and f[0] == T_BYE and b"authentication failed" in f[1]


def test_no_secret_warns_and_accepts(env):
    env.start_server()
    check("NO AUTHENTICATION" in env.server.log_text(), "no loud warning at start")
    s, _ = connect(env)
    s.sendall(hello("anyone"))
    check(read_frame(s)[0] == T_WELCOME, "an open server refused")
    s.close()


def test_secret_lets_agents_in_and_strangers_out(env):
    start_secured(env)
    env.start_agent("trusted", extra={"auth": {"token_file": secret_file(env, "a.secret")}})
    env.wait_hosts_up(["trusted"])
    s, nonce = connect(env)
    s.sendall(hello("stranger"))
    check(refused(s), "a HELLO without proof got in")
    check(wait_closed(s), "session not closed")
    s, nonce = connect(env)
    s.sendall(hello("liar", auth=auth_proof(b"wrong secret, 16+ bytes", nonce, "liar", 1)))
    check(refused(s), "a HELLO with a wrong proof got in")
    s, nonce = connect(env)
    s.sendall(hello("mimic", run_id=9, auth=auth_proof(SECRET, nonce, "mimic", 9)))
    check(read_frame(s)[0] == T_WELCOME, "a right proof was refused")
    s.close()
    wait_for(lambda: "authentication failed for host 'liar'" in env.server.log_text(), 5,
             "the log line")
    check("127.0.0.1:" in [l for l in env.server.log_text().splitlines()
                           if "authentication failed for host 'stranger'" in l][0],
          "the log line lacks the peer address")
    check(sum(w["auth_failures"] for w in env.api("/api/v1/workers")) == 2, "counter")
    check("stranger" not in env.hosts() and "liar" not in env.hosts(), "refused hosts listed")


def test_replayed_hello_fails(env):
    start_secured(env)
    s, nonce = connect(env)
    recorded = hello("pi-r", run_id=5, auth=auth_proof(SECRET, nonce, "pi-r", 5))
    s.sendall(recorded)
    check(read_frame(s)[0] == T_WELCOME, "the original HELLO failed")
    s.close()
    s2, _ = connect(env)
    s2.sendall(recorded)
    check(refused(s2), "a replayed HELLO got in")


def test_per_host_secret_overrides_and_revokes(env):
    hosts_dir = os.path.join(env.dir, "hosts.d")
    os.makedirs(hosts_dir)
    own = b"pi-x has a secret of its own"
    secret_file(env, "hosts.d/pi-x", own)
    start_secured(env, {"hosts_dir": hosts_dir})
    for name, key in [("pi-x", own), ("pi-y", SECRET)]:
        s, nonce = connect(env)
        s.sendall(hello(name, auth=auth_proof(key, nonce, name, 1)))
        check(read_frame(s)[0] == T_WELCOME, "%s refused" % name)
        s.close()
    s, nonce = connect(env)
    s.sendall(hello("pi-x", auth=auth_proof(SECRET, nonce, "pi-x", 1)))
    check(refused(s), "pi-x got in with the shared secret")
    # Revoking pi-x: a new secret in its file; the old one no longer works.
    secret_file(env, "hosts.d/pi-x", b"a brand new secret for pi-x")
    s, nonce = connect(env)
    s.sendall(hello("pi-x", auth=auth_proof(own, nonce, "pi-x", 1)))
    check(refused(s), "a revoked secret still works")


def test_readable_secret_files_refused(env):
    loose = secret_file(env, "loose.secret", mode=0o644)
    cfg = env.write_cfg("loose.cfg", {"server": {"auth": {"token_file": loose},
                                                 "listen": "127.0.0.1:%d" % free_port(),
                                                 "http": {"listen": ""},
                                                 "data_dir": os.path.join(env.dir, "d")},
                                      "agent": {"auth": {"token_file": loose}, "name": "x",
                                                "server": "127.0.0.1:1"}})
    for binary in (SERVER_BIN, AGENT_BIN):
        r = subprocess.run([binary, "-c", cfg], capture_output=True, text=True,
                           timeout=30 * SLOW)
        check(r.returncode == 2 and loose in r.stderr and "chmod 600" in r.stderr,
              "%s: %d %r" % (os.path.basename(binary), r.returncode, r.stderr))


def test_repeated_failures_are_slowed(env):
    start_secured(env)
    waits = []
    for _ in range(3):
        s, nonce = connect(env)
        t0 = time.monotonic()
        s.sendall(hello("guess", auth=b"\0" * 32))
        check(refused(s), "a bad proof got in")
        waits.append(time.monotonic() - t0)
        s.close()
    # 250, 500, 1000 ms: only lower bounds, which a slow machine cannot break.
    check(waits[0] >= 0.2 and waits[1] >= 0.45 and waits[2] >= 0.9,
          "answers not slowed: %r" % waits)


def test_admin_token_guards_changes_not_reading(env):
    import json
    import urllib.error
    import urllib.request
    from harness import CTL_BIN
    token = b"an admin token, not a secret for agents"
    tfile = secret_file(env, "admin.token", token)
    env.start_server(extra={"http": {"admin_token_file": tfile}})
    env.start_agent("pi-poll")
    env.wait_hosts_up(["pi-poll"])
    url = env.url("/api/v1/hosts/pi-poll/poll")
    for header in (None, "Bearer wrong-token-of-some-length", "Basic " + token.decode()):
        req = urllib.request.Request(url, method="POST")
        if header:
            req.add_header("Authorization", header)
        try:
            urllib.request.urlopen(req, timeout=5)
            check(False, "POST with %r was let through" % header)
        except urllib.error.HTTPError as e:
            check(e.code == 401 and json.loads(e.read())["error"], "%r: %d" % (header, e.code))
    req = urllib.request.Request(url, method="POST")
    req.add_header("Authorization", "Bearer " + token.decode())
    with urllib.request.urlopen(req, timeout=5) as r:
        check(r.status == 202, "the admin token was refused")
    check(env.api("/api/v1/hosts")[0]["name"] == "pi-poll", "reading needs no token")
    addr = ["-a", "127.0.0.1:%d" % env.http_port]
    r = subprocess.run([CTL_BIN] + addr + ["poll", "pi-poll"], capture_output=True, text=True,
                       timeout=30 * SLOW)
    check(r.returncode == 1 and "401" in r.stderr, "ctl without a token: %d %r"
          % (r.returncode, r.stderr))
    r = subprocess.run([CTL_BIN] + addr + ["-k", tfile, "poll", "pi-poll"], capture_output=True,
                       text=True, timeout=30 * SLOW)
    check(r.returncode == 0, "ctl with the token: %d %r" % (r.returncode, r.stderr))


def test_read_token_guards_data_not_the_page(env):
    import json
    import urllib.error
    import urllib.request
    from harness import CTL_BIN
    read = secret_file(env, "read.token", b"a token for reading the data")
    admin = secret_file(env, "admin.token", b"a token for changing things")
    env.token = "a token for reading the data"
    env.start_server(extra={"http": {"read_token_file": read, "admin_token_file": admin}})

    def get(path, token=None):
        req = urllib.request.Request(env.url(path))
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            if e.code == 401:
                check(json.loads(e.read())["error"], "401 without a JSON error")
            return e.code

    env.start_agent("pi-read")
    env.wait_hosts_up(["pi-read"])
    for path in ("/api/v1/hosts", "/api/v1/stats", "/metrics"):
        check(get(path) == 401, "%s open without a token" % path)
        check(get(path, "wrong token, long enough") == 401, "%s with a wrong token" % path)
        check(get(path, "a token for reading the data") == 200, "%s refused the read token" % path)
        check(get(path, "a token for changing things") == 200, "%s refused the admin token" % path)
    check(get("/") == 200, "the dashboard's page needs no token")
    req = urllib.request.Request(env.url("/api/v1/hosts/pi-read/poll"), method="POST")
    req.add_header("Authorization", "Bearer a token for reading the data")
    try:
        urllib.request.urlopen(req, timeout=5)
        check(False, "the read token was let change something")
    except urllib.error.HTTPError as e:
        check(e.code == 401, "POST with the read token: %d" % e.code)
    cfg = env.write_cfg("ctl.cfg", {"server": {"http": {
        "listen": "127.0.0.1:%d" % env.http_port, "read_token_file": read,
        "admin_token_file": admin}}})
    wait_for(lambda: "pi-read" in subprocess.run([CTL_BIN, "-c", cfg, "hosts"],
                                                  capture_output=True, text=True).stdout,
             15, "pimon-ctl hosts with the configured read token")
    r = subprocess.run([CTL_BIN, "-c", cfg, "poll", "pi-read"], capture_output=True, text=True,
                       timeout=30 * SLOW)
    check(r.returncode == 0, "ctl poll with the configured admin token: %r" % r.stderr)
    r = subprocess.run([CTL_BIN, "-a", "127.0.0.1:%d" % env.http_port, "hosts"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    check(r.returncode == 1 and "401" in r.stderr, "ctl without a token: %r" % r.stderr)


if __name__ == "__main__":
    run_tests(globals())
