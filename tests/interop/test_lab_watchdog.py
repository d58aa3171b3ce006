#!/usr/bin/python3
"""The lab cleans up after a test process that dies without running its cleanup (SIGKILL, a CTest
timeout): its watchdog must stop every server it started. Uses the lab's command line with one
Prosody (no ejabberd, to stay fast).

Exit 0 on success, 1 on failure, 77 when a package is missing.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lab import LabSkip, SKIP_RC, pid_alive, port_listening, process_family, requirements  # noqa: E402


def main():
    try:
        requirements(need_ejabberd=False)
    except LabSkip as e:
        print(f"SKIP: {e}", flush=True)
        return SKIP_RC
    t0 = time.monotonic()
    cli = subprocess.Popen([sys.executable, "-B", os.path.join(HERE, "lab.py"), "--prosody", "a.example:sasl",
                            "--gateway", "gw.example", "--user", "alice@a.example"],
                           stdout=subprocess.PIPE, text=True)
    state = None
    pids = set()
    try:
        out = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = cli.stdout.readline()
            if not line:
                break
            out += line
            if line.startswith("}"):
                state = json.loads(out)
                break
        if state is None:
            print(f"FAIL: the lab command printed no state: {out!r}")
            return 1
        pids = process_family([cli.pid]) - {cli.pid}
        ports = list(state["ports"].values())
        print(f"lab up in {time.monotonic() - t0:.2f} s: {len(pids)} processes, ports {ports}", flush=True)
        if not any(port_listening(p) for p in ports):
            print("FAIL: nothing listens on the lab's ports")
            return 1
        cli.kill()  # no atexit, no finally: only the watchdog can clean up
        cli.wait()
        t = time.monotonic()
        while time.monotonic() - t < 10 and any(pid_alive(p) for p in pids):
            time.sleep(0.05)
        left = sorted(p for p in pids if pid_alive(p))
        busy = [p for p in ports if port_listening(p) or port_listening(p, "udp")]
        print(f"after SIGKILL of the test process: {len(pids) - len(left)}/{len(pids)} processes gone "
              f"in {time.monotonic() - t:.2f} s", flush=True)
        if left or busy:
            print(f"FAIL: survivors {left}, ports in use {busy}")
            return 1
        return 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        if state:
            # The watchdog leaves the directory for post-mortem logs; this test has no use for it.
            shutil.rmtree(state["root"], ignore_errors=True)
        for p in pids:  # only survivors when the watchdog failed
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
