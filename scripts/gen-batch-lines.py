#!/usr/bin/env python3
"""Writes N deterministic `sla batch` input lines to standard output (for scripts/bench-batch.sh).

About 2% of the lines carry an unknown priority, so error lines are part of the load."""
import random
import sys
from datetime import datetime, timedelta, timezone

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
rng = random.Random(42)
cet = timezone(timedelta(hours=1))
base = datetime(2025, 1, 1, tzinfo=cet)
prios = ["urgente", "alta", "normale", "bassa"]
out = sys.stdout
for i in range(n):
    r = base + timedelta(seconds=rng.randrange(3 * 365 * 86400))
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S+01:00")
    k = rng.randrange(4)
    susp = ""
    if k:
        parts = []
        for j in range(k):
            f = r + timedelta(days=j, hours=1)
            to = "null" if j == k - 1 and rng.randrange(5) == 0 else f'"{fmt(f + timedelta(seconds=20000))}"'
            parts.append(f'{{"from":"{fmt(f)}","to":{to}}}')
        susp = ',"suspensions":[' + ",".join(parts) + "]"
    prio = "Urgent" if rng.randrange(50) == 0 else rng.choice(prios)
    cat = "in_loco" if rng.randrange(10) == 0 else "generale"
    now = r + timedelta(seconds=rng.randrange(12 * 86400))
    out.write(f'{{"id":"T-{i}","received_at":"{fmt(r)}","priority":"{prio}","category":"{cat}"{susp},"now":"{fmt(now)}"}}\n')
