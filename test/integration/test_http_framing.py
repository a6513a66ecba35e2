"""What the HTTP listener refuses, over raw sockets: names that decode to a
NUL byte or to bytes that are not UTF-8, requests whose framing two parsers
could read differently (each answered 400 and the connection closed, so
nothing smuggled behind it is ever answered), and a descriptor shortage,
during which the listener pauses instead of spinning."""

import json
import os
import socket
import ssl
import subprocess
import time

from harness import FIXTURES, SLOW, WRAPPER, check, run_tests, wait_for

CA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "pimon-ca")
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


SMUGGLED = b"GET /api/v1/hosts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def refused_and_closed(env, what, data, ours):
    """data gets exactly one response, a 400 that says Connection: close,
    and the connection is closed: whatever followed is unanswered. The 400
    is a JSON one unless libevent refused the request before pimon saw it."""
    responses, closed = exchange(env, data)
    check(len(responses) == 1, "%s: %d responses: %r" % (what, len(responses),
                                                        [r[0] for r in responses]))
    status, headers, body = responses[0]
    check(status == 400, "%s: status %d" % (what, status))
    if ours:
        check_json_400(what, status, json.loads(body) if body else None)
    check(headers.get("connection") == ["close"], "%s: Connection %r"
          % (what, headers.get("connection")))
    check(closed, "%s: the connection stayed open" % what)


def framing_cases():
    """(what, bytes, whether pimon answers it rather than libevent)."""
    n = str(len(SMUGGLED)).encode()
    head = b"GET /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    post = b"POST /api/v1/hosts/nobody/poll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    chunked = b"0\r\n\r\n"
    return [
        ("two Content-Length on a GET", head + b"Content-Length: 0\r\nContent-Length: " + n
         + b"\r\n\r\n" + SMUGGLED, True),
        ("two Content-Length on a POST", post + b"Content-Length: 0\r\nContent-Length: " + n
         + b"\r\n\r\n" + SMUGGLED, True),
        ("two equal Content-Length", post + b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n"
         + SMUGGLED, True),
        ("two Content-Length on HTTP/1.0 keep-alive",
         b"GET /api/v1/stats HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n"
         b"Content-Length: " + n + b"\r\n\r\n" + SMUGGLED, True),
        ("two Transfer-Encoding", post + b"Transfer-Encoding: gzip\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n" + chunked + SMUGGLED, True),
        ("a signed Content-Length", head + b"Content-Length: +0\r\n\r\n" + SMUGGLED, True),
        ("a space before the colon", head + b"Content-Length : " + n + b"\r\n\r\n"
         + SMUGGLED, True),
        ("a body on a TRACE", b"TRACE /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n"
         b"Content-Length: " + n + b"\r\n\r\n" + SMUGGLED, True),
        ("a body on a GET", head + b"Content-Length: " + n + b"\r\n\r\n" + SMUGGLED, True),
        ("a chunked GET", head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked + SMUGGLED,
         True),
        ("HTTP/1.1 without Host", b"GET /api/v1/stats HTTP/1.1\r\n\r\n" + SMUGGLED, True),
        ("HTTP/1.1 with two Host", head + b"Host: other.example\r\n\r\n" + SMUGGLED, True),
        # libevent 2.1.12 refuses these itself; pimon checks them too.
        ("Content-Length and Transfer-Encoding on a GET", head + b"Content-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n" + chunked + SMUGGLED, False),
        ("Content-Length and Transfer-Encoding on a POST", post
         + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + chunked + SMUGGLED,
         False),
        ("Transfer-Encoding not ending in chunked", post
         + b"Transfer-Encoding: chunked, identity\r\n\r\n" + SMUGGLED, False),
        ("a non-numeric Content-Length", head + b"Content-Length: 1x\r\n\r\n" + SMUGGLED,
         False),
    ]


