#!/usr/bin/python3
"""Flow control: a component that stops reading must slow its senders down, not make the gateway
bounce or drop their stanzas.

bench/run-fedgate-bench.sh builds a throw-away gateway (2 workers) with a component route and
partners authenticated with TLS + SASL EXTERNAL; fedgate-bench (--sink-stall-ms) is the component
and stops reading for a while when the run starts, while its partner streams keep sending at a
set rate. Far more arrives meanwhile than the component's send queue and backlog can hold, so
the gateway must pause the partner streams (the kernel's socket buffers then hold the rest) and
resume them once the component reads again. Asserts:
  * every stanza sent arrived at the component (fedgate-bench exit 0), in the run and after it;
  * the stall really held back at least STALL_MIN stanzas (sent minus received at its end);
  * the gateway paused streams (fedgate_flow_pauses_total > 0) and bounced or refused nothing;
  * a second, full-speed run (no stall) from many streams also loses nothing.

Exit 0 on success, 1 on failure, 77 when a binary is missing.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import SKIP_RC, find_binary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("FEDGATE_SOURCE_DIR") or os.path.join(HERE, "..", "..")
STALL_MIN = 16000


def run_bench(build, args, timeout=240):
    cmd = [os.path.join(SRC, "bench", "run-fedgate-bench.sh"), "--build", build, "--workers", "2",
           "--partners", "4", "--"] + args
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    print(p.stdout, flush=True)
    return p.returncode, p.stdout


def gateway_counter(out, name):
    """Sum of the gateway's series `name` as the script prints them ("gateway: name{..} v")."""
    total = 0
    for m in re.finditer(r"^gateway: " + re.escape(name) + r"(\{[^}]*\})? (\d+)$", out, re.M):
        total += int(m.group(2))
    return total


def main():
    bench = find_binary("fedgate-bench")
    if not bench:
        print("SKIP: fedgate-bench is not built")
        return SKIP_RC
    build = os.path.dirname(os.path.dirname(bench))
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    # 1. The component stops reading for 3 s while 100 streams send 10,000 stanzas/s.
    # The component holds a connection per worker (the script's default --sink-conns), each with
    # its own send queue and backlog: 10,000/s for the 3 s stall is about 6 MiB per connection,
    # more than the two can hold, so the partner streams must be paused.
    rc, out = run_bench(build, ["--streams", "100", "--rate", "10000", "--duration", "6",
                                "--baseline-secs", "1", "--sink-stall-ms", "3000"])
    check(rc == 0, f"stall: every stanza arrived (fedgate-bench exit {rc})")
    check("not reading for 3000 ms" in out, "stall: the component stopped reading")
    held = 0
    for m in re.finditer(r"\[run +[123]s\] sent (\d+) recv (\d+)", out):
        held = max(held, int(m.group(1)) - int(m.group(2)))
    check(held >= STALL_MIN, f"stall: {held} stanzas were held back while the component stalled "
          f"(at least {STALL_MIN})")
    pauses = gateway_counter(out, "fedgate_flow_pauses_total")
    check(pauses > 0, f"stall: the gateway paused partner streams ({pauses} pauses)")
    bounced = gateway_counter(out, "fedgate_stanzas_bounced_total")
    refused = gateway_counter(out, "fedgate_stanzas_refused_total")
    check(bounced == 0 and refused == 0,
          f"stall: nothing bounced ({bounced}) or refused ({refused})")

    # 2. Full speed from 400 streams: past the gateway's peak, senders are slowed, not bounced.
    rc, out = run_bench(build, ["--streams", "400", "--rate", "0", "--duration", "4",
                                "--baseline-secs", "1"])
    check(rc == 0, f"full speed: every stanza arrived (fedgate-bench exit {rc})")
    bounced = gateway_counter(out, "fedgate_stanzas_bounced_total")
    refused = gateway_counter(out, "fedgate_stanzas_refused_total")
    check(bounced == 0 and refused == 0,
          f"full speed: nothing bounced ({bounced}) or refused ({refused})")

    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
