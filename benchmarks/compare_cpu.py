"""minicnn (NumPy backend) vs PyTorch vs Keras 3 on TensorFlow, on the CPU: the book's MNIST CNN.

    pip install numba threadpoolctl   # minicnn's fast CPU path (optional, see RESULTS.md)
    # only for this benchmark (minicnn never imports them), here or in other venvs:
    pip install torch==2.13.0 tensorflow==2.21.0 keras==3.15.1
    python benchmarks/compare_cpu.py                      # every side that imports, 5 rounds
    python benchmarks/compare_cpu.py --sides minicnn,tf --tf-python /tmp/tfvenv/bin/python
    python benchmarks/compare_cpu.py --busy-core          # + each side beside a spinning process
    python benchmarks/compare_cpu.py --epoch              # + one epoch of real MNIST each (slow)
    python benchmarks/compare_cpu.py --against /tmp/old   # this checkout vs another (e.g. a
                                                          # `git worktree` of an older commit)

The model is conv32-pool-conv64-pool-conv64-flatten-dense64-dense10 (93,322
parameters), Keras's RMSprop (lr 1e-3, rho 0.9, epsilon 1e-7), batch 64,
categorical cross-entropy on softmax, accuracy computed every step (as
``train_on_batch`` does).

Sides (``--sides``, default every one whose framework imports in its
interpreter; one that does not is skipped with a line saying why):
``minicnn`` (``train_on_batch`` / ``predict``, this interpreter), ``torch``
(the same model by hand, channels_last unless ``--torch-format nchw``, default
threads; ``--torch-python``), ``tf`` (Keras 3 ``train_on_batch`` on tensors made
once, its compiled train function, no XLA as Keras's "auto" chooses on a CPU,
``--tf-jit`` for XLA; inference ``predict_on_batch``; ``--tf-python``). The
worker code is benchmarks/cpu_workers.py.

Method: the parent makes one random batch and one set of initial weights
(Keras layouts) in a file that every worker reads, so each side's first-step
loss on them is printed and must agree. Each side runs in its own fresh
process, the order A B C in odd rounds and C B A in even ones; each worker
warms up (excluded) and reports the median of its timed steps. Every worker
gets this environment plus the same glibc malloc setting,
``MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=1000000000`` (without it
PyTorch and TF pay page faults every step; ``--default-malloc`` leaves glibc's
defaults). Reported, median over rounds: ms per training step (batch 64), ms
and images/s of inference (batch 1000), peak RSS (ru_maxrss of the worker,
inference batch included), and with ``--epoch`` the wall time of one epoch of
real MNIST (60,000 images /255, shuffled batches of 64) and the test accuracy.

``--busy-core``: every side also runs beside a spinning single-threaded
process (``while True: pass``, started before the worker, killed after it)
with its default threads, and quiet with one thread (minicnn
``MINICNN_NUM_THREADS=1``, torch ``set_num_threads(1)``, TF intra- and
inter-op threads 1); printed: ``busy-core ratio: <side> busy / <side> 1-thread
quiet``, the issue's target being at most ~1.3x.

Ratios are minicnn / other for times and RSS, other / minicnn for images/s:
above 1 means minicnn is slower or bigger.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from cpu_workers import ROOT, make_inputs

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "cpu_workers.py")
DEFAULT_MNIST = os.path.normpath(os.path.join(ROOT, "..", "shared", "datasets", "mnist"))
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}
SPIN = "while True: pass"
LABELS = {"minicnn": "minicnn", "torch": "PyTorch", "tf": "TF/Keras", "baseline": "other"}
SHORT = {"minicnn": "mc", "torch": "torch", "tf": "TF", "baseline": "other"}  # ratio columns
# what each side imports to say it is there, and the versions it prints
PROBES = {
    "minicnn": "import sys, os; sys.path.insert(0, os.environ.get('MINICNN_BENCH_ROOT', {root!r}))\n"
               "import minicnn, numpy\ntry:\n    import numba; nb = ', numba ' + numba.__version__\n"
               "except ImportError:\n    nb = ', no numba'\n"
               "print('minicnn', minicnn.__version__ + ', numpy ' + numpy.__version__ + nb)",
    "torch": "import torch; print('torch', torch.__version__)",
    "tf": "import tensorflow as tf, keras; print('tensorflow', tf.__version__ + ', keras ' + keras.__version__)",
}
MODES = ("quiet", "busy", "1-thread")


# ----------------------------------------------------------------------------
# sides, environments, workers
# ----------------------------------------------------------------------------
def python_of(args, side):
    return {"torch": args.torch_python, "tf": args.tf_python}.get(side) or sys.executable


def worker_env(args, side, mode):
    env = dict(os.environ)
    for k in MALLOC:
        env.pop(k, None)
    if not args.default_malloc:
        env.update(MALLOC)
    if side == "baseline":
        env["MINICNN_BENCH_ROOT"] = os.path.abspath(args.against)
    if side in ("minicnn", "baseline") and mode == "1-thread":
        env["MINICNN_NUM_THREADS"] = "1"
    if side == "tf":
        env.setdefault("KERAS_BACKEND", "tensorflow")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def probe(args, side):
    """(version text, None) when the side's framework imports in its interpreter, else (None, why)."""
    code = PROBES["minicnn" if side == "baseline" else side].replace("{root!r}", repr(ROOT))
    python = python_of(args, side)
    try:
        res = subprocess.run([python, "-c", code], capture_output=True, text=True,
                             env=worker_env(args, side, "quiet"), timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{python}: {e}"
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["exit %d" % res.returncode])[-1]
        return None, f"it does not import in {python}: {last}"
    return res.stdout.strip().splitlines()[-1], None