def check_framing(env):
    for what, data, ours in framing_cases():
        refused_and_closed(env, what, data, ours)
    # What is well framed is still answered, pipelined requests too.
    responses, closed = exchange(env, b"GET /api/v1/stats HTTP/1.0\r\n\r\n")
    check(closed and [r[0] for r in responses] == [200], "HTTP/1.0 without Host: %r"
          % [r[0] for r in responses])
    responses, closed = exchange(env, b"GET /api/v1/stats HTTP/1.1\r\nHost: a\r\n"
                                 b"Content-Length: 0\r\n\r\n" + SMUGGLED[:-2]
                                 + b"Connection: close\r\n\r\n")
    check(closed and [r[0] for r in responses] == [200, 200], "two pipelined requests: %r"
          % [r[0] for r in responses])
    env.server.check_alive()
    check(env.api("/api/v1/stats")["workers"] >= 1, "the server stopped answering")
    check("answering 400 and closing" in env.server.log_text(), "no log line for a refusal")


def test_ambiguous_framing_is_400_and_closes(env):
    env.start_server()
    check_framing(env)


def test_ambiguous_framing_over_https(env):
    pki = os.path.join(env.dir, "pki")
    for args in (["init"], ["server", "localhost", "127.0.0.1"]):
        subprocess.run([CA, pki] + args, check=True, capture_output=True)
    env.https = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    env.https.check_hostname = False
    env.start_server(extra={"http": {"tls": {"cert": os.path.join(pki, "localhost.pem"),
                                             "key": os.path.join(pki, "localhost.key")}}})
    check_framing(env)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_in_log(env, text, start=0):
    """How often text occurs in the server's log past byte start."""
    with open(env.server.log_path, "rb") as f:
        f.seek(start)
        return f.read().count(text)


def test_http_accept_pauses_when_out_of_descriptors(env):
    env.start_server(workers=1, nofile=64, extra={"limits": {"hello_timeout": 60.0}})
    # Idle agent connections until accept() runs out of descriptors.
    held = []
    deadline = time.monotonic() + 20 * SLOW
    while count_in_log(env, b"Too many open files") == 0:
        check(time.monotonic() < deadline, "accept never ran out of descriptors")
        env.server.check_alive()
        held.append(socket.create_connection(("127.0.0.1", env.port)))
        if len(held) % 10 == 0:
            time.sleep(0.05)
    # One HTTP client now: its connection waits in the backlog. Held for
    # the measured 5 s, it must cost the server little CPU and few lines.
    mark = os.path.getsize(env.server.log_path)
    c0, t0 = cpu_seconds(env.server.pid), time.monotonic()
    client = socket.create_connection(("127.0.0.1", env.http_port))
    client.sendall(b"GET /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    time.sleep(5.0)
    cpu = cpu_seconds(env.server.pid) - c0
    wall = time.monotonic() - t0
    lines = count_in_log(env, b"Too many open files", mark)
    print("  %.2f s of CPU in %.1f s, %d accept error lines" % (cpu, wall, lines))
    check(cpu < 1.5, "the server spun: %.2f s of CPU in %.1f s" % (cpu, wall))
    check(lines < 50, "%d accept error lines in %.1f s" % (lines, wall))
    http_addr = "127.0.0.1:%d" % env.http_port
    check(any(http_addr in l and "Too many open files" in l
              for l in env.server.log_text().splitlines()),
          "no line names the HTTP listener's shortage")
    for s in held:
        s.close()
    # Descriptors come back: the waiting client is answered. (Under valgrind
    # accept() takes the connection, and valgrind closes it at once when the
    # descriptor is one it keeps for itself: the client was reset.)
    data, closed = read_until_closed(client, 20)
    client.close()
    responses = parse_responses(data)
    reset_by_valgrind = any("valgrind" in w for w in WRAPPER) and closed and not data
    check(reset_by_valgrind or (closed and [r[0] for r in responses] == [200]),
          "the waiting client got %r (closed %s)" % ([r[0] for r in responses], closed))
    wait_for(lambda: env.api("/api/v1/stats")["workers"] == 1, 20, "the API again",
             [env.server])


if __name__ == "__main__":
    run_tests(globals())
