"End-to-end checks of molkit.targets: a distribution head learns, bins survive saving, precision and error cases."
import io
import pytest, torch
from torch_geometric.data import Batch, Data
from molkit.targets.binning import (Bins, BinsConfig, TargetConfig, make_bins, soft_targets, expected_value, bin_index,
                                    SOFT_TARGETS)
from molkit.targets.losses import LossConfig, soft_target_loss
from molkit.targets.dmoe import DistHead, DistHeadConfig, ExpertHead, offset_bins, expert_loss, expert_predict

torch.set_num_threads(1)

def toy_graphs(n_graphs=48, F=6, seed=0):
    "Graphs of 2-5 atoms; the label is the sum over atoms of a fixed linear function of the features."
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(2, 6, (n_graphs,), generator=g).tolist()
    batch = Batch.from_data_list([Data(pos=torch.zeros(n, 3)) for n in sizes])
    x = torch.randn(sum(sizes), F, generator=g)
    w = torch.randn(F, generator=g)
    y = torch.zeros(n_graphs).index_add_(0, batch.batch, x @ w)
    return {'node': x}, batch, (y - y.mean()) / y.std()

def fit(head, loss_fn, feats, data, steps=150):
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad(); loss = loss_fn(head(feats, data)); loss.backward(); opt.step()
    return loss.item()

@pytest.mark.parametrize('mode', ['ce', 'l1', 'dmoe'])
def test_dist_head_learns(mode):
    feats, data, y = toy_graphs()
    bins = make_bins(y, BinsConfig(num_bins=32))
    head = DistHead(bins, DistHeadConfig(in_dim=6, hidden_dim=32))
    mae0 = (head.predict(head(feats, data)) - y).abs().mean().item()
    cfg = LossConfig(mode=mode)
    fit(head, lambda z: soft_target_loss(z, y, head.bins, cfg)[0], feats, data)
    mae = (head.predict(head(feats, data)) - y).abs().mean().item()
    assert mae < 0.35 * mae0, (mode, mae0, mae)

def test_gated_experts_learn():
    feats, data, y = toy_graphs(seed=1)
    bl = offset_bins(make_bins(y, BinsConfig(num_bins=16)), 3)
    head = ExpertHead(bl, DistHeadConfig(in_dim=6, hidden_dim=32), combine='gate')
    mae0 = (expert_predict(head(feats, data), head.bins) - y).abs().mean().item()
    fit(head, lambda out: expert_loss(out, y, head.bins)[0], feats, data)
    out = head(feats, data)
    for combine in ('mean', 'mixture'):
        assert (expert_predict(out, head.bins, combine) - y).abs().mean().item() < 0.35 * mae0

def test_bins_travel_with_the_state_dict():
    feats, data, y = toy_graphs()
    bins = make_bins(y, BinsConfig(num_bins=24, placement='quantile'))
    head = DistHead(bins, DistHeadConfig(in_dim=6, hidden_dim=16))
    torch.nn.init.normal_(head.readout.net[-1].weight)
    buf = io.BytesIO(); torch.save(head.state_dict(), buf); buf.seek(0)
    other = DistHead(Bins(torch.linspace(0, 1, 25)), DistHeadConfig(in_dim=6, hidden_dim=16))
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other.bins.edges, bins.edges)
    assert torch.equal(other.predict(other(feats, data)), head.predict(head(feats, data)))
    assert torch.equal(Bins.from_dict(bins.to_dict()).edges, bins.edges)

def _extreme_grads(device, dtype):
    feats, data, y = toy_graphs()
    feats = {'node': feats['node'].to(device)}
    data, y = data.to(device), y.to(device)
    head = DistHead(make_bins(y.cpu(), BinsConfig(num_bins=32)), DistHeadConfig(in_dim=6, hidden_dim=16)).to(device)
    torch.nn.init.normal_(head.readout.net[-1].weight, std=1e3)  # logits of order ±1e4
    with torch.autocast(device, dtype=dtype):
        z = head(feats, data)
        assert z.abs().max() > 1e3
        loss, _ = soft_target_loss(z, y, head.bins.to(device), LossConfig())
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in head.parameters())