def run_worker(args, side, mode, inputs):
    cfg = {"side": "minicnn" if side == "baseline" else side, "inputs": inputs,
           "steps": args.steps, "warmup": args.warmup, "infer_reps": args.infer_reps,
           "epoch": bool(args.epoch and mode == "quiet"), "mnist": args.mnist,
           "threads": 1 if mode == "1-thread" else 0, "torch_format": args.torch_format,
           "tf_jit": args.tf_jit, "tf_infer": args.tf_infer}
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if mode == "busy" else None
    try:
        res = subprocess.run([python_of(args, side), WORKER, json.dumps(cfg)], capture_output=True,
                             text=True, env=worker_env(args, side, mode))
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"{side} worker ({mode}) failed (exit {res.returncode})")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------
# the machine
# ----------------------------------------------------------------------------
def lscpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def machine():
    """One line: CPU model, cores, vector width, L2; then BLAS as threadpoolctl sees it."""
    info = lscpu()
    name = info.get("Model name") or platform.processor() or platform.machine()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    flags = info.get("Flags", "").split()
    vec = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    line = (f"machine: {name}, {info.get('CPU(s)', os.cpu_count())} CPUs ({usable} usable, "
            f"{info.get('Thread(s) per core', '?')} thread(s) per core), {vec}, L2 {info.get('L2 cache', '?')}")
    try:
        from threadpoolctl import threadpool_info
        blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture') or ''} "
                         f"{i.get('num_threads')} threads".replace("  ", " ") for i in threadpool_info())
    except ImportError:
        blas = "threadpoolctl not installed"
    return line + f"\nnumpy {np.__version__} (BLAS: {blas}); python {platform.python_version()}"


# ----------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------
def print_header(args, sides, versions, results):
    print()
    print(machine())
    if args.load_at_start > 0.7:
        print(f"load average {args.load_at_start:.2f} when this run started: other processes were running, "
              f"the times are noisy")
    for s in sides:
        threads = results[(s, "quiet")][0].get("threads")
        where = python_of(args, s) if python_of(args, s) != sys.executable else "this python"
        where += f", {os.path.abspath(args.against)}" if s == "baseline" else ""
        extra = f", format {args.torch_format}" if s == "torch" else ""
        extra += f", jit_compile {bool(args.tf_jit)}, inference {args.tf_infer}" if s == "tf" else ""
        print(f"  {LABELS[s]:<9}{versions[s]} ({where}); threads {threads}{extra}")
    print("malloc: " + ("glibc defaults (--default-malloc)" if args.default_malloc else
                        " ".join(f"{k}={v}" for k, v in MALLOC.items()) + " in every worker"))
    if args.busy_core:
        print(f"busy core: `{SPIN}` in a separate process beside each 'busy' worker")
    losses = {s: results[(s, "quiet")][0]["first_loss"] for s in sides}
    spread = max(losses.values()) - min(losses.values())
    print("first-step loss on the shared weights: "
          + ", ".join(f"{LABELS[s]} {v:.6f}" for s, v in losses.items())
          + f" (spread {spread:.1e}{'' if spread <= 1e-5 else ': MORE THAN 1e-5, NOT THE SAME FUNCTION'})")


