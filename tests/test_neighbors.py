"Neighbour lists inside DataLoader worker processes (vesin's thread pool across fork/spawn) and on CUDA."
import functools

import pytest
import torch
from ase.build import bulk, fcc111
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from molkit.data.atoms import atoms_to_data
from molkit.data.neighbors import add_edges, radius_graph


class _Structures(torch.utils.data.Dataset):
    "Small periodic structures whose edges are made by a transform in the worker."
    def __init__(self, cutoff: float):
        self.items = [atoms_to_data(fcc111('Cu', size=(2, 2, 3), vacuum=6.0, periodic=False)),
                      atoms_to_data(bulk('Cu', 'fcc', a=3.6, cubic=True))] * 4
        for d in self.items[::2]: d.pbc = torch.tensor([[True, True, False]])
        self.add = functools.partial(add_edges, cutoff=cutoff)
    def __len__(self): return len(self.items)
    def __getitem__(self, k): return self.add(self.items[k])


@pytest.mark.parametrize('ctx', ['fork', pytest.param('spawn', marks=pytest.mark.slow)])
def test_add_edges_in_workers(ctx):
    "Workers give the same edges as the main process, after vesin ran multithreaded in the parent."
    torch.set_num_threads(2)
    ds = _Structures(5.0)
    radius_graph(ds.items[1].pos, 5.0, None, ds.items[1].cell, ds.items[1].pbc)  # start vesin's pool before the fork
    ref = Batch.from_data_list([ds[k] for k in range(len(ds))])
    loader = DataLoader(ds, batch_size=len(ds), num_workers=2, multiprocessing_context=ctx)
    got = next(iter(loader))
    assert torch.equal(got.edge_index, ref.edge_index) and torch.equal(got.shifts, ref.shifts)
    assert got.edge_index.shape[1] > 1000


@pytest.mark.cuda
def test_cuda_matches_cpu():
    "On the GPU the edges equal the CPU edges, including a cell narrower than the cutoff."
    ds = _Structures(7.0)
    b = Batch.from_data_list(ds.items)
    ref = add_edges(b, 7.0, max_num_neighbors=40)
    got = add_edges(b.to('cuda'), 7.0, max_num_neighbors=40)
    assert got.edge_index.is_cuda
    assert torch.equal(got.edge_index.cpu(), ref.edge_index) and torch.equal(got.shifts.cpu(), ref.shifts)
