"""molkit SchNet vs torch_geometric.nn.models.SchNet: energy + gradient-force training step, same weights, same batches.

    OMP_NUM_THREADS=1 python benchmarks/bench_schnet.py --steps 60 --batch-size 32 --preset qm9_5A

One run, the two models interleaved step by step (order alternating), median time per step after warm-up: wall time,
and process CPU time (robust on a shared machine where other jobs steal cores; equal to wall time on an idle one).
A step = forward, forces via autograd.grad(create_graph=True), MSE(E) + MSE(F), backward, AdamW step.
PyG's SchNet gets an `interaction_graph` returning the same precomputed edges (torch_cluster is not installed).
"""
from __future__ import annotations
import argparse, platform, statistics, time
import numpy as np
import torch, torch_geometric
from ase import Atoms
from ase.build import molecule
from ase.collections import g2
from torch_geometric.data import Batch
from torch_geometric.nn.models import SchNet as PygSchNet
from molkit.data.atoms import atoms_to_data
from molkit.data.neighbors import add_edges
from molkit.models.schnet import SCHNET_PRESETS, schnet_from_pyg

def make_batches(n_batches: int, batch_size: int, cutoff: float, seed: int = 0) -> list[Batch]:
    "Batches of rattled G2 molecules with 6+ atoms (QM9-like sizes), edges precomputed, random E/F targets."
    rng = np.random.default_rng(seed)
    names = [n for n in g2.names if len(molecule(n)) >= 6]
    batches = []
    for b in range(n_batches):
        datas = []
        for k in rng.choice(len(names), size=batch_size):
            m = molecule(names[k])
            a = Atoms(m.numbers, m.positions); a.rattle(0.05, seed=int(rng.integers(1 << 30)))
            d = add_edges(atoms_to_data(a), cutoff)
            d.y_energy, d.y_forces = torch.randn(1), torch.randn(len(a), 3)
            datas.append(d)
        batches.append(Batch.from_data_list(datas))
    return batches

def step_fn(energy_forces, params):
    "A training step closure for a function batch -> (energy [G], forces [n,3])."
    opt = torch.optim.AdamW(params, lr=1e-4)
    def step(batch: Batch) -> float:
        batch.pos.requires_grad_(True)
        e, f = energy_forces(batch)
        loss = torch.nn.functional.mse_loss(e, batch.y_energy) + torch.nn.functional.mse_loss(f, batch.y_forces)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        batch.pos.requires_grad_(False)
        return loss.item()
    return step

def peer_pair(c, batch, device: str = 'cpu'):
    "PyG's SchNet and molkit's with the same weights, their energy + force functions, and their energy gap on `batch`."
    cur = {}  # the batch PyG's interaction_graph reads its edges from
    def graph(pos, batch):
        ei = cur['b'].edge_index
        return ei, (pos[ei[0]] - pos[ei[1]]).norm(dim=-1)
    pyg = PygSchNet(c.hidden_dim, c.num_filters, c.num_interactions, c.num_gaussians, c.cutoff, interaction_graph=graph).to(device)
    ours = schnet_from_pyg(pyg).to(device).train()
    def pyg_ef(b):
        cur['b'] = b
        e = pyg(b.z, b.pos, b.batch).squeeze(-1)
        return e, -torch.autograd.grad(e.sum(), b.pos, create_graph=True)[0]
    def ours_ef(b):
        out = ours(b)
        return out['energy'], out['forces']
    with torch.no_grad():
        cur['b'] = batch
        diff = (ours(batch, targets=['energy'])['energy'] - pyg(batch.z, batch.pos, batch.batch).squeeze(-1)).abs().max().item()
    return pyg, ours, pyg_ef, ours_ef, diff

def main(steps: int = 60, warmup: int = 5, batch_size: int = 32, preset: str = 'qm9_5A', seed: int = 0):
    torch.manual_seed(seed)
    c = SCHNET_PRESETS[preset]
    batches = make_batches(8, batch_size, c.cutoff, seed)
    pyg, ours, pyg_ef, ours_ef, diff = peer_pair(c, batches[0])
    runs = {'pyg': step_fn(pyg_ef, pyg.parameters()), 'molkit': step_fn(ours_ef, ours.parameters())}
    wall, cpu = {k: [] for k in runs}, {k: [] for k in runs}
    for s in range(warmup + steps):
        order = list(runs) if s % 2 == 0 else list(runs)[::-1]
        for k in order:
            b = batches[s % len(batches)]
            t0, c0 = time.perf_counter(), time.process_time()
            runs[k](b)
            if s >= warmup: wall[k].append(time.perf_counter() - t0); cpu[k].append(time.process_time() - c0)
    med = {k: statistics.median(v) * 1e3 for k, v in wall.items()}
    medc = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}
    n_atoms = statistics.mean(b.num_nodes for b in batches); n_edges = statistics.mean(b.edge_index.shape[1] for b in batches)
    print(f"preset {preset} ({c.hidden_dim}/{c.num_filters}/{c.num_interactions} interactions/{c.num_gaussians} Gaussians/"
          f"{c.cutoff} Å), batch {batch_size} molecules (~{n_atoms:.0f} atoms, ~{n_edges:.0f} edges), {steps} steps")
    print(f"initial energy max |diff| molkit vs PyG: {diff:.2e} eV")
    print(f"median step, wall: PyG {med['pyg']:.2f} ms, molkit {med['molkit']:.2f} ms, ratio PyG/molkit = {med['pyg'] / med['molkit']:.3f}")
    print(f"median step, CPU:  PyG {medc['pyg']:.2f} ms, molkit {medc['molkit']:.2f} ms, ratio PyG/molkit = {medc['pyg'] / medc['molkit']:.3f}")
    print(f"torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}, python {platform.python_version()}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=60); p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--batch-size', type=int, default=32); p.add_argument('--preset', default='qm9_5A')
    a = p.parse_args()
    main(a.steps, a.warmup, a.batch_size, a.preset)
