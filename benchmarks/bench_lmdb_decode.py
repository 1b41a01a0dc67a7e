"""Decode cost of molkit's LMDB records (safetensors) vs legacy OCP/fairchem records (pickled PyG Data), side by side.

Same OC20-like records in both formats (80-atom slabs, and sizes ~ N(73, 30) clipped to 10..225 as in
OC20 S2EF): pos, atomic numbers, cell, natoms, tags, fixed, energy, forces, sid, fid.

- decode: bytes -> object. legacy = `pickle.loads` only (no field mapping); molkit = `decode_record`
  (CRC-32 of the record, header check, dtype/shape validation, finite positions, contract `Data`).
- crc: the CRC-32 check alone (`zlib.crc32` over the record bytes), part of 'decode molkit'.
- getitem: `dataset[i]` end to end (LMDB get + decode + mapping/validation), random order.

Median over every (record, repeat) timing, one thread, data in the page cache. The decode timings (legacy, molkit,
CRC-32) take turns pass by pass (each repeat: a pass of each), so that load from other processes on a shared machine
hits them alike. 'alternating' repeats the decode ratio with the two taking turns record by record (CPU caches cold).

    OMP_NUM_THREADS=1 python benchmarks/bench_lmdb_decode.py [--records 400] [--repeats 5] [--out benchmarks/RESULTS.md]
"""
import argparse, os, pickle, platform, tempfile, time
from pathlib import Path
import lmdb, numpy as np, safetensors, torch, torch_geometric
from torch_geometric.data import Data
from molkit.data.lmdb import LMDBDataset, decode_record, encode_record, write_lmdb, _PLANS, _verify_crc
from molkit.data.legacy import LegacyLMDBDataset, legacy_to_data, write_legacy_lmdb


def oc20_like(n: int, seed: int, strings: bool = False) -> Data:
    "A fairchem-v1-style S2EF record with n atoms (optionally with a distinct name and a list, non-tensor fields)."
    g = torch.Generator().manual_seed(seed)
    extra = {'name': f"config_{seed}", 'calc_keys': ['energy', 'forces']} if strings else {}
    return Data(**extra, pos=torch.randn(n, 3, generator=g) * 5, atomic_numbers=torch.randint(1, 84, (n,), generator=g).float(),
                cell=torch.eye(3).reshape(1, 3, 3) * 12, natoms=n, tags=torch.randint(0, 3, (n,), generator=g),
                fixed=(torch.rand(n, generator=g) < 0.4).float(), y=float(torch.randn(1, generator=g)),
                force=torch.randn(n, 3, generator=g), sid=torch.LongTensor([seed]), fid=torch.LongTensor([seed % 50]))


def median_us(fn, items, repeats: int, seed: int = 0) -> float:
    "Median wall time of fn(item) in µs over all items x repeats, shuffled order each repeat."
    rng, ts = np.random.default_rng(seed), []
    for _ in range(repeats):
        for it in rng.permutation(len(items)):
            x = items[it]
            t0 = time.perf_counter(); fn(x); ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e6)


def interleaved_us(fns: dict, items: dict, repeats: int, seed: int = 0, per_record: bool = False) -> dict:
    "Median µs of each fns[k](items[k][i]); the functions take turns pass by pass (or record by record: `per_record`)."
    rng, ts = np.random.default_rng(seed), {k: [] for k in fns}
    n = len(next(iter(items.values())))
    for _ in range(repeats):
        order = rng.permutation(n)
        for group in ([[it] for it in order] if per_record else [order]):
            for k, fn in fns.items():
                for it in group:
                    x = items[k][it]
                    t0 = time.perf_counter(); fn(x); ts[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v) * 1e6) for k, v in ts.items()}


