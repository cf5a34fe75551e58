"""Popularity and GRU4Rec on the RecModel base: contract checks, learning, registry, trainer in both directions."""
import dataclasses, json, sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from trainer_worker import toy_dataset

from semacdr.base import MODELS, build_model
from semacdr.baselines import GRU4Rec, GRU4RecConfig, Popularity, PopularityConfig
from semacdr.checks import check_model
from semacdr.data import collate_train
from semacdr.training import TrainConfig, train, train_directions

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def toy():
    return toy_dataset()


def check_interface(model, ds, target, tmp_path):
    "forward(input_ids, labels).loss is a finite scalar, score is [B, n_target], save/load round-trips."
    seqs = ds.split(target).train['items'][:8]
    b = collate_train(seqs, ds.item_domain, ds.local_index, target, model.config.maxlen)
    out = model(input_ids=b['input_ids'], labels=b['labels'])
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    model.eval()
    s = model.score(b['input_ids'])
    assert s.shape == (len(seqs), int((ds.item_domain == target).sum())) and torch.isfinite(s).all()
    model.save_pretrained(tmp_path/'m')
    m2 = type(model).from_pretrained(tmp_path/'m').eval()
    torch.testing.assert_close(m2.score(b['input_ids']), s)
    return out


@pytest.mark.parametrize('cls,cfg', [
    (GRU4Rec, GRU4RecConfig(target_domain=1, hidden=16, gru_hidden=32, maxlen=20, emb_dropout=0.0)),
    (GRU4Rec, GRU4RecConfig(target_domain=0, sequence='target', hidden=16, gru_hidden=32, maxlen=20, emb_dropout=0.0)),
    (GRU4Rec, GRU4RecConfig(target_domain=1, hidden=16, gru_hidden=32, maxlen=20, emb_dropout=0.0,
                            sampled_negatives=6)),
    (Popularity, PopularityConfig(target_domain=1, maxlen=20))])
def test_check_model(cls, cfg):
    "The zoo's contract checks (semacdr.checks.check_model) and overfitting the toy data; Popularity has no gradients."
    checks = ('forward', 'score', 'padding', 'causality', 'batch', 'empty', 'save_load')
    if cls is Popularity:
        check_model(cls, cfg, checks=checks[1:])
    else:
        check_model(cls, cfg, checks=checks, overfit_steps=60, overfit_acc=0.9, lr=3e-2)


@pytest.mark.parametrize('correct', [True, False])
def test_gru4rec_sampled_loss_is_the_base_loss(toy, correct):
    "The sampled path is RecModel.rec_loss: the candidates' log Q (from the training labels) is subtracted when asked."
    from semacdr.base import next_item_loss, sample_candidates
    m = GRU4Rec.from_dataset(toy, 1, GRU4RecConfig(hidden=16, maxlen=20, emb_dropout=0.0, sampled_negatives=5,
                                                   sampling_correction=correct)).train()
    b = collate_train(toy.split(1).train['items'][:16], toy.item_domain, toy.local_index, 1, 20)
    torch.manual_seed(3)
    loss = m(input_ids=b['input_ids'], labels=b['labels']).loss
    torch.manual_seed(3)
    states = m.encode(b['input_ids'])
    sel = b['labels'] != -100
    c = sample_candidates(b['labels'][sel], m.n_target_items, 5, m.label_freq)
    expect = next_item_loss(m.logits(states[sel], c.items), c.columns, c.log_q if correct else None)
    torch.testing.assert_close(loss, expect)
    assert (m.label_freq - m.label_freq.mean()).abs().max() > 0          # counted from the data: the correction matters


def test_registry(toy):
    "pop / gru4rec / gru4rec-target build through from_dataset; shared fields fill GRU4Rec's config, not its dropout."
    # the run-wide dropout is not GRU4Rec's; a `dropout` in its own overrides (a search space for all models) is
    from semacdr.model import SemaCDRConfig
    assert {'pop', 'gru4rec', 'gru4rec-target'} <= set(MODELS)
    shared = SemaCDRConfig(hidden=24, maxlen=30, dropout=0.5, sampled_negatives=7, sampling_correction=False)
    g = build_model('gru4rec-target', toy, 0, shared=shared, overrides={'gru_hidden': 40})
    c = g.config
    assert (c.target_domain, c.sequence, c.hidden, c.maxlen) == (0, 'target', 24, 30)
    assert (c.sampled_negatives, c.gru_hidden) == (7, 40)
    assert c.emb_dropout == GRU4RecConfig.emb_dropout and g.sampling_correction is False
    assert build_model('gru4rec', toy, 1, shared=shared).config.sequence == 'mixed'
    labels = [toy.local_index[i] for s in toy.split(0).train['items'] for i in s[1:] if toy.item_domain[i] == 0]
    cnt = np.bincount(labels, minlength=g.n_target_items)
    torch.testing.assert_close(g.label_freq, torch.as_tensor((cnt + 1) / (cnt.sum() + len(cnt)), dtype=torch.float32))
    p = build_model('pop', toy, 1, shared=shared)
    assert p.config.maxlen == 30 and p.counts.sum() > 0 and p.config.target_domain == 1
    assert build_model('gru4rec', toy, 1, shared=shared, overrides={'dropout': 0.1}).config.emb_dropout == 0.1
    with pytest.raises(ValueError, match='dropuot'):
        build_model('gru4rec', toy, 1, overrides={'dropuot': 0.1})


