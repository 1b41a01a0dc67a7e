"""Data figures of `bench_all.py`: LMDB decode vs pickle, DataLoader data wait, neighbour lists."""
from __future__ import annotations
import sys, tempfile, time
from pathlib import Path
import numpy as np
import torch
from torch_geometric.data import Batch
from .common import Budget, build, interleaved, molecule_batches, slab_frames, sync, train_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: reuse bench_lmdb_decode


def lmdb_decode(b: Budget) -> dict:
    "Records/s decoded: molkit LMDB (safetensors, CRC-checked) vs the legacy pickled PyG Data, OC20-like sizes."
    from bench_lmdb_decode import run
    sizes = np.clip(np.random.default_rng(0).normal(73, 30, b.decode_records), 10, 225).astype(int).tolist()
    with tempfile.TemporaryDirectory() as tmp: r = run(sizes, b.decode_repeats, Path(tmp) / 'x')
    return {'records': len(sizes), 'repeats': b.decode_repeats, 'decode_legacy_us': r['decode_legacy'],
            'decode_molkit_us': r['decode_molkit'], 'decode_ratio': r['decode_legacy'] / r['decode_molkit'],
            'records_per_s_legacy': 1e6 / r['decode_legacy'], 'records_per_s_molkit': 1e6 / r['decode_molkit'],
            'getitem_legacy_us': r['getitem_legacy'], 'getitem_molkit_us': r['getitem_molkit'],
            'getitem_ratio': r['getitem_legacy'] / r['getitem_molkit']}


def _molecule_lmdb(n: int, root: Path) -> tuple[str, list[int]]:
    from molkit.data.lmdb import write_lmdb
    datas = molecule_batches(1, n, seed=1)[0].to_data_list()
    for d in datas: d.natoms = torch.tensor([d.num_nodes])
    return str(write_lmdb(datas, root / 'mols', progress=False)), [d.num_nodes for d in datas]


def loader_wait(b: Budget, device: str = 'cpu', batch_size: int = 32) -> dict:
    """Fraction of SchNet step time spent waiting for the next batch (molkit LMDB -> DataLoader), interleaved: 0 and N
    workers with the radius graph built in the model, and N workers building it in the loader (`data.edges: loader`)."""
    from molkit.data.lmdb import LMDBDataset
    from molkit.train.data import EdgeDataset
    from molkit.train.inference import _loader
    from molkit.train.sampling import BalancedBatchSampler
    bs = batch_size if b.schnet_preset != 'tiny' else 4
    n_batches = b.loader_steps + b.warmup + 1
    variants = {'0': (0, False), str(b.workers): (b.workers, False), f'{b.workers}+edges': (b.workers, True)}
    out = {'batch_size': bs, 'device': device, 'workers': list(variants)}
    with tempfile.TemporaryDirectory() as tmp:
        path, natoms = _molecule_lmdb(bs * n_batches, Path(tmp))
        ds = LMDBDataset(path)
        its, steps, waits, totals = {}, {}, {}, {}
        for v, (w, edges) in variants.items():
            model = build('schnet', b.schnet_preset).to(device)
            c = model.backbone.cfg
            src = EdgeDataset(ds, c.cutoff, c.max_num_neighbors) if edges else ds
            its[v] = iter(_loader(src, batch_sampler=BalancedBatchSampler(natoms, bs, seed=0), num_workers=w))
            waits[v], totals[v], steps[v] = [], [], train_step(model, device=device)

        def run(v):
            def f(s):
                t0 = time.perf_counter(); batch = next(its[v]).to(device); t1 = time.perf_counter()
                steps[v](batch); sync(device); t2 = time.perf_counter()
                if s >= b.warmup: waits[v].append(t1 - t0); totals[v].append(t2 - t0)
            return f
        interleaved({v: run(v) for v in variants}, b.loader_steps, b.warmup, device)
        for v in variants:
            out[f'wait_fraction_w{v}'] = sum(waits[v]) / sum(totals[v])
            out[f'median_wait_ms_w{v}'] = 1e3 * float(np.median(waits[v]))
            out[f'median_step_ms_w{v}'] = 1e3 * float(np.median(totals[v]))
        del its
    return out


def _atoms(d):
    "ASE Atoms of one structure: numbers, positions, and for slabs the cell and periodicity."
    from ase import Atoms
    if d.get('cell') is None: return Atoms(numbers=d.z.numpy(), positions=d.pos.numpy())
    return Atoms(numbers=d.z.numpy(), positions=d.pos.numpy(), cell=d.cell.reshape(3, 3).numpy(), pbc=d.pbc.reshape(3).numpy())


def _ase_pairs(atoms_list, cutoff: float) -> int:
    from ase.neighborlist import neighbor_list
    return sum(len(neighbor_list('i', a, cutoff)) for a in atoms_list)


def neighbour_lists(b: Budget, devices: list[str]) -> list[dict]:
    "molkit `radius_graph` (vesin) on a batch vs ASE's `neighbor_list` per structure; CUDA rows vs molkit on CPU."
    from molkit.data.neighbors import radius_graph
    mols = molecule_batches(1, 32 if b.schnet_preset != 'tiny' else 4, seed=2)[0]
    slabs = Batch.from_data_list(slab_frames(8 if b.schnet_preset != 'tiny' else 2, 3, b.slab_size))
    sz = '×'.join(map(str, b.slab_size))
    cases = [('molecules (G2, ≥ 6 atoms)', mols, 5.0), (f'periodic slabs ({sz} + adsorbate)', slabs, 6.0),
             (f'periodic slabs ({sz} + adsorbate)', slabs, 12.0)]
    rows = []
    for name, batch, cutoff in cases:
        atoms = [_atoms(d) for d in batch.to_data_list()]
        cell, pbc = batch.get('cell'), batch.get('pbc')

        def ours(dev):
            args = [t.to(dev) if t is not None else None for t in (batch.pos, batch.batch, cell, pbc)]
            return lambda s: radius_graph(args[0], cutoff, args[1], args[2], args[3])
        fns = {'molkit_cpu': ours('cpu'), 'ase': lambda s: _ase_pairs(atoms, cutoff)}
        n_ours, n_ase = radius_graph(batch.pos, cutoff, batch.batch, cell, pbc)[0].shape[1], _ase_pairs(atoms, cutoff)
        t = interleaved(fns, b.nl_repeats, 1)
        row = {'case': name, 'structures': batch.num_graphs, 'atoms': batch.num_nodes, 'cutoff_A': cutoff, 'edges': n_ours,
               'edges_ase': n_ase, 'molkit_cpu_ms': 1e3 * t['molkit_cpu']['wall_s'], 'ase_ms': 1e3 * t['ase']['wall_s'],
               'ratio_vs_ase': t['ase']['wall_s'] / t['molkit_cpu']['wall_s']}
        for dev in [d for d in devices if d != 'cpu']:
            try:
                tc = interleaved({'gpu': ours(dev)}, b.nl_repeats, 2, dev)
                row[f'molkit_{dev}_ms'] = 1e3 * tc['gpu']['wall_s']
                row[f'{dev}_ratio_vs_cpu'] = t['molkit_cpu']['wall_s'] / tc['gpu']['wall_s']
            except Exception as e:  # noqa: BLE001 - recorded, not hidden
                row[f'molkit_{dev}_error'] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        rows.append(row)
    return rows
