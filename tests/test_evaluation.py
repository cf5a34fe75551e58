"Metrics against a brute-force reference, fixed candidates, and the evaluate() loop."
import math

import numpy as np
import pytest
import torch

from semacdr.evaluation import Protocol, draw_candidates, evaluate, rank_metrics, split_candidates, target_ranks


def reference_rank(row, t):
    "Rank by sorting, ties broken against the target (stable sort with the target placed last among equals)."
    order = sorted(range(len(row)), key=lambda j: (-row[j], j == t))
    return order.index(t) + 1


def test_ranks_match_sorting_reference():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (200, 30), generator=g).float()   # many ties on purpose
    tcol = torch.randint(0, 30, (200,), generator=g)
    want = [reference_rank(scores[i].tolist(), int(tcol[i])) for i in range(200)]
    assert target_ranks(scores, tcol).tolist() == want
    m = rank_metrics(scores, tcol, ks=(1, 10))
    for i, r in enumerate(want):
        assert m['HR@10'][i] == (r <= 10)
        assert math.isclose(m['NDCG@10'][i], (1 / math.log2(r + 1)) if r <= 10 else 0, rel_tol=1e-6)
        assert math.isclose(m['MRR'][i], 1 / r, rel_tol=1e-6)


def test_nan_target_is_an_error():
    with pytest.raises(ValueError, match='NaN'):
        target_ranks(torch.tensor([[float('nan'), 1.0]]), torch.tensor([0]))


def test_candidates_with_replacement_and_too_few():
    c = draw_candidates([0], None, n_items=3, protocol=Protocol(10, replace=True), seed=0)
    assert c.shape == (1, 11) and 0 not in c[0, 1:].tolist()
    with pytest.raises(ValueError, match='only 2 items'):
        draw_candidates([0], None, n_items=3, protocol=Protocol(10), seed=0)


def test_evaluate_protocols_on_movielens(movielens, tmp_path):
    ds = movielens
    n = int((ds.item_domain == 0).sum())

    split = ds.split(0).test
    tloc = torch.tensor([int(ds.local_index[t]) for t in split['target']])
    calls = {'i': 0}

    def perfect(input_ids):
        b = len(input_ids); rows = tloc[calls['i']:calls['i'] + b]; calls['i'] += b
        s = torch.zeros(b, n); s[torch.arange(b), rows] = 1.0
        return s
    res = evaluate(perfect, ds, target=0, batch_size=100, candidates_dir=tmp_path)
    assert res['n_cases'] == len(split) and res['HR@1'] == 1.0 and res['MRR'] == 1.0
    # a constant scorer ranks the target last under pessimistic ties, in every protocol
    const = lambda ids: torch.zeros(len(ids), n)
    assert evaluate(const, ds, 0, protocol='full')['MRR'] == pytest.approx(1 / n)
    r = evaluate(const, ds, 0, protocol='sampled-99', candidates_dir=tmp_path, return_cases=True)
    assert r['MRR'] == pytest.approx(1 / 100) and sorted(r['cases']['index']) == list(range(len(split)))
    # the stored candidates are reused (same file) and differ across seeds
    a = split_candidates(ds, 0, 'test', Protocol(99), 0, tmp_path)
    assert torch.equal(a, split_candidates(ds, 0, 'test', Protocol(99), 0, tmp_path))
    assert not torch.equal(a, split_candidates(ds, 0, 'test', Protocol(99), 1, tmp_path))
    # excluding history removes the user's target-domain items from the negatives
    h = split_candidates(ds, 0, 'test', Protocol(99, exclude_history=True), 0, tmp_path)
    for row, hist in zip(h[:50], split['history'][:50]):
        seen = {int(ds.local_index[i]) for i in hist if ds.item_domain[i] == 0}
        assert not (seen - {int(row[0])}) & set(row[1:].tolist())
