"""Shared pieces of `bench_all.py`: settings, environment record, interleaved timing, synthetic batches, training steps."""
from __future__ import annotations
import os, platform, statistics, time
from dataclasses import dataclass
from typing import Callable
import numpy as np
import torch
from torch_geometric.data import Batch


@dataclass
class Budget:
    "How much each figure measures; `quick()` is the smoke-test budget."
    steps: int = 12  # timed training steps per configuration (after warm-up)
    warmup: int = 2
    peer_steps: int = 30  # molkit vs PyG SchNet (cheap steps, more repeats)
    dmoe_steps: int = 100  # DMoE vs scalar head: a few-% difference needs many repeats on a shared machine
    decode_records: int = 200
    decode_repeats: int = 3
    loader_steps: int = 24
    nl_repeats: int = 7
    batch_sizes: tuple = (8, 32)  # molecules per batch (SchNet, PaiNN)
    slab_batch_sizes: tuple = (1, 2)  # slabs per batch (GemNet-OC, Graphormer-3D)
    slab_size: tuple = (3, 3, 4)  # surface repeats x, y and layers of the slabs (OC20-like 36 metal atoms)
    slab_steps: int = 3  # timed steps of the slab models (a GemNet-OC tiny CPU step takes seconds)
    atoms_sweep: tuple = (8, 32, 128)  # molecules per batch for step time / memory vs atoms
    schnet_preset: str = 'qm9_5A'
    compile_steps: int = 8
    ddp_steps: int = 10
    ddp_rounds: int = 2
    workers: int = 2

    @classmethod
    def cuda(cls) -> 'Budget':
        "GPU budget: more steps (medians of >= 30), larger batches."
        return cls(steps=30, warmup=5, peer_steps=50, loader_steps=50, nl_repeats=20, batch_sizes=(32, 128),
                   slab_batch_sizes=(8, 16), slab_steps=20, atoms_sweep=(8, 32, 128, 512), compile_steps=30)

    @classmethod
    def quick(cls) -> 'Budget':
        return cls(steps=2, warmup=1, peer_steps=3, dmoe_steps=3, decode_records=20, decode_repeats=1, loader_steps=4, nl_repeats=2,
                   batch_sizes=(4,), slab_batch_sizes=(2,), slab_steps=1, slab_size=(2, 2, 2), atoms_sweep=(2, 4), schnet_preset='tiny',
                   compile_steps=2, ddp_steps=2, ddp_rounds=1, workers=1)


TINY_SCHNET = {'hidden_dim': 16, 'num_filters': 16, 'num_interactions': 2, 'num_gaussians': 16, 'cutoff': 5.0}


def schnet_cfg(preset: str) -> dict:
    "ModelConfig fields of the SchNet under test: a registry preset, or 'tiny' (the smoke-test size)."
    return {'backbone': 'schnet', 'backbone_cfg': dict(TINY_SCHNET)} if preset == 'tiny' else {'backbone': 'schnet', 'preset': preset}


def apply_settings(threads: int = 1, flush_denormal: bool = True) -> dict:
    "Set intra-op threads and flush-to-zero for the whole run; return what is in force."
    torch.set_num_threads(threads)
    ftz = torch.set_flush_denormal(flush_denormal)  # False where the CPU does not support it
    return {'torch_threads': torch.get_num_threads(), 'interop_threads': torch.get_num_interop_threads(),
            'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS'), 'flush_denormal': bool(flush_denormal and ftz)}


def cpu_model() -> str:
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    "Machine, versions and load: what a reader needs to place the numbers."
    import importlib.metadata, torch_geometric, ase
    env = {'host_cpu': cpu_model(), 'logical_cpus': os.cpu_count(), 'platform': platform.platform(),
           'python': platform.python_version(), 'torch': torch.__version__, 'torch_geometric': torch_geometric.__version__,
           'vesin': importlib.metadata.version('vesin-torch'), 'ase': ase.__version__, 'numpy': np.__version__,
           'loadavg_start': os.getloadavg()[0], 'cuda': torch.cuda.is_available()}
    if torch.cuda.is_available():
        env.update(gpu=torch.cuda.get_device_name(0), cuda_version=torch.version.cuda, gpu_count=torch.cuda.device_count())
    return env


def sync(device: str):
    if device.startswith('cuda'): torch.cuda.synchronize()


def interleaved(fns: dict[str, Callable[[int], object]], steps: int, warmup: int = 1, device: str = 'cpu') -> dict:
    "Run each fns[k](i) for i in range(warmup + steps), rotating the order every step; median wall and CPU seconds."
    wall, cpu, names = {k: [] for k in fns}, {k: [] for k in fns}, list(fns)
    for s in range(warmup + steps):
        order = names[s % len(names):] + names[:s % len(names)]
        for k in order:
            sync(device); t0, c0 = time.perf_counter(), time.process_time()
            fns[k](s)
            sync(device)
            if s >= warmup: wall[k].append(time.perf_counter() - t0); cpu[k].append(time.process_time() - c0)
    return {k: {'wall_s': statistics.median(wall[k]), 'cpu_s': statistics.median(cpu[k]), 'n': len(wall[k])} for k in fns}


