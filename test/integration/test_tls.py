"""Sessions and the HTTP API over TLS 1.2+: certificates checked both ways,
plain or wrongly trusting peers refused."""

import os
import socket
import ssl
import subprocess
import urllib.request

from harness import AGENT_BIN, WRAPPER, check, run_tests, wait_for

CA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "pimon-ca")


def make_pki(env, name="pki"):
    d = os.path.join(env.dir, name)
    for args in (["init"], ["server", "localhost", "127.0.0.1"], ["agent", "pi-c"]):
        subprocess.run([CA, d] + args, check=True, capture_output=True)
    return d


def tls_server(env, pki, client_ca=False):
    tls = {"cert": os.path.join(pki, "localhost.pem"), "key": os.path.join(pki, "localhost.key")}
    if client_ca:
        tls["ca"] = os.path.join(pki, "ca.pem")
    # A peer that never completes the handshake is closed by the HELLO timeout.
    env.start_server(extra={"tls": tls, "limits": {"hello_timeout": 1.0}})


def tls_agent(env, name, pki, extra_tls=None):
    tls = {"ca": os.path.join(pki, "ca.pem")}
    tls.update(extra_tls or {})
    return env.start_agent(name, extra={"tls": tls})


def failing(env, agent, what, server_says=None):
    """The agent keeps retrying, the host never shows up."""
    wait_for(lambda: agent.log_text().count("reconnecting in") >= 2, 20, "retries", [env.server])
    if server_says:
        wait_for(lambda: server_says in env.server.log_text(), 10, "the server's log line")
    check(agent.name.split("-", 1)[1] not in env.hosts(), "%s: the host got in" % what)


def tls_libraries(pid):
    """The TLS libraries a process has mapped."""
    with open("/proc/%d/maps" % pid) as f:
        return {lib for line in f for lib in ("libssl", "libcrypto", "libevent_openssl")
                if "/" + lib in line}


def test_agent_over_tls(env):
    pki = make_pki(env)
    tls_server(env, pki)
    agent = tls_agent(env, "pi-t", pki)
    env.wait_hosts_up(["pi-t"])
    check(tls_libraries(agent.pid) == {"libssl", "libcrypto", "libevent_openssl"},
          "the TLS agent maps %s" % sorted(tls_libraries(agent.pid)))
    path = os.path.join(env.host_dir("pi-t"), "load.csv")
    wait_for(lambda: os.path.exists(path) and len(open(path).readlines()) >= 3, 10, "rows")
    # What a client sees: a certificate chain to our CA, TLS 1.2 or newer.
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    with socket.create_connection(("127.0.0.1", env.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            check(s.version() in ("TLSv1.2", "TLSv1.3"), "negotiated %s" % s.version())
    old = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        with socket.create_connection(("127.0.0.1", env.port)) as raw:
            with old.wrap_socket(raw, server_hostname="localhost"):
                check(False, "a TLS 1.1 handshake succeeded")
    except (ssl.SSLError, OSError):
        pass


def test_plain_agent_maps_no_tls_library(env):
    """Without agent.tls.ca, with a secret, OpenSSL stays out of the agent."""
    secret = os.path.join(env.dir, "secret")
    with open(secret, "w") as f:
        f.write("0123456789abcdef0123\n")
    os.chmod(secret, 0o600)
    env.start_server(extra={"auth": {"token_file": secret}})
    agent = env.start_agent("pi-p", extra={"auth": {"token_file": secret}})
    env.wait_hosts_up(["pi-p"])
    check(not tls_libraries(agent.pid), "the plain agent maps %s" % sorted(tls_libraries(agent.pid)))


def test_agent_without_the_tls_libraries_says_which(env):
    """A TLS agent that cannot load libcrypto stops at once, naming it."""
    pki = make_pki(env)
    cfg = env.write_cfg("agent-nolib.cfg", {"agent": {
        "server": "127.0.0.1:1", "name": "pi-n", "spool_dir": os.path.join(env.dir, "spool"),
        "alarm_socket": "", "tls": {"ca": os.path.join(pki, "ca.pem")}}})
    lib = os.path.join(env.dir, "lib")
    os.makedirs(lib)
    open(os.path.join(lib, "libcrypto.so.3"), "w").close()
    r = subprocess.run(WRAPPER + [AGENT_BIN, "-c", cfg], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, LD_LIBRARY_PATH=lib))
    check(r.returncode == 2, "exit status %d" % r.returncode)
    check("agent.tls: TLS needs libcrypto.so.3" in r.stderr, "stderr: %r" % r.stderr[-500:])


def test_plain_agent_refused(env):
    pki = make_pki(env)
    tls_server(env, pki)
    failing(env, env.start_agent("pi-plain"), "plain TCP")


def test_agent_trusting_another_ca_refuses(env):
    pki, other = make_pki(env), make_pki(env, "other")
    tls_server(env, pki)
    a = tls_agent(env, "pi-other", other)
    failing(env, a, "wrong CA")
    check("certificate verify failed" in a.log_text(), "no verify error in the agent's log")


def test_agent_checks_the_server_name(env):
    pki = make_pki(env)
    tls_server(env, pki)
    a = tls_agent(env, "pi-name", pki, {"server_name": "not-the-server.example"})
    failing(env, a, "wrong name")
    check("certificate verify failed" in a.log_text(), "no verify error in the agent's log")


def test_client_certificate_required(env):
    pki = make_pki(env)
    tls_server(env, pki, client_ca=True)
    failing(env, tls_agent(env, "pi-nocert", pki), "no client certificate",
            server_says="peer did not return a certificate")
    tls_agent(env, "pi-c", pki, {"cert": os.path.join(pki, "pi-c.pem"),
                                 "key": os.path.join(pki, "pi-c.key")})
    env.wait_hosts_up(["pi-c"])


def test_https_api(env):
    pki = make_pki(env)
    env.https = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    env.https.check_hostname = False  # the certificate names localhost and 127.0.0.1
    env.start_server(extra={"http": {"tls": {"cert": os.path.join(pki, "localhost.pem"),
                                             "key": os.path.join(pki, "localhost.key")}}})
    env.start_agent("pi-h")
    check(env.wait_hosts_up(["pi-h"])["pi-h"]["state"] == "up", "not up over HTTPS")
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/api/v1/hosts" % env.http_port, timeout=5)
        check(False, "plain HTTP answered on the HTTPS port")
    except OSError:
        pass


if __name__ == "__main__":
    run_tests(globals())