@pytest.mark.parametrize('target', [0, 1])
def test_popularity(toy, target, tmp_path):
    pop = Popularity.from_dataset(toy, target)
    check_interface(pop, toy, target, tmp_path)
    # counts = occurrences of each target item in the training sequences, in local order
    flat = [i for s in toy.split(target).train['items'] for i in s if toy.item_domain[i] == target]
    expect = np.bincount(toy.local_index[flat], minlength=int((toy.item_domain == target).sum()))
    assert pop.counts.long().tolist() == expect.tolist()
    s = pop.score(torch.zeros(3, 5, dtype=torch.long))
    assert (s == s[0]).all() and len(set(s[0].tolist())) == s.shape[1]      # same ranking for all, no ties
    assert not any(p.requires_grad for p in pop.parameters())


@pytest.mark.parametrize('sequence', ['mixed', 'target'])
def test_gru4rec_learns(toy, sequence, tmp_path):
    torch.manual_seed(0)
    m = GRU4Rec.from_dataset(toy, 1, GRU4RecConfig(sequence=sequence, hidden=16, maxlen=20, emb_dropout=0.0))
    check_interface(m, toy, 1, tmp_path)
    m.train()
    b = collate_train(toy.split(1).train['items'], toy.item_domain, toy.local_index, 1, 20)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = m(input_ids=b['input_ids'], labels=b['labels']).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.3, losses[::5]


def test_gru4rec_target_ignores_source_items(toy):
    m = GRU4Rec.from_dataset(toy, 0, GRU4RecConfig(sequence='target', hidden=8, maxlen=10, emb_dropout=0.0)).eval()
    a_items, b_items = toy.domain_items(0)[:3] + 1, toy.domain_items(1)[:4] + 1
    x = torch.zeros(2, 10, dtype=torch.long)
    x[0, -3:] = torch.as_tensor(a_items)
    x[1, -7:] = torch.as_tensor([b_items[0], a_items[0], b_items[1], b_items[2], a_items[1], b_items[3], a_items[2]])
    s = m.score(x)
    torch.testing.assert_close(s[0], s[1])


def test_trainer_runs_baselines_both_directions(toy, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=32, lr=1e-2, output_dir=str(tmp_path/'gru'), cpu=True, progress=False,
                      test_protocols=('full', 'sampled-20'))
    res = train_directions(lambda t: GRU4Rec.from_dataset(toy, t, GRU4RecConfig(hidden=16, maxlen=20)), toy, cfg)
    assert set(res) == {0, 1}
    for t, r in res.items():
        assert r.epochs_run == 2 and Path(r.output_dir).name == f'target-{toy.domains[t]}'
        assert r.test['full']['n_cases'] == len(toy.split(t).test) and 'sampled-20' in r.test
        assert r.test['sampled-20']['HR@10'] >= r.test['full']['HR@10']
    # a finished run is not retrained; a protocol asked for later is scored on its best weights and stored
    again = train(GRU4Rec.from_dataset(toy, 1, GRU4RecConfig(hidden=16, maxlen=20)), toy, 1,
                  dataclasses.replace(cfg, output_dir=res[1].output_dir,
                                      test_protocols=('full', 'sampled-20', 'sampled-10')))
    assert again.history == res[1].history and again.test['full'] == res[1].test['full']
    stored = json.loads((Path(res[1].output_dir)/'results.json').read_text())['test']
    assert 'sampled-10' in again.test and 'sampled-10' in stored
    pr = train(Popularity.from_dataset(toy, 1), toy, 1, dataclasses.replace(cfg, output_dir=str(tmp_path/'pop')))
    assert pr.epochs_run == 0 and pr.best_epoch == 0 and 0 <= pr.test['full']['NDCG@10'] <= 1
    assert Popularity.from_pretrained(pr.best_checkpoint).counts.sum() > 0


def test_wrong_target_is_refused(toy, tmp_path):
    m = GRU4Rec.from_dataset(toy, 0, GRU4RecConfig(hidden=8, maxlen=10))
    with pytest.raises(ValueError, match='target domain 0'):
        train(m, toy, 1, TrainConfig(epochs=1, output_dir=str(tmp_path), cpu=True, progress=False))


def test_on_movielens_default(movielens, tmp_path):
    "One short epoch of GRU4Rec (target-only) and the popularity ranking on the embedded default."
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=1, batch_size=128, max_steps_per_epoch=3, output_dir=str(tmp_path/'g'), cpu=True,
                      progress=False)
    r = train(GRU4Rec.from_dataset(movielens, 0, GRU4RecConfig(sequence='target', hidden=16)), movielens, 0, cfg)
    assert r.history[0]['train_examples'] == 3 * 128 and r.test['full']['n_cases'] == len(movielens.split(0).test)
    p = train(Popularity.from_dataset(movielens, 0), movielens, 0,
              dataclasses.replace(cfg, output_dir=str(tmp_path/'p')))
    assert p.test['full']['HR@10'] > 10 / len(movielens.domain_items(0))   # better than a random ranking
