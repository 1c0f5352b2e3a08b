"""Store benchmark: modelbox artifact add/get against plain s3fs on a real SeaweedFS.

    python bench/store.py              # 1 GiB file, 2,000 x 64 KiB folder (the issue's sizes)
    python bench/store.py --quick      # 64 MiB and 200 files, no verdicts

Every step runs as its own process, modelbox and the s3fs baseline alike, so the table
compares like with like (start-up included) and reports peak RSS (modelbox/baseline). The
modelbox cache is emptied before each `get` so that the object really crosses the wire.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from s3server import running_s3_server  # noqa: E402 - the tests' SeaweedFS launcher

BUCKET = "bench"
PY = sys.executable
MODELBOX = str(Path(PY).with_name("modelbox"))


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        detail = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(argv[:3])} failed: {detail}")
    return elapsed, usage.ru_maxrss / 1024


def s3fs(code: str, env: dict[str, str], cwd: Path) -> tuple[float, float]:
    prelude = (
        "import os, s3fs; fs = s3fs.S3FileSystem(endpoint_url=os.environ['AWS_ENDPOINT_URL']);"
    )
    return run([PY, "-c", prelude + code], env, cwd)


def make_data(work: Path, big_mb: int, small_files: int) -> tuple[Path, Path]:
    big = work / "data" / "model.bin"
    big.parent.mkdir(parents=True)
    with big.open("wb") as f:
        block = os.urandom(1 << 20)
        for i in range(big_mb):
            f.write(hashlib.sha256(block + i.to_bytes(4, "big")).digest() * (1 << 15))
    folder = work / "data" / "shards"
    folder.mkdir()
    for i in range(small_files):
        (folder / f"part-{i:05d}.bin").write_bytes(os.urandom(64 << 10))
    return big, folder


def readd_seconds(path: Path, env: dict[str, str], reg: Path) -> float:
    """Seconds one `upload_artifact` of an unchanged file takes in a warm process.

    The first call in a process also imports s3fs/botocore and opens a connection (~0.5 s,
    once per process); that is start-up, not the cost of re-adding, so it is done first.
    """
    code = (
        "import sys,time;from modelbox import ModelBoxClient;"
        "mv=ModelBoxClient('.').model_version('b/m@v1');"
        "mv.upload_artifact([sys.argv[1]]);"
        "t=time.perf_counter();mv.upload_artifact([sys.argv[1]]);"
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run([PY, "-c", code, str(path)], env=env, cwd=reg, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def median(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.big_mb, args.files, args.repeat = 64, 200, 1
    work = Path(tempfile.mkdtemp(prefix="modelbox-bench-store-"))
    rows: list[tuple[str, float, float, str, float | None]] = []
    try:
        with running_s3_server(work / "s3") as server:
            server.create_bucket(BUCKET)
            env = {**os.environ, **server.env(), "MODELBOX_CACHE_DIR": str(work / "cache")}
            big, folder = make_data(work, args.big_mb, args.files)
            reg = work / "reg"
            subprocess.run([MODELBOX, "init", str(reg)], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            for argv in (["model", "create", "b/m"], ["version", "create", "b/m", "v1"]):
                subprocess.run([MODELBOX, *argv], env=env, cwd=reg, check=True,
                               stdout=subprocess.DEVNULL)

            def fresh_prefix(i: int) -> dict[str, str]:
                return {**env, "MODELBOX_STORE": f"s3://{BUCKET}/mb{i}-{time.time_ns()}"}

            def clear_cache() -> None:
                shutil.rmtree(work / "cache", ignore_errors=True)

            size = f"{args.big_mb} MiB"
            base_put, mb_add, base_get, mb_get, readd = [], [], [], [], []
            for i in range(args.repeat):
                key = f"{BUCKET}/plain{i}-{time.time_ns()}"
                base_put.append(s3fs(f"fs.put_file({str(big)!r}, {key!r})", env, work))
                e = fresh_prefix(i)
                clear_cache()
                mb_add.append(run([MODELBOX, "artifact", "add", "b/m@v1", str(big), "-q"], e, reg))
                readd.append(readd_seconds(big, e, reg))
                out = work / f"get{i}"
                out.mkdir()
                base_get.append(s3fs(f"fs.get_file({key!r}, {str(out / 'plain.bin')!r})", env,
                                     work))
                clear_cache()
                mb_get.append(run([MODELBOX, "get", "b/m@v1", "-o", str(out), "-q"], e, reg))
                shutil.rmtree(out, ignore_errors=True)
            (pt, prss), (mt, mrss) = median(base_put), median(mb_add)
            rows.append((f"add {size} (first) vs s3fs put_file", mt, pt,
                         f"{mrss:.0f}/{prss:.0f}", 1.3))
            (gt, grss), (mg, mgrss) = median(base_get), median(mb_get)
            rows.append((f"get {size} vs s3fs get_file", mg, gt,
                         f"{mgrss:.0f}/{grss:.0f}", 1.3))
            rows.append((f"re-add unchanged {size} (API call)", statistics.median(readd), 0.1,
                         "", None))

            files = sorted(str(p) for p in folder.iterdir())
            d_put, d_add, d_get, d_mget = [], [], [], []
            for i in range(args.repeat):
                prefix = f"{BUCKET}/plaindir{i}-{time.time_ns()}"
                keys = [f"{prefix}/{Path(f).name}" for f in files]
                plan = work / "plan.json"  # 2,000 paths do not fit on a command line
                plan.write_text(json.dumps([files, keys]))
                d_put.append(s3fs(f"import json; f, k = json.load(open({str(plan)!r})); "
                                  "fs.put(f, k)", env, work))
                e = fresh_prefix(100 + i)
                subprocess.run([MODELBOX, "version", "create", "b/m", f"d{i}"], env=env,
                               cwd=reg, check=True, stdout=subprocess.DEVNULL)
                d_add.append(run([MODELBOX, "artifact", "add", f"b/m@d{i}", str(folder), "-q"],
                                 e, reg))
                out = work / f"dget{i}"
                (out / "plain").mkdir(parents=True)
                outs = [str(out / "plain" / Path(f).name) for f in files]
                plan.write_text(json.dumps([keys, outs]))
                d_get.append(s3fs(f"import json; k, o = json.load(open({str(plan)!r})); "
                                  "fs.get(k, o)", env, work))
                clear_cache()
                d_mget.append(run([MODELBOX, "get", f"b/m@d{i}", "-o", str(out / "mb"), "-q"],
                                  e, reg))
                shutil.rmtree(out, ignore_errors=True)
            n = f"{args.files} x 64 KiB"
            rows.append((f"add folder {n} vs s3fs put", median(d_add)[0], median(d_put)[0],
                         "", 1.0))
            rows.append((f"get folder {n} vs s3fs get", median(d_mget)[0], median(d_get)[0],
                         "", 1.0))

            hash_code = (
                "import hashlib,sys;f=open(sys.argv[1],'rb');hashlib.file_digest(f,'sha256')"
            )
            plain = median([run([PY, "-c", hash_code, str(big)], env, work)
                            for _ in range(args.repeat)])
            ours = median([run([PY, "-c", "import sys;from pathlib import Path;"
                                "from modelbox.objects import hash_file;"
                                "hash_file(Path(sys.argv[1]))", str(big)], env, work)
                           for _ in range(args.repeat)])
            rows.append((f"hash {size} vs hashlib.file_digest", ours[0], plain[0], "", 1 / 0.9))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"store: SeaweedFS on loopback, median of {args.repeat}, {os.cpu_count()} cores")
    print(f"| {'scenario':<42} | {'modelbox':>9} | {'baseline':>9} | {'ratio':>6} | "
          f"{'target':>7} | {'RSS MB':>8} | verdict |")
    print(f"|{'-' * 44}|{'-' * 11}|{'-' * 11}|{'-' * 8}|{'-' * 9}|{'-' * 10}|---------|")
    failed = False
    for name, ours_s, base_s, rss, target in rows:
        if target is None:  # an absolute target in seconds
            ok, ratio, goal = ours_s <= base_s, "", f"<={base_s:g}s"
            base_txt = "-"
        else:
            ratio_v = ours_s / base_s if base_s else float("inf")
            ok, ratio, goal = ratio_v <= target, f"{ratio_v:.2f}", f"<={target:.2f}x"
            base_txt = f"{base_s:.2f}s"
        failed |= not ok
        verdict = "-" if args.quick else ("pass" if ok else "FAIL")
        print(f"| {name:<42} | {ours_s:>8.2f}s | {base_txt:>9} | {ratio:>6} | {goal:>7} | "
              f"{rss:>8} | {verdict:<7} |")
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
