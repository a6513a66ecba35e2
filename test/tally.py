"""Sum meson test logs: each test program's own "N passed, N failed" line,
or one failure for a program that failed without printing one."""

import json
import re
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        m = re.findall(r"(\d+) passed, (\d+) failed(?:, (\d+) skipped)?", t.get("stdout") or "")
        ok = t.get("result") == "OK"
        if m:
            p, f, s = m[-1]
            passed += int(p)
            failed += int(f)
            skipped += int(s or 0)
            if not ok and int(f) == 0:
                failed += 1  # it said all passed but still failed (a sanitizer, a leak)
        elif ok:
            passed += 1
        else:
            failed += 1
print(passed, failed, skipped)
