"End to end: registry-built backbones + heads on a DataLoader of QM9 molecules; train/eval force modes; checkpoints."
import io
import pytest, torch
from torch_geometric.loader import DataLoader
from molkit.data.atoms import atoms_to_data
from molkit.data.readers.qm9 import load_qm9_subset
from molkit.models.base import BACKBONES, Model, build_backbone
from molkit.models.heads import GradientForceHead, ScalarHead, SpatialExtentHead
import molkit.models.schnet, molkit.models.painn  # noqa: F401  (register the backbones)

TINY = {'schnet': dict(hidden_dim=16, num_filters=16, num_interactions=2, num_gaussians=10, cutoff=4.0),
        'painn': dict(hidden_dim=16, num_layers=2, num_rbf=8, cutoff=4.0)}

@pytest.mark.parametrize('name', ['schnet', 'painn'])
def test_loader_train_eval_checkpoint(name):
    data = [atoms_to_data(a) for a in load_qm9_subset()[:12]]
    torch.manual_seed(0)
    e = ScalarHead(16)
    model = Model(build_backbone(name, **TINY[name]), {'qm9/U0': e, 'qm9/forces': GradientForceHead(e),
                                                        'qm9/r2': SpatialExtentHead(16)})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for batch in DataLoader(data, batch_size=4, shuffle=True):
        out = model(batch)
        assert out['qm9/U0'].shape == (batch.num_graphs,) and out['qm9/forces'].shape == (batch.num_nodes, 3)
        assert out['qm9/forces'].requires_grad  # create_graph in training, so a force loss can backpropagate
        loss = (out['qm9/U0'] - (batch.U0 - batch.U0.mean()).float()).pow(2).mean() + out['qm9/forces'].pow(2).mean() \
            + (out['qm9/r2'] - batch.r2.float()).abs().mean()
        opt.zero_grad(); loss.backward(); opt.step()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    batch = next(iter(DataLoader(data, batch_size=4)))
    with torch.no_grad():
        ref = model(batch)
    assert not ref['qm9/forces'].requires_grad  # no graph kept in eval
    buf = io.BytesIO(); torch.save(model.state_dict(), buf); buf.seek(0)
    clone = Model(build_backbone(name, **TINY[name]), {'qm9/U0': (e2 := ScalarHead(16)), 'qm9/forces': GradientForceHead(e2),
                                                        'qm9/r2': SpatialExtentHead(16)})
    clone.load_state_dict(torch.load(buf, weights_only=True))
    out = clone.eval()(batch, targets=['qm9/U0', 'qm9/forces'])
    assert set(out) == {'qm9/U0', 'qm9/forces'}
    torch.testing.assert_close(out['qm9/U0'], ref['qm9/U0'])
    torch.testing.assert_close(out['qm9/forces'], ref['qm9/forces'])

def test_registry_presets():
    assert {'schnet', 'painn'} <= set(BACKBONES)
    assert build_backbone('schnet', preset='oc20', num_interactions=1).cfg.hidden_dim == 1024
    assert build_backbone('painn', preset='qm9', hidden_dim=8).cfg.cutoff == 5.0
    with pytest.raises(KeyError, match='no preset'): build_backbone('painn', preset='md17')
