"""What the benchmark drivers in bench/ share: logging to stderr, a free loopback port, and reaping
processes with their CPU time (os.wait4, which Popen.wait does not give)."""
import os
import signal
import socket
import sys
import time


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def demo_data(laser, out, per_task, iterations, seed):
    """Writes `laser demo-data` into `out`; returns the input files, iteration 1 first."""
    import subprocess
    subprocess.run([laser, "demo-data", "--out", out, "--iterations", str(iterations), "--prompts-per-task",
                    str(per_task), "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
    return [os.path.join(out, "input", f"iteration-{i}.jsonl") for i in range(1, iterations + 1)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(proc):
    """Waits for a Popen process; sets its returncode and returns its resource usage."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage


def reap(procs, timeout=15.0):
    """Waits for each process (SIGKILL after `timeout` seconds in all); returns their CPU seconds."""
    cpu = 0.0
    deadline = time.monotonic() + timeout
    for p in procs:
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                cpu += usage.ru_utime + usage.ru_stime
                break
            if time.monotonic() > deadline:
                p.send_signal(signal.SIGKILL)
            time.sleep(0.01)
    return cpu
