"Parity: molkit's SchNet with PyG's SchNet weights copied in gives PyG's energies and forces."
import numpy as np, pytest, torch
from ase import Atoms
from ase.build import molecule
from torch_geometric.data import Batch
from torch_geometric.nn.models import SchNet as PygSchNet
from molkit.data.atoms import atoms_to_data
from molkit.data.neighbors import add_edges
from molkit.models.schnet import SCHNET_PRESETS, schnet_from_pyg

def _batch(cutoff: float) -> Batch:
    out = []
    for k, name in enumerate(['CH3CH2OH', 'C6H6', 'CH3COOH', 'H2O', 'C4H4NH']):
        m = molecule(name)
        a = Atoms(m.numbers, m.positions); a.rattle(0.1, seed=k)
        out.append(add_edges(atoms_to_data(a), cutoff))
    return Batch.from_data_list(out)

@pytest.mark.parametrize('preset', ['qm9', 'qm9_5A'])
def test_schnet_matches_pyg(preset):
    c = SCHNET_PRESETS[preset]
    b = _batch(c.cutoff)
    ei = b.edge_index
    torch.manual_seed(0)
    pyg = PygSchNet(c.hidden_dim, c.num_filters, c.num_interactions, c.num_gaussians, c.cutoff,
                    interaction_graph=lambda pos, batch: (ei, (pos[ei[0]] - pos[ei[1]]).norm(dim=-1)))
    for p in pyg.parameters():  # PyG zero-initialises biases; randomise them so the comparison covers them too
        if p.dim() == 1: torch.nn.init.normal_(p, std=0.1)
    ours = schnet_from_pyg(pyg).eval()
    out = ours(b)
    pos = b.pos.detach().clone().requires_grad_(True)
    e_pyg = pyg(b.z, pos, b.batch).squeeze(-1)
    f_pyg = -torch.autograd.grad(e_pyg.sum(), pos)[0]
    assert (out['energy'] - e_pyg).abs().max().item() < 1e-5
    assert (out['forces'] - f_pyg).abs().max().item() < 1e-4
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in pyg.parameters())
