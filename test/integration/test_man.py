"""The man pages the build made: each renders without a warning, pimon.cfg(5)
has an entry for every key of etc/pimon.cfg, each page names every option its
program's --help lists, and the examples of pimon.cfg(5) load."""

import os
import re
import shutil
import subprocess

from harness import AGENT_BIN, BUILD, CTL_BIN, SERVER_BIN, SLOW, check, run_tests

MAN_DIR = os.environ.get("PIMON_MAN", os.path.join(BUILD, "docs", "man"))
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PAGES = {"pimon-server.8": SERVER_BIN, "pimon-agent.8": AGENT_BIN, "pimon-ctl.1": CTL_BIN,
         "pimon-ca.1": None, "pimon.cfg.5": None}


def page(name):
    path = os.path.join(MAN_DIR, name)
    check(os.path.exists(path), "%s was not built (scdoc missing?)" % path)
    return path


def man(path, *opts, width=80, locale="C.UTF-8", hyphenate=True):
    """Run man -l on path; the CompletedProcess."""
    check(shutil.which("man"), "man not found: tools/deps --test installs man-db")
    env = dict(os.environ, MANWIDTH=str(width), LC_ALL=locale, MANPAGER="cat", PAGER="cat")
    if not hyphenate:
        env["MANROFFOPT"] = "-rHY=0"
    return subprocess.run(["man"] + list(opts) + ["-l", path], capture_output=True, text=True,
                          timeout=30 * SLOW, env=env)


def text(name):
    """The page rendered as plain ASCII, wide enough that no entry wraps."""
    r = man(page(name), width=200, locale="C", hyphenate=False)
    check(r.returncode == 0, "man -l %s: status %d: %s" % (name, r.returncode, r.stderr))
    return r.stdout


def example_keys():
    """Every key path etc/pimon.cfg sets, each with the sub keys its comment
    documents (for a list of groups)."""
    keys = {}
    groups = []
    subs = []
    in_list = False
    with open(os.path.join(SOURCE, "etc", "pimon.cfg")) as f:
        for line in f:
            line = line.strip()
            m = re.match(r"#   ([a-z_]+):", line)
            if in_list:
                in_list = not line.startswith(")")
            elif m:
                subs.append(m.group(1))
            elif re.match(r"[a-z_]+:$", line):
                groups.append(line[:-1])
            elif line == "};":
                groups.pop()
            elif re.match(r"[a-z_]+ = ", line):
                keys[".".join(groups + [line.split(" ")[0]])] = subs
                subs = []
                in_list = line.endswith("(")
    return keys


def test_pages_render_without_warnings(env):
    for name in PAGES:
        r = man(page(name), "--warnings=w")
        check(r.returncode == 0, "man -l %s: status %d" % (name, r.returncode))
        check(r.stderr == "", "man --warnings -l %s:\n%s" % (name, r.stderr))
        title = name.rsplit(".", 1)
        check(r.stdout.startswith("%s(%s)" % tuple(title)), "%s: heading %r"
              % (name, r.stdout[:40]))
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
            check("\n%s\n" % section in r.stdout, "%s has no %s" % (name, section))


def test_cfg_page_has_every_key(env):
    keys = example_keys()
    check(len(keys) > 40, "etc/pimon.cfg: only %d keys found" % len(keys))
    rendered = text("pimon.cfg.5")
    for key, subs in keys.items():
        m = re.search(r"^ +%s \(" % re.escape(key), rendered, re.M)
        check(m, "pimon.cfg(5) has no entry for %s" % key)
        for sub in subs:
            check(re.search(r"^ +%s \(" % re.escape(sub), rendered[m.end():], re.M),
                  "pimon.cfg(5) has no entry for %s: %s" % (key, sub))


def help_options(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30 * SLOW)
    check(r.returncode == 0, "%s: status %d" % (" ".join(argv), r.returncode))
    return set(re.findall(r"--[a-z][a-z-]+", r.stdout)), r.stdout


def test_pages_name_every_option(env):
    for name, binary in PAGES.items():
        if not binary:
            continue
        rendered = text(name)
        argvs = [[binary, "--help"]]
        if binary == AGENT_BIN:
            argvs.append([binary, "alarm", "--help"])
        for argv in argvs:
            options, usage = help_options(argv)
            check(options, "%s lists no options" % " ".join(argv))
            for opt in options:
                check(opt in rendered, "%s does not name %s" % (name, opt))
        if binary == CTL_BIN:
            commands = re.findall(r"^  ([a-z]+) ", usage.split("options:")[0], re.M)
            check(len(commands) >= 7, "pimon-ctl --help lists commands %s" % commands)
            for cmd in commands:
                check(re.search(r"^ +%s\b" % cmd, rendered, re.M),
                      "pimon-ctl(1) does not describe %s" % cmd)


def test_cfg_examples_load(env):
    with open(os.path.join(SOURCE, "docs", "man", "pimon.cfg.5.scd.in")) as f:
        source = f.read()
    blocks = re.findall(r"^```\n(.*?)^```$", source.split("\n# EXAMPLES\n")[1], re.M | re.S)
    check(len(blocks) >= 2, "pimon.cfg(5) EXAMPLES: %d blocks" % len(blocks))
    for i, block in enumerate(blocks):
        path = os.path.join(env.dir, "example%d.cfg" % i)
        with open(path, "w") as f:
            f.write(block)
        for binary in (SERVER_BIN, AGENT_BIN):
            r = subprocess.run([binary, "-t", "-c", path], capture_output=True, text=True,
                               timeout=30 * SLOW)
            check(r.returncode == 0, "%s -t: example %d: %s" % (binary, i, r.stderr))


if __name__ == "__main__":
    run_tests(globals())
