#!/usr/bin/env python3
"""tools/bench space: what a tree of small files costs on the storage nodes' disks.

A dev cluster (tools/dev-cluster: a tracker and one Raft group of three storage nodes, default
flags) is started in a scratch directory and mounted; `cp -a TREE` goes onto the mount. Printed as
"name value unit" lines:

  space.tree.files           files copied
  space.tree.apparent        apparent size of the tree (du --apparent-size), bytes
  space.tree.local_ratio     du / apparent size of the tree on the local disk (ext4's own figure)
  space.copy.files_per_s     files per second of the cp -a
  space.copy.ratio           du of each node's data directory / apparent size (the worst node)
  space.churn.ops            random overwrites, appends and deletes through the mount
  space.churn.ratio          the same ratio after the churn, once deleted space is given back
  space.rm.left              bytes left in the largest data directory after rm -rf of everything
  space.rm.host_freed        bytes the host file system got back from the rm -rf (df before/after)

The cluster is always stopped and the scratch directory removed (--keep keeps it).
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def du(path, apparent=False):
    args = ["du", "-s", "-B1"] + (["--apparent-size"] if apparent else []) + [path]
    return int(subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()[0])


def host_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def say(*a):
    print("#", *a, file=sys.stderr, flush=True)


def figure(name, value, unit):
    print(f"{name} {value} {unit}", flush=True)


def churn(mnt, ops, rng):
    """Random overwrites, appends and deletes of the files under mnt; returns what was done."""
    files = []
    for d, _, names in os.walk(mnt):
        files += [os.path.join(d, n) for n in names if not os.path.islink(os.path.join(d, n))]
    done = {"overwrite": 0, "append": 0, "delete": 0}
    for i in range(ops):
        if not files:
            break
        k = rng.randrange(len(files))
        path = files[k]
        op = rng.choice(("overwrite", "overwrite", "append", "delete"))
        if op == "delete":
            os.unlink(path)
            files[k] = files[-1]
            files.pop()
        else:
            size = os.path.getsize(path)
            data = rng.randbytes(rng.choice((100, 1000, 4096, 20000, 100000)))
            with open(path, "r+b") as f:
                if op == "overwrite":
                    f.seek(rng.randrange(size + 1))
                else:
                    f.seek(0, os.SEEK_END)
                f.write(data)
        done[op] += 1
        if (i + 1) % 1000 == 0:
            say(f"churn: {i + 1}/{ops} operations")
    return done


def main():
    ap = argparse.ArgumentParser(prog="tools/bench space", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", default="/usr/include", help="the tree to copy (default /usr/include)")
    ap.add_argument("--churn", type=int, default=10000, help="random operations after the copy (default 10000)")
    ap.add_argument("--dir", default="", help="scratch directory (default a new ./var/bench-space.XXXXXX)")
    ap.add_argument("--base-port", type=int, default=7800, help="first storage port (tracker on PORT-100)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory and the cluster's logs")
    ap.add_argument("--seed", type=int, default=14, help="seed of the churn")
    a = ap.parse_args()
    if not os.path.isdir(a.tree):
        sys.exit(f"bench: --tree {a.tree} is not a directory")

    os.makedirs(os.path.join(ROOT, "var"), exist_ok=True)
    made = not a.dir
    scratch = tempfile.mkdtemp(prefix="bench-space.", dir=os.path.join(ROOT, "var")) if made else os.path.abspath(a.dir)
    os.makedirs(scratch, exist_ok=True)
    cl, mnt = os.path.join(scratch, "cluster"), os.path.join(scratch, "mnt")
    dev = [os.path.join(ROOT, "tools", "dev-cluster")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        say(f"starting a dev cluster in {cl}, mounted at {mnt}")
        subprocess.run(dev + ["up", "--dir", cl, "--mnt", mnt, "--base-port", str(a.base_port)], check=True,
                       stdout=sys.stderr, timeout=600, start_new_session=True)
        data = os.path.join(cl, "data")
        nodes = sorted(os.path.join(data, n) for n in os.listdir(data) if n.startswith("storage-"))

        files = sum(len(f) for _, _, f in os.walk(a.tree))
        apparent = du(a.tree, apparent=True)
        figure("space.tree.files", files, "files")
        figure("space.tree.apparent", apparent, "bytes")
        figure("space.tree.local_ratio", f"{du(a.tree) / apparent:.3f}", "ratio")

        say(f"cp -a {a.tree} ({files} files, {apparent} bytes) onto the mount")
        t0 = time.monotonic()
        subprocess.run(["cp", "-a", a.tree, mnt + "/"], check=True, timeout=3600)
        secs = time.monotonic() - t0
        figure("space.copy.seconds", f"{secs:.1f}", "s")
        figure("space.copy.files_per_s", f"{files / secs:.0f}", "files/s")
        time.sleep(3)  # heartbeats, trimming
        figure("space.copy.ratio", f"{max(du(n) for n in nodes) / apparent:.3f}", "ratio")

        rng = random.Random(a.seed)
        say(f"churn: {a.churn} random overwrites, appends and deletes")
        t0 = time.monotonic()
        done = churn(os.path.join(mnt, os.path.basename(a.tree.rstrip("/"))), a.churn, rng)
        figure("space.churn.ops", sum(done.values()), "ops")
        figure("space.churn.seconds", f"{time.monotonic() - t0:.1f}", "s")
        time.sleep(5)  # deleted slices are given back in the background
        now_apparent = du(mnt, apparent=True)
        figure("space.churn.apparent", now_apparent, "bytes")
        figure("space.churn.ratio", f"{max(du(n) for n in nodes) / now_apparent:.3f}", "ratio")

        before = host_free(data)
        say("rm -rf of everything on the mount")
        for e in os.listdir(mnt):
            p = os.path.join(mnt, e)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        time.sleep(5)
        figure("space.rm.left", max(du(n) for n in nodes), "bytes")
        figure("space.rm.host_freed", host_free(data) - before, "bytes")
    finally:
        if os.path.isdir(os.path.join(cl, "run")):
            subprocess.run(dev + ["down", "--dir", cl], stdout=sys.stderr, timeout=300)
        if a.keep:
            say(f"kept {scratch}")
        elif made:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            shutil.rmtree(cl, ignore_errors=True)
            shutil.rmtree(mnt, ignore_errors=True)


if __name__ == "__main__":
    main()
