"SemaCDR model: contract checks on every preset, masks, gates, contrastive loss, save/load, overfitting."
import dataclasses
import numpy as np
import pytest
import torch

torch.set_num_threads(1)
from semacdr.data import collate_train, pad_left
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


def test_output_shapes_and_gates_sum_to_one():
    m, b, toy = build()
    with torch.no_grad():
        o = m(**b)
    B, L = b['input_ids'].shape
    N = m.n_target_items
    M = int((b['labels'] != -100).sum())
    assert o.logits.shape == (M, N) and o.positions.shape == (M, 2) and o.targets.shape == (M,)
    assert o.item_gates.shape == (N, 3) and o.seq_gates.shape == (B, 4) and o.seq_gates_all.shape == (B, L, 4)
    assert o.cross_attention.shape == (B, m.config.heads, L, L) and o.preference.shape == (B, L, 16)
    assert (torch.allclose(o.item_gates.sum(-1), torch.ones(N))
            and torch.allclose(o.seq_gates_all.sum(-1), torch.ones(B, L)))
    assert torch.allclose(m.item_gate_values().sum(-1), torch.ones(len(toy['item_domain'])))
    assert torch.equal(o.targets, b['labels'][b['labels'] != -100])


def test_mean_fusion_is_uniform():
    m, b, _ = build(item_fusion='mean', seq_fusion='mean')
    with torch.no_grad():
        o = m(**b)
    assert torch.allclose(o.item_gates, torch.full_like(o.item_gates, 1 / 3))
    assert torch.allclose(o.seq_gates, torch.full_like(o.seq_gates, 1 / 4))


def test_training_logits_equal_scores_of_prefixes():
    m, b, _ = build()
    ids = b['input_ids']
    with torch.no_grad():
        o = m(**b)
        for i, (r, c) in enumerate(o.positions.tolist()):
            hist = (ids[r, :c + 1][ids[r, :c + 1] > 0] - 1).tolist()
            assert torch.allclose(m.score(pad_left([hist], 14))[0], o.logits[i], atol=1e-5)


def test_cross_attention_only_reads_past_source_items():
    m, b, _ = build()
    with torch.no_grad():
        w = m(**b).cross_attention
    ids = b['input_ids']
    L = ids.shape[1]
    src = (ids > 0) & (m.token_domain[ids] == 0)
    allowed = (torch.ones(L, L, dtype=torch.bool).tril() & src[:, None, :])[:, None].expand_as(w)
    assert float(w[~allowed].abs().max()) == 0
    assert torch.allclose(w.sum(-1), allowed.any(-1).float())


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


def test_contrastive_loss_by_hand():
    m, _, _ = build()
    toks = torch.tensor([1, 5, 9, 22, 40])
    with torch.no_grad():
        a = m.adapters['agnostic'](m.feat_agnostic[toks]).numpy().astype(np.float64)
        s = m.adapters['specific'](m.feat_specific[toks]).numpy().astype(np.float64)
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        sim = a @ s.T / m.config.temperature
        hand = np.mean([np.log(np.exp(sim[i]).sum()) - sim[i, i] for i in range(len(toks))])
        assert abs(float(m.contrastive_loss(toks)) - hand) < 1e-5


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


def test_chunked_softmax_same_loss_and_gradients():
    m, b, toy = build()
    mc = SemaCDR(dataclasses.replace(m.config, loss_chunk=16), item_features=toy['item_features'],
                 item_domain=toy['item_domain'], local_index=toy['local_index']).eval()
    mc.load_state_dict(m.state_dict())
    l1 = m(**b).loss
    l1.backward()
    oc = mc(**b)
    oc.loss.backward()
    assert oc.logits is None and torch.allclose(l1, oc.loss, atol=1e-5)
    for (n, p), (_, q) in zip(m.named_parameters(), mc.named_parameters()):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, atol=1e-6), n


def test_save_load_with_and_without_features(tmp_path):
    m, b, toy = build()
    with torch.no_grad():
        s = m.score(b['input_ids'])
    m.save_pretrained(tmp_path/'a')
    assert torch.equal(SemaCDR.from_pretrained(tmp_path/'a').eval().score(b['input_ids']).detach(), s)
    m.save_pretrained(tmp_path/'b', save_features=False)
    assert (tmp_path/'b'/'model.safetensors').stat().st_size < (tmp_path/'a'/'model.safetensors').stat().st_size
    with pytest.raises(ValueError, match='item_features'):
        SemaCDR.from_pretrained(tmp_path/'b')
    m3 = SemaCDR.from_pretrained(tmp_path/'b', item_features=toy['item_features']).eval()
    with torch.no_grad():
        assert torch.equal(m3.score({'input_ids': b['input_ids']}), s)   # a collate_eval batch works too
    import json
    cfg = json.loads((tmp_path/'a'/'config.json').read_text())
    cfg['use_cross_attention'] = False
    (tmp_path/'a'/'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match='do not fit'):
        SemaCDR.from_pretrained(tmp_path/'a')


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
