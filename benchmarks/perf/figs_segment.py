"""Segment-reduction figures of `bench_all.py`: the edge -> atom sum of message passing, forward + backward, by method.

molkit sums messages with `index_add` (`molkit.nn.layers.scatter_sum`). The alternatives measured on the same messages:
`index_add` on edges in a random order (molkit's graphs come sorted by centre atom), `scatter_reduce('sum')` (PyG's
path), `torch.segment_reduce` on the sorted edges (CSR lengths), and a sparse CSR incidence matrix times the messages
(`torch.sparse.mm`, a sorted segment sum as SpMM). Graphs: SchNet's molecule batches and GemNet-OC's periodic slabs.

`pair_grouping`: SchNet computes its filters once per atom pair (`undirected_pairs`, whose `torch.unique` is a
host-device sync on a GPU); the sync-free alternative computes them per directed edge. Whole training steps, interleaved.
"""
from __future__ import annotations
import torch
from torch import Tensor
from molkit.data.neighbors import radius_graph
from molkit.models.base import batch_vector
from .common import Budget, build, interleaved, molecule_batches, slab_batches, train_step

FEATURES = 128  # message width (SchNet's num_filters)


def _index_add(msg: Tensor, idx: Tensor, n: int) -> Tensor: return msg.new_zeros(n, msg.shape[1]).index_add(0, idx, msg)


def _scatter_reduce(msg: Tensor, idx: Tensor, n: int) -> Tensor:
    return msg.new_zeros(n, msg.shape[1]).scatter_reduce(0, idx.unsqueeze(1).expand_as(msg), msg, 'sum', include_self=True)


def methods(idx: Tensor, n: int) -> tuple[dict, Tensor]:
    "Each method as `f(msg) -> [n, F]`, and the edge order its messages come in (`perm`: random; else sorted by centre)."
    perm = torch.randperm(idx.numel(), generator=torch.Generator().manual_seed(0)).to(idx.device)
    shuffled = idx[perm]
    lengths = torch.bincount(idx, minlength=n)
    ptr = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    A = torch.sparse_csr_tensor(ptr, torch.arange(idx.numel(), device=idx.device), torch.ones(idx.numel(), device=idx.device),
                                size=(n, idx.numel()))
    return {'index_add (sorted, molkit)': lambda m: _index_add(m, idx, n),
            'index_add (random order)': lambda m: _index_add(m, shuffled, n),  # messages given in the order `perm`
            'scatter_reduce sum': lambda m: _scatter_reduce(m, idx, n),
            'segment_reduce (CSR)': lambda m: torch.segment_reduce(m, 'sum', lengths=lengths, axis=0),
            'sparse CSR @ messages': lambda m: torch.sparse.mm(A.to(m.dtype), m)}, perm


def _case(graph: str, batch, device: str, b: Budget) -> list[dict]:
    "All methods on one batch's edges, interleaved; forward + backward of sum(out²), median times (setup not timed)."
    batch = batch.to(device)
    ei, _ = radius_graph(batch.pos, 5.0 if graph == 'molecules' else 6.0, batch_vector(batch), batch.get('cell'), batch.get('pbc'))
    idx, n = ei[1], batch.num_nodes
    fns, perm = methods(idx, n)
    base = torch.randn(idx.numel(), FEATURES, device=device)
    msgs = {k: (base[perm] if 'random' in k else base).clone().requires_grad_() for k in fns}
    ref = fns['index_add (sorted, molkit)'](base)
    for k, f in fns.items(): torch.testing.assert_close(f(msgs[k]).detach(), ref, rtol=1e-4, atol=1e-4, msg=k)

    def step(k):
        def run(_):
            msgs[k].grad = None
            fns[k](msgs[k]).square().sum().backward()
        return run
    t = interleaved({k: step(k) for k in fns}, b.peer_steps, b.warmup, device)
    ms = t['index_add (sorted, molkit)']['wall_s']
    return [{'graph': graph, 'device': device, 'method': k, 'edges': int(idx.numel()), 'atoms': n, 'features': FEATURES,
             'fwd_bwd_us': 1e6 * r['wall_s'], 'speedup_vs_molkit': ms / r['wall_s'], 'steps': r['n']} for k, r in t.items()]


def segment_reductions(b: Budget, devices: list[str]) -> list[dict]:
    "Edge -> atom sums of a molecule batch (32) and a slab batch (8) on every device."
    mol = molecule_batches(1, 32, seed=0)[0]
    slab = slab_batches(1, 8, 8, b.slab_size)[0]
    return [r for d in devices for g, x in (('molecules', mol), ('slabs', slab)) for r in _case(g, x, d, b)]


def _per_edge(edge_index: Tensor, shifts: Tensor, n_atoms: int) -> tuple[Tensor, Tensor]:
    "No grouping: every directed edge is its own 'pair' (no `torch.unique`, no sync)."
    e = torch.arange(edge_index.shape[1], device=edge_index.device)
    return e, e


def pair_grouping(b: Budget, devices: list[str]) -> list[dict]:
    "SchNet energy + forces training step with filters per atom pair (molkit) vs per directed edge, same weights and batches."
    import molkit.models.schnet as S
    grouped, rows = S.undirected_pairs, []
    try:
        for dev in devices:
            for bs in b.batch_sizes:
                batches = [x.to(dev) for x in molecule_batches(3, bs, seed=bs)]
                step = train_step(build('schnet', b.schnet_preset).to(dev), 'fp32', dev)

                def run(fn):
                    def r(s):
                        S.undirected_pairs = fn
                        step(batches[s % len(batches)])
                    return r
                t = interleaved({'pairs': run(grouped), 'edges': run(_per_edge)}, b.steps, b.warmup, dev)
                rows.append({'device': dev, 'batch': bs, 'pairs_ms': 1e3 * t['pairs']['wall_s'], 'edges_ms': 1e3 * t['edges']['wall_s'],
                             'edges_over_pairs': t['edges']['wall_s'] / t['pairs']['wall_s'], 'steps': t['pairs']['n']})
    finally:
        S.undirected_pairs = grouped
    return rows
