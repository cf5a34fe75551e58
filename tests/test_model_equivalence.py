"""The refactored, faster SemaCDR computes what the previous implementation computed.

`tests/reference/semacdr_model_v0.py` is the model module as it was before the performance work (commit 8374940),
kept verbatim as a reference. With the same weights, the softmax-gate fusion of that version, no dropout and the same
batch, the new step must give the same loss and the same gradient for every parameter (to float tolerance): one item
view pass per step, threads encoded only over their own rows and columns, and the new attention path change no number.
"""
import dataclasses, importlib.util, sys
from pathlib import Path

import pytest
import torch

from semacdr.checks import toy_data
from semacdr.data import collate_train
from semacdr.model import SemaCDR, SemaCDRConfig

REF = Path(__file__).parent/'reference'/'semacdr_model_v0.py'


def _reference():
    spec = importlib.util.spec_from_file_location('semacdr_model_v0', REF)
    mod = importlib.util.module_from_spec(spec)
    sys.modules['semacdr_model_v0'] = mod
    spec.loader.exec_module(mod)
    return mod


def _pair(switches: dict, seed: int = 0):
    old = _reference()
    toy = toy_data(n_items=40, n_users=16, seq_len=12, seed=seed)
    common = dict(hidden=16, maxlen=16, layers=2, heads=2, dropout=0.0, item_fusion='gate', seq_fusion='gate',
                  **switches)
    torch.manual_seed(seed)
    ref = old.SemaCDR(old.SemaCDRConfig(**common), item_features=toy['item_features'], item_domain=toy['item_domain'],
                      local_index=toy['local_index'])
    new = SemaCDR(SemaCDRConfig(**common, semantics_mask=False), item_features=toy['item_features'],
                  item_domain=toy['item_domain'], local_index=toy['local_index'])
    missing, unexpected = new.load_state_dict(ref.state_dict(), strict=False)
    assert not unexpected and set(missing) <= {'label_freq', 'has_semantics'}, (missing, unexpected)
    batch = collate_train(toy['sequences'], toy['item_domain'], toy['local_index'], 1, 12)
    return ref, new, batch


def _loss_and_grads(model, batch):
    model.train()
    model.zero_grad()
    out = model(input_ids=batch['input_ids'], labels=batch['labels'])
    out.loss.backward()
    return out, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize('switches', [{}, {'aux_weight': 0.3}, {'use_cross_attention': False},
                                      {'use_id': False}, {'use_specific': False, 'use_agnostic': False,
                                                          'use_contrastive': False}])
def test_same_loss_and_gradients_as_before(switches):
    ref, new, batch = _pair(switches)
    o_ref, g_ref = _loss_and_grads(ref, batch)
    o_new, g_new = _loss_and_grads(new, batch)
    torch.testing.assert_close(o_new.loss, o_ref.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(o_new.logits, o_ref.logits, rtol=1e-5, atol=1e-5)
    assert set(g_new) == set(g_ref)
    for k in g_ref:
        torch.testing.assert_close(g_new[k], g_ref[k], rtol=1e-4, atol=1e-6, msg=lambda m: f'{k}: {m}')
    ref.eval()
    new.eval()
    with torch.no_grad():
        torch.testing.assert_close(new.score(batch['input_ids']), ref.score(batch['input_ids']))


def test_same_sampled_loss_without_the_correction():
    "Sampled softmax: with the log-Q correction off and the same seed, the candidates and the loss are the old ones."
    ref, new, batch = _pair({'sampled_negatives': 6, 'contrastive_weight': 0.0})
    new.config = dataclasses.replace(new.config, sampling_correction=False)
    torch.manual_seed(3)
    o_ref, _ = _loss_and_grads(ref, batch)
    torch.manual_seed(3)
    o_new, _ = _loss_and_grads(new, batch)
    torch.testing.assert_close(o_new.loss, o_ref.loss, rtol=1e-5, atol=1e-6)