def test_extreme_logits_bf16_cpu(): _extreme_grads('cpu', torch.bfloat16)

@pytest.mark.cuda
def test_extreme_logits_fp16_cuda(): _extreme_grads('cuda', torch.float16)

@pytest.mark.parametrize('placement', ['uniform', 'quantile', 'density'])
@pytest.mark.parametrize('kind', list(SOFT_TARGETS))
def test_targets_are_histograms(placement, kind):
    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.randn(500, generator=g), 5 + 2 * torch.rand(100, generator=g)])
    bins = make_bins(y, BinsConfig(num_bins=20, placement=placement))
    p, n_out = soft_targets(torch.cat([y, torch.tensor([-50., 50.])]), bins, TargetConfig(kind=kind))
    assert int(n_out) == 2 and (p >= 0).all() and torch.allclose(p.sum(-1), torch.ones(len(y) + 2), atol=1e-5)
    err = (expected_value(p[:-2].double(), bins) - y.double()).abs() / bins.widths[bin_index(y, bins)]
    # one-hot reads the bin centre; two-hot is exact between the outer centres; HL-Gauss is near-exact on uniform bins
    # (on non-uniform bins it is not: mass spilling into a much wider neighbour is read out at that bin's centre,
    # see the diagnostics notebook), so it gets only the histogram checks above there.
    bound = {'one_hot': 0.5 + 1e-6, 'two_hot': 1e-6, 'hl_gauss': 0.05 if placement == 'uniform' else float('inf')}[kind]
    inner = (y >= bins.centres[0]) & (y <= bins.centres[-1])
    assert err[inner].max() <= bound

def test_errors():
    with pytest.raises(ValueError, match='strictly increasing'): Bins(torch.tensor([0., 0., 1.]))
    with pytest.raises(ValueError, match='sigma must be > 0'): TargetConfig(sigma=0.)
    with pytest.raises(ValueError, match='M >= 1'): ExpertHead([], DistHeadConfig(in_dim=4))
    with pytest.raises(ValueError, match='num_heads'): offset_bins(Bins(torch.linspace(0, 1, 5)), 0)

def test_heads_on_a_schnet_model():
    "Distribution and expert heads plug into `molkit.models.base.Model` on a tiny SchNet, energies and forces."
    from molkit.models.base import Model, build_backbone
    import molkit.models.schnet  # registers 'schnet'
    g = torch.Generator().manual_seed(0)
    graphs = [Data(z=torch.randint(1, 9, (n,), generator=g), pos=2 * torch.rand(n, 3, generator=g),
                   energy=torch.randn(1, generator=g, dtype=torch.float64), forces=torch.randn(n, 3, generator=g))
              for n in (3, 5, 4)]
    data = Batch.from_data_list(graphs)
    bins = Bins(torch.linspace(-4, 4, 33))
    H = 16
    model = Model(build_backbone('schnet', hidden_dim=H, num_filters=H, num_interactions=2, num_gaussians=8, cutoff=4.0),
                  {'energy': DistHead(bins, DistHeadConfig(in_dim=H, hidden_dim=H)),
                   'forces': DistHead(bins, DistHeadConfig(in_dim=H, hidden_dim=H, level='atom', components=3)),
                   'energy_experts': ExpertHead(offset_bins(bins, 2), DistHeadConfig(in_dim=H, hidden_dim=H), 'gate')})
    for h in model.heads.values(): torch.nn.init.normal_(h.readout.net[-1].weight, std=0.1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(data)
    assert out['energy'].shape == (3, 32) and out['forces'].shape == (12, 3, 32) and out['energy_experts'].shape == (3, 2, 32)
    assert all(v.dtype == torch.float32 for v in out.values())
    y = data.energy.float()
    loss = (soft_target_loss(out['energy'], y, bins)[0] + soft_target_loss(out['forces'], data.forces, bins)[0]
            + expert_loss(out['energy_experts'], y, model.heads['energy_experts'].bins)[0])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 0 and all(torch.isfinite(gr).all() for gr in grads)
    assert model.backbone.embedding.weight.grad.abs().sum() > 0  # the loss reaches the trunk
