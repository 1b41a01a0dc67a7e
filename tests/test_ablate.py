"`ablate` from a YAML file: grid × variants × seeds, outputs, skipping finished runs, strict keys."
import csv, json, math
import pytest
import yaml
from molkit.experiments.ablate import ablate
from molkit.train.config import ConfigError

TINY = {'hidden_dim': 8, 'num_filters': 8, 'num_interactions': 1, 'num_gaussians': 8, 'cutoff': 4.0}

def _spec(out_dir) -> dict:
    return {'base': {'data': {'dataset': 'qm9_subset', 'limit': 100, 'split': {'train': 60, 'val': 20, 'test': 20},
                              'batch_size': 16, 'linear_reference': ['U0']},
                     'model': {'backbone_cfg': TINY, 'heads': {'U0': {'type': 'dist', 'bins': {'num_bins': 16},
                                                                       'head': {'hidden_dim': 8}}}},
                     'loss': [{'target': 'U0', 'fn': 'dmoe'}], 'train': {'max_steps': 4, 'eval_every': 0}},
            'grid': {'model.heads.U0.target.kind': ['two_hot'], 'model.heads.U0.experts': [1, 2]},
            'variants': {'L1': {'model.heads.U0': {'type': 'energy'}, 'loss.0.fn': 'l1'}},
            'seeds': [0, 1], 'out_dir': str(out_dir)}

def test_ablate_yaml(tmp_path):
    f = tmp_path / 'abl.yaml'
    f.write_text(yaml.safe_dump(_spec(tmp_path / 'out'), sort_keys=False))
    sm = ablate(f, progress=False)
    assert [r['cell'] for r in sm] == ['kind=two_hot,experts=1', 'kind=two_hot,experts=2', 'L1']
    assert all(r['seeds'] == 2 and math.isfinite(r['U0_mae']) and r['U0_mae_std'] >= 0 for r in sm)
    assert all(math.isfinite(r['U0_nll']) for r in sm[:2]) and math.isnan(sm[2]['U0_nll'])
    out = tmp_path / 'out'
    rows = list(csv.DictReader(open(out / 'results.csv')))
    assert len(rows) == 6 and {r['seed'] for r in rows} == {'0', '1'}
    assert (out / 'summary.md').read_text().count('\n') == 2 + 3 and (out / 'summary.csv').exists()
    # a finished run is not trained again: a doctored result.json is read back as is
    res = out / 'runs' / 'L1' / 'seed0' / 'result.json'
    d = json.loads(res.read_text()); d['U0_mae'] = 123.0; res.write_text(json.dumps(d))
    assert ablate(f, progress=False)[2]['U0_mae'] == pytest.approx((123.0 + float(rows[5]['U0_mae'])) / 2)

def test_ablate_strict(tmp_path):
    s = _spec(tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'kind'"):
        ablate({**s, 'grid': {'model.heads.U0.target.knd': ['one_hot']}}, progress=False)
    with pytest.raises(ConfigError, match="did you mean 'variants'"):
        ablate({**s, 'variant': {}}, progress=False)
    with pytest.raises(ConfigError, match='not an index'):
        ablate({**s, 'grid': {'loss.3.fn': ['ce']}}, progress=False)
    assert not (tmp_path / 'runs').exists()  # nothing ran