def print_table(args, sides, results):
    def med(side, key, mode="quiet"):
        return statistics.median(r[key] for r in results[(side, mode)])

    ref, others = sides[0], sides[1:]
    rows = [("train step, batch 64 (ms)", "step_ms", "quiet", False),
            ("inference, batch 1000 (ms)", "infer_ms", "quiet", False),
            ("inference, batch 1000 (images/s)", "images_per_s", "quiet", True),
            ("peak RSS (MiB)", "rss_mib", "quiet", False)]
    if args.epoch:
        rows += [("one epoch of MNIST (s)", "epoch_s", "quiet", False),
                 ("test accuracy after it", "test_acc", "quiet", None),
                 ("peak RSS with the epoch (MiB)", "rss_epoch_mib", "quiet", False)]
    if args.busy_core:
        rows += [("train step, one core busy (ms)", "step_ms", "busy", False),
                 ("train step, 1 thread quiet (ms)", "step_ms", "1-thread", False)]
    head = f"{'median of ' + str(args.rounds) + ' rounds':<34}"
    head += "".join(f"{LABELS[s]:>10}" for s in sides)
    head += "".join(f"{SHORT[ref] + '/' + SHORT[s]:>12}" for s in others)
    print(head)
    for label, key, mode, inverse in rows:
        vals = [med(s, key, mode) for s in sides]
        line = f"{label:<34}" + "".join(f"{v:>10.{4 if inverse is None else 2}f}" for v in vals)
        if inverse is not None:
            line += "".join(f"{(v / vals[0] if inverse else vals[0] / v):>11.2f}x" for v in vals[1:])
        print(line)
    if args.busy_core:
        print()
        for s in sides:
            busy, one, quiet = (med(s, "step_ms", m) for m in ("busy", "1-thread", "quiet"))
            print(f"busy-core ratio: {LABELS[s]} busy / {LABELS[s]} 1-thread quiet = {busy / one:.2f}x "
                  f"(busy / default-threads quiet = {busy / quiet:.2f}x)")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", help="comma-separated, of minicnn,torch,tf (default: every one that imports)")
    ap.add_argument("--torch-python", metavar="PATH", help="interpreter for the torch side (default: this one)")
    ap.add_argument("--tf-python", metavar="PATH", help="interpreter for the tf side (default: this one)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every side (default 5)")
    ap.add_argument("--steps", type=int, default=100, help="timed training steps per worker")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    ap.add_argument("--infer-reps", type=int, default=10, help="timed batch-1000 predictions")
    ap.add_argument("--busy-core", action="store_true",
                    help="also run every side beside a spinning process, and with 1 thread quiet")
    ap.add_argument("--default-malloc", action="store_true",
                    help="glibc's default malloc thresholds instead of the same tuned ones for all")
    ap.add_argument("--epoch", action="store_true", help="also time one epoch of real MNIST (slow)")
    ap.add_argument("--mnist", default=DEFAULT_MNIST, help="folder of the gz IDX files")
    ap.add_argument("--torch-format", choices=("channels_last", "nchw"), default="channels_last")
    ap.add_argument("--tf-jit", action="store_true", help="Keras jit_compile=True (XLA) for the tf side")
    ap.add_argument("--tf-infer", choices=("predict_on_batch", "call"), default="predict_on_batch")
    ap.add_argument("--against", metavar="DIR",
                    help="compare with minicnn from another checkout instead of the other frameworks")
    args = ap.parse_args(argv)
    if args.sides:
        args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
        unknown = [s for s in args.sides if s not in PROBES]
        if unknown or "minicnn" not in args.sides:
            ap.error(f"--sides: a list of minicnn,torch,tf with minicnn in it. Received: {unknown or args.sides}")
    return args


def main(argv=None):
    args = parse_args(argv)
    args.load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    wanted = ["minicnn", "baseline"] if args.against else (args.sides or ["minicnn", "torch", "tf"])
    if args.against:
        LABELS["minicnn"] = SHORT["minicnn"] = "this"
    sides, versions = [], {}
    for s in wanted:
        versions[s], why = probe(args, s)
        if why:
            if s in ("minicnn", "baseline"):
                raise SystemExit(f"{LABELS[s]}: {why}")
            print(f"skipping the {s} side: {why}", flush=True)
        else:
            sides.append(s)
    modes = MODES if args.busy_core else ("quiet",)
    entries = [(s, m) for s in sides for m in modes]
    results = {e: [] for e in entries}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "inputs.npz")
        make_inputs(inputs, 64, 1000)
        for r in range(args.rounds):
            for side, mode in (entries if r % 2 == 0 else entries[::-1]):
                res = run_worker(args, side, mode, inputs)
                results[(side, mode)].append(res)
                extra = f", epoch {res['epoch_s']:.1f} s, test acc {res['test_acc']:.4f}" if "epoch_s" in res else ""
                print(f"round {r + 1} {LABELS[side]:<9}{mode:<9}: step {res['step_ms']:7.2f} ms, "
                      f"inference {res['infer_ms']:7.1f} ms ({res['images_per_s']:6.0f} img/s), "
                      f"peak RSS {res['rss_mib']:.0f} MiB{extra}", flush=True)
    print_header(args, sides, versions, results)
    print_table(args, sides, results)


if __name__ == "__main__":
    main()