def run(sizes: list, repeats: int, root: Path, strings: bool = False) -> dict:
    "All four timings for one set of record sizes."
    root.mkdir(parents=True)
    recs = [oc20_like(n, s, strings) for s, n in enumerate(sizes)]
    legacy_bytes = [pickle.dumps(r, protocol=-1) for r in recs]
    ours = [legacy_to_data(r.to_dict()) for r in recs]
    our_bytes = [encode_record(d) for d in ours]
    for lb, ob in zip(legacy_bytes[:3], our_bytes[:3]):  # same content on both sides
        a, b = legacy_to_data(pickle.loads(lb).to_dict()), decode_record(ob)
        assert all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a.keys())
    for fn, items in ((pickle.loads, legacy_bytes), (decode_record, our_bytes)): [fn(x) for x in items]  # warm-up
    out = {'bytes_legacy': float(np.mean([len(b) for b in legacy_bytes])), 'bytes_molkit': float(np.mean([len(b) for b in our_bytes]))}
    out.update(interleaved_us({'decode_legacy': pickle.loads, 'decode_molkit': decode_record, 'crc': lambda b: _verify_crc(b, '')},
                              {'decode_legacy': legacy_bytes, 'decode_molkit': our_bytes, 'crc': our_bytes}, repeats))
    alt = interleaved_us({'l': pickle.loads, 'm': decode_record}, {'l': legacy_bytes, 'm': our_bytes}, repeats, per_record=True)
    out['alt_legacy'], out['alt_molkit'] = alt['l'], alt['m']  # record by record: caches cold for both
    out['decode_cold'] = median_us(lambda b: (_PLANS.clear(), decode_record(b)), our_bytes, repeats)  # header parsed every time
    leg = LegacyLMDBDataset(write_legacy_lmdb(recs, root / 'legacy', n_shards=2), trusted=True)
    mol = LMDBDataset(write_lmdb(ours, root / 'molkit', shard_size=len(sizes) // 2 + 1, progress=False))
    idx = list(range(len(recs)))
    [leg[i] for i in idx]; [mol[i] for i in idx]
    out['getitem_legacy'] = median_us(leg.__getitem__, idx, repeats)
    out['getitem_molkit'] = median_us(mol.__getitem__, idx, repeats)
    return out


def cpu_name() -> str:
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or '?'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--records', type=int, default=400)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--out', type=Path, default=None, help='write the markdown result fragment here')
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cases = {'80-atom slabs': ([80] * args.records, False),
             'OC20-like sizes N(73,30) in 10..225': (np.clip(rng.normal(73, 30, args.records), 10, 225).astype(int).tolist(), False),
             '80-atom slabs + distinct name string and a list per record': ([80] * args.records, True)}
    with tempfile.TemporaryDirectory() as tmp:
        res = {name: run(sizes, args.repeats, Path(tmp) / str(k), strings)
               for k, (name, (sizes, strings)) in enumerate(cases.items())}
    env = (f"{cpu_name()}, {os.cpu_count()} logical CPUs (shared), 1 thread; Python {platform.python_version()}, "
           f"torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, safetensors {safetensors.__version__}, "
           f"lmdb {lmdb.__version__}, numpy {np.__version__}")
    lines = [f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_lmdb_decode.py --records {args.records} --repeats {args.repeats}`",
             '', f"Machine: {env}", '',
             '| records | bytes legacy / molkit | decode legacy (pickle.loads) | decode molkit | ratio | of which CRC-32 | molkit, no header cache | dataset[i] legacy | dataset[i] molkit | ratio | decode ratio, alternating |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for name, r in res.items():
        lines.append(f"| {name} | {r['bytes_legacy']:.0f} / {r['bytes_molkit']:.0f} | {r['decode_legacy']:.1f} µs | "
                     f"{r['decode_molkit']:.1f} µs | **{r['decode_legacy'] / r['decode_molkit']:.1f}x** | {r['crc']:.1f} µs | {r['decode_cold']:.1f} µs | "
                     f"{r['getitem_legacy']:.1f} µs | {r['getitem_molkit']:.1f} µs | {r['getitem_legacy'] / r['getitem_molkit']:.1f}x | "
                     f"{r['alt_legacy']:.0f} / {r['alt_molkit']:.0f} µs = {r['alt_legacy'] / r['alt_molkit']:.1f}x |")
    text = '\n'.join(lines)
    print(text)
    if args.out: args.out.write_text(text + '\n')


if __name__ == '__main__':
    main()