def molecule_batches(n_batches: int, batch_size: int, seed: int = 0) -> list[Batch]:
    "Batches of rattled ASE G2 molecules with >= 6 atoms (QM9-like sizes), no stored edges, random E/F labels."
    from ase import Atoms
    from ase.build import molecule
    from ase.collections import g2
    from molkit.data.atoms import atoms_to_data
    rng = np.random.default_rng(seed)
    names = [n for n in g2.names if len(molecule(n)) >= 6]
    out = []
    for _ in range(n_batches):
        datas = []
        for k in rng.choice(len(names), size=batch_size):
            m = molecule(names[k])
            a = Atoms(m.numbers, m.positions); a.rattle(0.05, seed=int(rng.integers(1 << 30)))
            d = atoms_to_data(a)
            d.energy, d.forces = torch.randn(1, dtype=torch.float64), torch.randn(len(a), 3)
            datas.append(d)
        out.append(Batch.from_data_list(datas))
    return out


def slab_frames(n: int, seed: int = 0, size: tuple = (3, 3, 4)) -> list:
    "OC20-like periodic slabs: Cu/Pt 3×3×4 (111) with an O/CO/OH adsorbate, rattled, OC tags (0 sub-surface, 1 surface, 2 adsorbate)."
    from ase import Atoms
    from ase.build import add_adsorbate, fcc111, molecule
    from ase.constraints import FixAtoms
    from molkit.data.atoms import atoms_to_data
    rng, out = np.random.default_rng(seed), []
    for k in range(n):
        slab = fcc111(['Cu', 'Pt'][k % 2], size, vacuum=8.0)
        layer = slab.get_tags().copy()  # 4 bottom .. 1 top
        ads = ['O', 'CO', 'OH'][k % 3]
        add_adsorbate(slab, molecule(ads) if len(ads) > 1 else ads, 1.8, 'fcc')
        slab.set_tags(np.r_[np.where(layer <= size[2] // 2, 1, 0), np.full(len(slab) - len(layer), 2)])
        slab.set_constraint(FixAtoms(mask=np.r_[layer > size[2] // 2, np.zeros(len(slab) - len(layer), bool)]))
        slab.rattle(0.05, seed=int(rng.integers(1 << 30)))
        slab = Atoms(slab.numbers, slab.positions, cell=slab.cell, pbc=slab.pbc, tags=slab.get_tags(), constraint=slab.constraints)
        d = atoms_to_data(slab)  # only the contract fields (no per-adsorbate arrays such as initial_magmoms), so slabs collate
        d.energy, d.forces = torch.randn(1, dtype=torch.float64), torch.randn(len(slab), 3)
        out.append(d)
    return out


def slab_batches(n_batches: int, batch_size: int, seed: int = 0, size: tuple = (3, 3, 4)) -> list[Batch]:
    frames = slab_frames(n_batches * batch_size, seed, size)
    return [Batch.from_data_list(frames[i * batch_size:(i + 1) * batch_size]) for i in range(n_batches)]


MODELS = {  # backbone -> ModelConfig fields (heads: energy + forces)
    'schnet': None,  # from the budget's preset (`schnet_cfg`)
    'painn': {'backbone': 'painn', 'preset': 'qm9'},
    'gemnet_oc': {'backbone': 'gemnet_oc', 'preset': 'tiny', 'backbone_cfg': {'fit_scales': True}},
    'graphormer3d': {'backbone': 'graphormer3d', 'preset': 'tiny'},
}
FORCE_HEADS = {'gemnet_oc': {'type': 'gemnet_direct_forces'}, 'graphormer3d': {'type': 'g3d_node', 'dropout': 0.0}}


def build(name: str, schnet_preset: str = 'qm9_5A', energy_head: dict | None = None, labels: dict | None = None, seed: int = 0):
    "A molkit `Model` with an energy head and a force head (gradient forces unless the backbone has a direct one)."
    from molkit.train.model import ModelConfig, build_model
    torch.manual_seed(seed)
    fields = dict(schnet_cfg(schnet_preset) if name == 'schnet' else MODELS[name])
    heads = {'energy': energy_head or {'type': 'energy'},
             'forces': FORCE_HEADS.get(name, {'type': 'gradient_forces', 'energy': 'energy'})}
    return build_model(ModelConfig(**fields, heads=heads), labels)


def train_step(model, mode: str = 'fp32', device: str = 'cpu', lr: float = 1e-4, loss_fn: Callable | None = None,
               targets: tuple = ('energy', 'forces')):
    "A closure batch -> loss running one engine-style step: autocast forward, fp32 loss, (scaled) backward, AdamW step."
    from molkit.train.amp import Precision
    prec, opt = Precision(mode, device), torch.optim.AdamW(model.parameters(), lr=lr)
    mse = torch.nn.functional.mse_loss

    def step(batch: Batch):
        with prec.autocast(): out = model(batch, list(targets))
        with prec.fp32():
            loss = loss_fn(out, batch) if loss_fn else mse(out['energy'], batch.energy.float()) + mse(out['forces'], batch.forces)
        prec.backward(loss)
        prec.step(opt, model.parameters())
        batch.pos.requires_grad_(False)
        return loss
    return step


def saved_activation_mib(fn: Callable[[], object], params=()) -> float:
    "MiB of distinct tensor storages autograd saves for backward while `fn()` runs (forward + force graph), parameters excluded."
    seen: dict[int, int] = {}
    skip = {p.untyped_storage().data_ptr() for p in params}

    def pack(t):
        try:
            st = t.untyped_storage(); seen[st.data_ptr()] = st.nbytes()
        except Exception: pass
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): fn()
    return sum(v for k, v in seen.items() if k not in skip) / 2**20
