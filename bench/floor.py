#!/usr/bin/env python3
"""What the file I/O of bench/throughput.sh costs alone, with no laser at all: a floor under the
coordinator's CPU per candidate there (docs/performance.md#coordinator-cost-per-candidate).

Reading: with --input, the file read twice in 4 MiB chunks (laser's validating scan and its batch
reads each read it once), nothing done with the bytes. Writing: it writes --batches files of --bytes bytes each (the defaults are what the 100,000-prompt throughput run
writes: 1,563 batch files, 141 KB each, 220 MB) the way laser's output thread does (AtomicFile: a temp
file, one write, fsync, rename, fsync of the directory) and reports this process's CPU time (user +
system, the kernel's page-cache copy and fsync included) per candidate of that run (--candidates).
The last line printed is one JSON object.

    python3 bench/throughput.py --write-input /tmp/in.jsonl     # the 852 MB input, once
    python3 bench/floor.py --input /tmp/in.jsonl                 # 3 repeats
"""
import argparse, json, os, resource, shutil, statistics, tempfile, time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--input", help="a JSONL input to read twice (bench/throughput.py --write-input)")
ap.add_argument("--batches", type=int, default=1563)
ap.add_argument("--bytes", type=int, default=141_000)
ap.add_argument("--candidates", type=int, default=800_000)
ap.add_argument("--repeats", type=int, default=3)
args = ap.parse_args()

def cpu_now():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


reads = []
if args.input:
    buf = bytearray(4 << 20)
    for _ in range(args.repeats):
        c = cpu_now()
        for _pass in range(2):
            with open(args.input, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
        reads.append(cpu_now() - c)
        print(f"  read {args.input} twice: CPU {reads[-1]:.2f} s ({1e6 * reads[-1] / args.candidates:.2f} us per candidate)", flush=True)

payload = (b'{"prompt":"Question 1","chosen":"' + b"x" * 1000 + b'\\n' * 10 + b'"}\n') * (args.bytes // 1050)
runs = []
for _ in range(args.repeats):
    d = tempfile.mkdtemp(prefix="laser-write-floor-")
    before = resource.getrusage(resource.RUSAGE_SELF)
    t = time.monotonic()
    dfd = os.open(d, os.O_RDONLY)
    for i in range(args.batches):
        path = os.path.join(d, f"batch-{i:06d}.jsonl")
        tmp = os.path.join(d, f".batch-{i:06d}.jsonl.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, payload)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, path)
        os.fsync(dfd)
    os.close(dfd)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    runs.append({"cpu_s": cpu, "wall_s": wall})
    print(f"  {args.batches} files, {len(payload) * args.batches / 1e6:.0f} MB: CPU {cpu:.2f} s ({1e6 * cpu / args.candidates:.2f} us per candidate), wall {wall:.2f} s", flush=True)
    shutil.rmtree(d, ignore_errors=True)
cpu = statistics.median(r["cpu_s"] for r in runs)
read = statistics.median(reads) if reads else None
print(json.dumps({"benchmark": "floor", "read_twice_cpu_us_per_candidate": round(1e6 * read / args.candidates, 3) if reads else None,
                  "runs_read_cpu_s": [round(r, 3) for r in reads], "batches": args.batches, "bytes_per_file": len(payload), "candidates": args.candidates,
                  "write_cpu_s": round(cpu, 3), "write_cpu_us_per_candidate": round(1e6 * cpu / args.candidates, 3),
                  "runs_write_cpu_s": [round(r["cpu_s"], 3) for r in runs], "runs_wall_s": [round(r["wall_s"], 3) for r in runs]}))
