"""GemNet-OC training-step time on EMT catalysis slabs (S2EF frames from `molkit.data.emt`).

    OMP_NUM_THREADS=1 python benchmarks/bench_gemnet_oc.py --preset jmp_s --batch-sizes 2 --steps 3      # CPU
    python benchmarks/bench_gemnet_oc.py --preset jmp_s --device cuda --batch-sizes 8 16 32 --steps 20  # GPU

A step = backbone forward (graphs built inside), energy head (sum) + direct-force head, L1(E) + L1(F), backward,
AdamW step. Scale factors are fitted once on the first batch (not timed). Reports the median step time after one
warm-up step and structures/s. On CUDA each batch size runs in fp32 and under bf16 / fp16 autocast (heads in fp32);
without a GPU the CUDA rows print "not measured". Also counts non-finite losses.
"""
from __future__ import annotations
import argparse, platform, statistics, tempfile, time
from pathlib import Path
import torch
from torch_geometric.data import Batch
from molkit.data.emt import EMTConfig, write_emt_dataset
from molkit.data.lmdb import LMDBDataset
from molkit.models.base import Model
from molkit.models.heads import ScalarHead
from molkit.models.gemnet_oc.model import GEMNET_OC_PRESETS, GemNetOC, GemNetDirectForceHead
from molkit.models.gemnet_oc.scaling import fit_scale_factors

def emt_frames(n_systems: int, seed: int = 0) -> list:
    "S2EF frames of OC20-like 3×3×4 EMT slabs with adsorbates (36 metal atoms + adsorbate)."
    out = Path(tempfile.mkdtemp()) / 'emt'
    ds = LMDBDataset(write_emt_dataset(EMTConfig(n_systems=n_systems, seed=seed), out, progress=False)['s2ef'])
    return [ds[i] for i in range(len(ds))]

def step_time(model: Model, batches: list[Batch], steps: int, dtype: torch.dtype | None, device: str) -> tuple[float, int]:
    "Median seconds per training step (after one warm-up) and the number of non-finite losses."
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times, bad = [], 0
    for k in range(steps + 1):
        b = batches[k % len(batches)]
        if device == 'cuda': torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(b)
        loss = (out['energy'] - b.energy.float()).abs().mean() + (out['forces'] - b.forces).abs().mean()
        bad += int(not torch.isfinite(loss))
        opt.zero_grad(); loss.backward(); opt.step()
        if device == 'cuda': torch.cuda.synchronize()
        if k: times.append(time.perf_counter() - t)
    return statistics.median(times), bad

def build(preset: str, device: str, batch: Batch) -> Model:
    cfg = GEMNET_OC_PRESETS[preset]
    bb = GemNetOC(cfg).to(device)
    fit_scale_factors(bb, [batch], bb.features, max_batches=1)
    return Model(bb, {'energy': ScalarHead(cfg.hidden_dim), 'forces': GemNetDirectForceHead(cfg.emb_size_edge)}).to(device).train()

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--preset', default='jmp_s'); p.add_argument('--device', default='cpu')
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[2]); p.add_argument('--steps', type=int, default=3)
    p.add_argument('--systems', type=int, default=4)
    a = p.parse_args()
    torch.manual_seed(0)
    frames = emt_frames(a.systems)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads {torch.get_num_threads()}, "
          f"preset {a.preset}, {len(frames)} EMT frames of {frames[0].z.numel()} atoms")
    modes = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16} if a.device == 'cuda' else {'fp32': None}
    print('| device | mode | batch | s/step | structures/s | non-finite losses |\n| --- | --- | --- | --- | --- | --- |')
    for bs in a.batch_sizes:
        batches = [Batch.from_data_list(frames[i:i + bs]).to(a.device) for i in range(0, len(frames) - bs + 1, bs)]
        for mode, dt in modes.items():
            torch.manual_seed(0)
            model = build(a.preset, a.device, batches[0])
            t, bad = step_time(model, batches, a.steps, dt, a.device)
            print(f"| {a.device} | {mode} | {bs} | {t:.3f} | {bs / t:.2f} | {bad} |", flush=True)
    if a.device == 'cpu' and not torch.cuda.is_available():
        for bs in (8, 16, 32):
            for mode in ('fp32', 'bf16', 'fp16'): print(f"| cuda | {mode} | {bs} | not measured (no GPU) | | |")

if __name__ == '__main__':
    main()
