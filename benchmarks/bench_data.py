"""Data-pipeline speed targets of issue 3, measured rather than asserted in tests.

    OMP_NUM_THREADS=1 python benchmarks/bench_data.py            # QM9 subset loads + 100 EMT systems
    OMP_NUM_THREADS=1 python benchmarks/bench_data.py --no-emt   # loads only

Targets: the embedded QM9 subset loads in under 2 s; the EMT generator makes 100 systems in under a minute on 2 cores.
Imports (torch, torch_geometric, ase) are done before timing; each load is timed `--repeats` times and the median quoted.
"""
import argparse, statistics, tempfile, time
from pathlib import Path


def timed(fn, repeats: int) -> tuple[float, object]:
    "Median wall time of `fn()` over `repeats` calls, and its last result."
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main(repeats: int = 5, emt: bool = True) -> dict:
    "Run the measurements, print a markdown table and return the figures."
    import torch, torch_geometric, ase  # noqa: F401  (import cost is not load cost)
    from molkit.data.readers.qm9 import load_qm9_subset
    from molkit.data.emt import EMTConfig, write_emt_dataset
    from molkit.data.lmdb import LMDBDataset
    res = {}
    res['qm9_atoms_s'], mols = timed(lambda: load_qm9_subset(), repeats)
    res['qm9_data_s'], graphs = timed(lambda: load_qm9_subset(as_atoms=False), repeats)
    rows = [('QM9 subset as ase.Atoms', f"{len(mols)} molecules", res['qm9_atoms_s'], 2.0),
            ('QM9 subset as PyG Data', f"{len(graphs)} graphs", res['qm9_data_s'], 2.0)]
    if emt:
        with tempfile.TemporaryDirectory() as d:
            t0, c0 = time.perf_counter(), time.process_time()
            paths = write_emt_dataset(EMTConfig(n_systems=100, seed=0), Path(d) / 'emt', progress=False)
            res['emt_100_s'], res['emt_100_cpu_s'] = time.perf_counter() - t0, time.process_time() - c0
            n = len(LMDBDataset(paths['s2ef']))
        rows.append(('EMT generator, 100 systems', f"{n} S2EF frames + 100 IS2RE records", res['emt_100_s'], 60.0))
    print('| what | size | median wall s | target s | met |\n|---|---|---|---|---|')
    for what, size, t, target in rows: print(f"| {what} | {size} | {t:.2f} | < {target:g} | {'yes' if t < target else 'no'} |")
    if emt: print(f"EMT process CPU time: {res['emt_100_cpu_s']:.1f} s (one run)")
    return res


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--no-emt', action='store_true')
    a = p.parse_args()
    main(a.repeats, emt=not a.no_emt)
