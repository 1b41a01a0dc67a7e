"""Graphormer-3D: SDPA attention vs a plain softmax(QKᵀ/√d + bias)V, step time and peak memory at ~200 atoms per structure.

Two measurements per attention path, each in a fresh subprocess so peak memory is not shared:
  attention            the biased multi-head attention alone (forward + backward), bias a constant;
  attention_bias_grad  the same with a bias that needs a gradient, as in the model (the bias is learned);
  step       a full training step (forward, energy sum, backward) of the Graphormer-3D backbone.
Structures: Cu(111) 6×6×5 slabs with a CO adsorbate (182 atoms, padded to N = 184), periodic images off so N is fixed.

Memory: activations saved for backward in one step (unique storages seen by `torch.autograd.graph.saved_tensors_hooks`,
parameters and inputs excluded), on any device; on CUDA also torch.cuda.max_memory_allocated() above the resident
model and inputs during the timed steps.

  OMP_NUM_THREADS=1 python benchmarks/bench_graphormer3d.py --device cpu
  python benchmarks/bench_graphormer3d.py --device cuda        # OC20 preset, fp32 and bf16
"""
from __future__ import annotations
import argparse, json, subprocess, sys, time
import numpy as np
import torch

CPU_CFG = dict(hidden_dim=256, ffn_dim=256, num_heads=16, num_layers=2, num_blocks=2, num_kernels=128)


def slabs(n: int):
    "A batch of `n` Cu(111) slabs with CO (182 atoms each), OC20 tags."
    from ase.build import fcc111, add_adsorbate, molecule
    from torch_geometric.data import Batch
    from molkit.data.atoms import atoms_to_data
    out = []
    for k in range(n):
        s = fcc111('Cu', (6, 6, 5), vacuum=8.0, a=3.6); layer = s.get_tags()
        add_adsorbate(s, molecule('CO'), 1.8, 'ontop'); s.rattle(0.05, seed=k)
        s.set_tags(np.concatenate([np.where(layer == 1, 1, 0), [2, 2]]))
        out.append(atoms_to_data(s))
    return Batch.from_data_list(out)


def saved_mib(forward, exclude: set) -> float:
    "MiB of the distinct tensors autograd saves for backward during `forward()` (storages in `exclude` not counted)."
    seen = {}
    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in exclude: seen[st.data_ptr()] = st.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): loss = forward()
    loss.backward()
    return sum(seen.values()) / 2**20


def measure(kind: str, attention: str, device: str, dtype: str, batch: int, steps: int) -> dict:
    "Median step time (ms) and peak memory (MiB) of one configuration, in this process."
    from molkit.models.graphormer3d.model import Graphormer3D, GRAPHORMER3D_PRESETS, ATTENTION
    torch.manual_seed(0)
    cfg = GRAPHORMER3D_PRESETS['oc20'] if device == 'cuda' else GRAPHORMER3D_PRESETS['tiny']
    cfg = {**vars(cfg), **({} if device == 'cuda' else CPU_CFG), 'attention': attention, 'images': False, 'attn_dropout': 0.0}
    amp = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == 'bf16')
    if kind == 'step':
        model, data = Graphormer3D(**cfg).to(device), slabs(batch).to(device)
        def forward():
            with amp: return model(data)['node'].float().sum()
        exclude = {p.untyped_storage().data_ptr() for p in model.parameters()} | {data.pos.untyped_storage().data_ptr()}
    else:
        H, D, N = cfg['num_heads'], cfg['hidden_dim'], 184
        q, k, v = (torch.randn(batch, H, N, D // H, device=device, requires_grad=True) for _ in range(3))
        bias = torch.randn(batch, H, N, N, device=device); bias[..., 182:] = float('-inf')
        bias.requires_grad_(kind == 'attention_bias_grad')  # in the model the bias is learned, so it needs a gradient
        def forward():
            with amp: return ATTENTION[attention](q, k, v, bias).float().sum()
        exclude = {t.untyped_storage().data_ptr() for t in (q, k, v, bias)}
    step = lambda: forward().backward()
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    for _ in range(2): step()
    sync()
    saved = saved_mib(forward, exclude)
    sync()
    if device == 'cuda': torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter(); step(); sync(); times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device == 'cuda' else float('nan')
    return {'kind': kind, 'attention': attention, 'device': device, 'dtype': dtype, 'batch': batch,
            'ms': 1e3 * float(np.median(times)), 'saved_mib': saved, 'peak_mib': peak, 'threads': torch.get_num_threads()}


def cuda_peak(r: dict) -> str:
    return 'not measured (CPU)' if r['device'] == 'cpu' else f"{r['peak_mib']:.0f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--batch', type=int, default=2, help='structures per step')
    p.add_argument('--steps', type=int, default=5, help='timed steps (median reported)')
    p.add_argument('--one', help=argparse.SUPPRESS)  # internal: run one configuration as JSON
    a = p.parse_args()
    if a.one:
        print(json.dumps(measure(**json.loads(a.one)))); return
    dtypes = ['fp32', 'bf16'] if a.device == 'cuda' else ['fp32']
    rows = []
    for kind in ('attention', 'attention_bias_grad', 'step'):
        for dtype in dtypes:
            for att in ('math', 'sdpa'):
                spec = dict(kind=kind, attention=att, device=a.device, dtype=dtype, batch=a.batch, steps=a.steps)
                out = subprocess.run([sys.executable, __file__, '--one', json.dumps(spec)], capture_output=True, text=True)
                if out.returncode: raise RuntimeError(out.stderr[-2000:])
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print('| measurement | device | dtype | attention | step ms (median) | saved activations MiB | CUDA peak MiB | speed-up | activation ratio |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        ref = next(x for x in rows if x['kind'] == r['kind'] and x['dtype'] == r['dtype'] and x['attention'] == 'math')
        print(f"| {r['kind']} (B={r['batch']}) | {r['device']} | {r['dtype']} | {r['attention']} | {r['ms']:.1f} | "
              f"{r['saved_mib']:.1f} | {cuda_peak(r)} | "
              f"{ref['ms'] / r['ms']:.2f}× | {r['saved_mib'] / max(ref['saved_mib'], 1e-9):.2f} |")


if __name__ == '__main__':
    main()
