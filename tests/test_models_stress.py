"Stress from GradientStressHead equals ASE-style central finite differences of the energy under strain (float64)."
import numpy as np, torch
from ase.build import bulk
from torch_geometric.data import Batch
from molkit.data.atoms import atoms_to_data
from molkit.models.base import Model
from molkit.models.heads import GradientForceHead, GradientStressHead, ScalarHead
from molkit.models.schnet import SchNet

def _energy(model, atoms) -> float:
    return model(Batch.from_data_list([atoms_to_data(atoms, dtype=torch.float64)]), targets=['energy'])['energy'].item()

def test_stress_matches_finite_differences():
    torch.manual_seed(0)
    e = ScalarHead(16)
    model = Model(SchNet(hidden_dim=16, num_filters=16, num_interactions=2, num_gaussians=10, cutoff=4.0),
                  {'energy': e, 'forces': GradientForceHead(e), 'stress': GradientStressHead(e)}).double().eval()
    a = bulk('Si', 'diamond', a=5.43) * (1, 1, 2)
    a.rattle(0.05, seed=0)
    b = bulk('Cu', 'fcc', a=3.6); b.rattle(0.05, seed=1)
    batch = Batch.from_data_list([atoms_to_data(x, dtype=torch.float64) for x in (a, b)])
    out = model(batch)
    assert out['stress'].shape == (2, 3, 3) and out['forces'].shape == (len(a) + len(b), 3)
    assert 'strain' not in batch  # Model strains a shallow copy
    h, V, cell = 1e-5, a.get_volume(), a.cell.array.copy()
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            x = np.zeros((3, 3)); x[i, j] = x[j, i] = h
            E = []
            for sgn in (1, -1):
                c = a.copy(); c.set_cell(cell @ (np.eye(3) + sgn * x), scale_atoms=True); E.append(_energy(model, c))
            fd[i, j] = (E[0] - E[1]) / (2 * h * V) / (1 if i == j else 2)
    assert np.abs(fd).max() > 1e-4  # a non-trivial stress
    np.testing.assert_allclose(out['stress'][0].detach().numpy(), fd, atol=1e-8, rtol=1e-5)
    np.testing.assert_allclose(out['stress'][0].detach().numpy(), out['stress'][0].detach().numpy().T, atol=1e-12)
