"""What the HTTP listener refuses, over raw sockets: names that decode to a
NUL byte or to bytes that are not UTF-8."""

import json
import os
import socket
import ssl
import time

from harness import FIXTURES, SLOW, check, run_tests, wait_for

ADMIN_TOKEN = "an admin token for the framing tests"


def connect(env):
    s = socket.create_connection(("127.0.0.1", env.http_port), timeout=5 * SLOW)
    if env.https:
        s = env.https.wrap_socket(s, server_hostname="localhost")
    return s


def read_until_closed(s, timeout):
    """Everything the peer sends until it closes, and whether it closed
    before the deadline."""
    data = b""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, ssl.SSLEOFError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def parse_responses(data):
    """The HTTP responses in data, in order: (status, headers, body), the
    header names in lower case, each a list of the values it came with."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        check(sep, "a response cut short: %r" % data[:200])
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        check(len(parts) >= 2 and parts[0].startswith("HTTP/"), "status line %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), []).append(v.strip())
        if "content-length" in headers:
            n = int(headers["content-length"][0])
        else:
            n = len(rest)  # no length: the body runs to the close
        out.append((int(parts[1]), headers, rest[:n]))
        data = rest[n:]
    return out


def exchange(env, data, timeout=5):
    """Send data on a new connection; the responses, and whether the server
    closed the connection in time."""
    s = connect(env)
    try:
        s.sendall(data)
        got, closed = read_until_closed(s, timeout)
    finally:
        s.close()
    return parse_responses(got), closed


def get(env, path, method="GET", token=None):
    """One request with Connection: close; its (status, JSON body)."""
    req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, path)
    if token:
        req += "Authorization: Bearer %s\r\n" % token
    if method == "POST":
        req += "Content-Length: 0\r\n"
    responses, closed = exchange(env, (req + "\r\n").encode())
    check(closed and len(responses) == 1, "%s %s: %d responses, closed %s"
          % (method, path, len(responses), closed))
    status, headers, body = responses[0]
    return status, json.loads(body) if body else None


def check_json_400(what, status, body):
    check(status == 400, "%s: status %d, want 400 (%.300r)" % (what, status, body))
    check(isinstance(body, dict) and set(body) == {"error", "status"} and body["status"] == 400
          and isinstance(body["error"], str), "%s: not a JSON error: %r" % (what, body))


def admin_token_file(env):
    path = os.path.join(env.dir, "admin.token")
    with open(path, "w") as f:
        f.write(ADMIN_TOKEN + "\n")
    os.chmod(path, 0o600)
    return path


def test_nul_and_bad_utf8_in_names_are_400(env):
    env.start_server(extra={"http": {"admin_token_file": admin_token_file(env)}})
    env.start_agent("w1", proc_root=os.path.join(FIXTURES, "pi4", "proc"),
                    sys_root=os.path.join(FIXTURES, "pi4", "sys"))
    env.wait_hosts_up(["w1"])
    d = env.host_dir("w1")
    wait_for(lambda: all(os.path.getsize(os.path.join(d, m + ".csv")) > 200
                         for m in ["load", "net"]), 15, "rows of w1", [env.server])
    # What each of these would wrongly stand for answers, so a 400 below is
    # the name being refused and not a host, metric or field that is missing.
    good = ["/api/v1/hosts/w1", "/api/v1/hosts/w1/metrics", "/api/v1/hosts/w1/series/load",
            "/api/v1/hosts/w1/series/load?field=load1&points=5",
            "/api/v1/hosts/w1/series/net?instance=eth0&field=rx_bytes"]
    for path in good:
        status, body = get(env, path)
        check(status == 200, "GET %s: %d %.300r" % (path, status, body))
    status, body = get(env, "/api/v1/hosts/w1/poll", "POST", ADMIN_TOKEN)
    check(status == 202, "POST poll of w1: %d %r" % (status, body))
    bad = []
    for junk in ["%00x", "%00", "%ff", "%c3%28", "%ed%a0%80", "%c0%af", "%f4%90%80%80"]:
        bad += ["/api/v1/hosts/w1" + junk, "/api/v1/hosts/w1%s/metrics" % junk,
                "/api/v1/hosts/w1%s/series/load" % junk, "/api/v1/hosts/w1/series/load" + junk]
    for q in ["field=load1%00x", "field=load1%ff", "field=Load1", "points=5%00x", "from=1%00",
              "field%00x=load1", "fi%00eld=load1"]:
        bad.append("/api/v1/hosts/w1/series/load?" + q)
    for q in ["instance=eth0%00x", "instance=eth0%ff", "instance=" + "e" * 129]:
        bad.append("/api/v1/hosts/w1/series/net?field=rx_bytes&" + q)
    bad.append("/api/v1/hosts%00/w1")
    for path in bad:
        status, body = get(env, path)
        check_json_400("GET " + path, status, body)
    for path in ["/api/v1/hosts/w1%00x/poll", "/api/v1/hosts/w1%ff/poll",
                 "/api/v1/hosts/w1/poll?x%00=1"]:
        status, body = get(env, path, "POST", ADMIN_TOKEN)
        check_json_400("POST " + path, status, body)
    # The server is well and w1 still answers.
    check(get(env, "/api/v1/hosts/w1")[0] == 200, "w1 gone after the bad requests")


if __name__ == "__main__":
    run_tests(globals())
