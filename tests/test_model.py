"""SemaCDR model: contract checks on every preset and both targets, thread masks, loss terms and switches,
bad inputs, overfitting (the model notebook holds the other checks)."""
import pytest
import torch

torch.set_num_threads(1)
from semacdr.data import collate_train
from semacdr.checks import check_model, toy_data
from semacdr.model import PRESETS, SemaCDR, SemaCDRConfig

SMALL = dict(hidden=16, maxlen=16, layers=1, dropout=0.1)


def build(cfg=None, seed=1, **kw):
    toy = toy_data(seed=seed)
    cfg = cfg or SemaCDRConfig(**{**SMALL, 'dropout': 0.0, **kw})
    torch.manual_seed(0)
    m = SemaCDR(cfg, item_features=toy['item_features'], item_domain=toy['item_domain'],
                local_index=toy['local_index']).eval()
    b = collate_train(toy['sequences'], toy['item_domain'], toy['local_index'], cfg.target_domain, 12)
    return m, b, toy


@pytest.mark.parametrize('name', list(PRESETS))
@pytest.mark.parametrize('target', [0, 1])
def test_contract_checks(name, target):
    r = check_model(SemaCDR, SemaCDRConfig.preset(name, **SMALL, target_domain=target))
    assert r['padding_diff'] <= 1e-5 and r['causality_diff'] <= 1e-5 and r['save_load_diff'] == 0


def test_mean_fusion_is_uniform():
    m, b, _ = build(item_fusion='mean', seq_fusion='mean')
    with torch.no_grad():
        o = m(**b)
    assert torch.allclose(o.item_gates, torch.full_like(o.item_gates, 1 / 3))
    assert torch.allclose(o.seq_gates, torch.full_like(o.seq_gates, 1 / 4))


def test_threads_follow_mixed_time():
    "Changing a source item at column c changes nothing before c, in any thread, nor in the cross-attention."
    m, b, _ = build()
    ids = b['input_ids'].clone()
    with torch.no_grad():
        o = m(input_ids=ids)
        c = 8
        ids[:, c] = torch.where(ids[:, c] > 0, (ids[:, c] % 40) + 1, ids[:, c])
        o2 = m(input_ids=ids)
    assert torch.allclose(o.preference[:, :c], o2.preference[:, :c], atol=1e-6)
    assert torch.allclose(o.cross_attention[:, :, :c], o2.cross_attention[:, :, :c], atol=1e-6)


def test_loss_terms_and_switches():
    m, b, _ = build()
    with torch.no_grad():
        o = m(**b)
    assert torch.allclose(o.loss, o.rec_loss + m.config.contrastive_weight * o.contrastive_loss)
    m2, _, _ = build(use_contrastive=False, aux_weight=0.5)
    with torch.no_grad():
        o2 = m2(**b)
    assert o2.contrastive_loss is None and torch.allclose(o2.loss, o2.rec_loss + 0.5 * o2.aux_loss)
    sas, _, _ = build(SemaCDRConfig.preset('sasrec', **SMALL))
    assert sas.adapters == torch.nn.ModuleDict() or len(sas.adapters) == 0
    assert not any(n.startswith('feat_') for n, _ in sas.named_buffers()) and sas.cross is None


def test_bad_inputs():
    m, b, toy = build()
    with pytest.raises(ValueError, match='maxlen'):
        m(input_ids=torch.ones(2, 20, dtype=torch.long))
    with pytest.raises(ValueError, match='item_features'):
        SemaCDR(SemaCDRConfig(**SMALL), item_features={'specific': toy['item_features']['specific']},
                item_domain=toy['item_domain'], local_index=toy['local_index'])


@pytest.mark.parametrize('name,steps,lr,acc', [('semacdr', 300, 3e-3, 0.97), ('sasrec-mixed', 200, 1e-2, 0.97),
                                               ('text', 200, 1e-2, 0.97)])
def test_overfits_a_tiny_data_set(name, steps, lr, acc):
    cfg = SemaCDRConfig.preset(name, hidden=32, maxlen=16, layers=1, dropout=0.0)
    r = check_model(SemaCDR, cfg, checks=(), overfit_steps=steps, lr=lr, overfit_acc=acc)
    assert r['overfit_acc'] >= acc
