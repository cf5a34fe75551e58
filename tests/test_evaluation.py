"Metrics against a brute-force reference, rank backends, fixed candidates, evaluate(), per-case results, paired tests."
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from semacdr.data import pad_left
from semacdr.evaluation import (Protocol, case_scores, draw_candidates, evaluate, paired_test, rank_metrics,
                                split_arrays, split_candidates, target_ranks)


def reference_rank(row, t):
    "Rank by sorting, ties broken against the target (stable sort with the target placed last among equals)."
    order = sorted(range(len(row)), key=lambda j: (-row[j], j == t))
    return order.index(t) + 1


def test_ranks_match_sorting_reference():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (200, 30), generator=g).float()   # many ties on purpose
    tcol = torch.randint(0, 30, (200,), generator=g)
    want = [reference_rank(scores[i].tolist(), int(tcol[i])) for i in range(200)]
    assert target_ranks(scores, tcol, 'numpy').tolist() == want
    assert target_ranks(scores, tcol, 'torch').tolist() == want
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
        b = len(input_ids)
        rows = tloc[calls['i']:calls['i'] + b]
        calls['i'] += b
        s = torch.zeros(b, n)
        s[torch.arange(b), rows] = 1.0
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


@pytest.mark.parametrize('width', [7, 1000, 5000, 30000])
def test_rank_backends_agree_exactly(width):
    "numpy (batched below 4096 columns, per row above) and torch count the same ranks, with ties, NaN and ±inf."
    g = torch.Generator().manual_seed(width)
    s = torch.randint(0, 40, (50, width), generator=g).float() / 8
    s[s == 1.0], s[s == 2.0], s[s == 3.0] = float('nan'), float('-inf'), float('inf')
    tcol = torch.randint(0, width, (50,), generator=g)
    s[torch.arange(50), tcol] = s[torch.arange(50), tcol].nan_to_num(0.5)
    a, b = target_ranks(s, tcol, 'numpy'), target_ranks(s, tcol, 'torch')
    assert a.dtype == b.dtype == torch.int64 and torch.equal(a, b)
    assert torch.equal(target_ranks(s.bfloat16(), tcol, 'numpy'), target_ranks(s.bfloat16(), tcol, 'torch'))
    ma, mb = rank_metrics(s, tcol, backend='numpy'), rank_metrics(s, tcol, backend='torch')
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_split_arrays_match_per_case_reference(movielens):
    ds = movielens
    for target in (0, 1):
        for split in ('valid', 'test'):
            cases = getattr(ds.split(target), split)
            arr = split_arrays(ds, target, split, maxlen=30)
            assert torch.equal(torch.from_numpy(arr.input_ids), pad_left(cases['history'], 30))
            assert arr.target.tolist() == [int(ds.local_index[t]) for t in cases['target']]
            seen = [sorted(int(ds.local_index[i]) for i in h
                           if ds.item_domain[i] == target and ds.local_index[i] != ds.local_index[t])
                    for h, t in zip(cases['history'], cases['target'])]
            assert [sorted(arr.seen[a:b].tolist()) for a, b in zip(arr.seen_offsets, arr.seen_offsets[1:])] == seen


def _dot_model(ds, target, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(ds.n_items + 1, dim, generator=g)
    items = torch.as_tensor(ds.domain_items(target)) + 1
    return lambda ids: emb[ids].mean(1) @ emb[items].T


@pytest.mark.parametrize('kw', [{}, {'mask_history': True}, {'protocol': 'sampled-99'},
                                {'protocol': 'sampled-50-history', 'split': 'valid'}])
def test_evaluate_backends_agree_exactly(movielens, tmp_path, kw):
    f = _dot_model(movielens, 1)
    a = evaluate(f, movielens, 1, batch_size=64, candidates_dir=tmp_path, rank_backend='numpy', return_cases=True, **kw)
    b = evaluate(f, movielens, 1, batch_size=64, candidates_dir=tmp_path, rank_backend='torch', return_cases=True, **kw)
    assert a == b


def test_mask_history_matches_per_case_masking(movielens):
    "Masking the seen items of each case by hand, one case at a time, gives the same ranks."
    ds, target = movielens, 0
    f = _dot_model(ds, target, seed=1)
    cases = ds.split(target).test
    res = evaluate(f, ds, target, maxlen=50, mask_history=True, return_cases=True)
    for r in range(0, len(cases), 97):
        s = f(pad_left([cases[r]['history']], 50))[0].clone()
        t = int(ds.local_index[cases[r]['target']])
        for i in cases[r]['history']:
            if ds.item_domain[i] == target and ds.local_index[i] != t:
                s[int(ds.local_index[i])] = float('-inf')
        assert res['cases']['rank'][r] == int((s >= s[t]).sum())


def test_scores_are_fp32_under_autocast(movielens):
    "An enclosing bf16 autocast does not reach the model's scoring: same metrics, float32 scores inside."
    emb = torch.nn.Embedding(movielens.n_items + 1, 16)
    items = torch.as_tensor(movielens.domain_items(1)) + 1
    dtypes = []

    def score(ids):
        s = emb(ids).mean(1) @ emb(items).T
        dtypes.append(s.dtype)
        return s
    plain = evaluate(score, movielens, 1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        under = evaluate(score, movielens, 1)
        assert (emb.weight[:3] @ emb.weight[:3].T).dtype == torch.bfloat16   # autocast is on outside evaluate
    assert under == plain and set(dtypes) == {torch.float32}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        evaluate(lambda ids: score(ids).bfloat16(), movielens, 1)
    assert any('bfloat16 scores' in str(x.message) for x in w)


def test_per_case_results_and_seed_average(movielens):
    ds = movielens
    runs = [evaluate(_dot_model(ds, 1, seed=s), ds, 1, return_cases=True) for s in (0, 1, 2)]
    c = runs[0]['cases']
    assert c['index'] == list(range(len(ds.split(1).test))) and c['user'] == ds.split(1).test['user']
    assert math.isclose(np.mean(c['NDCG@10']), runs[0]['NDCG@10'], rel_tol=1e-12)
    avg = case_scores(runs, 'MRR')
    assert np.array_equal(avg, np.mean([r['cases']['MRR'] for r in runs], axis=0))
    with pytest.raises(ValueError, match='return_cases'):
        case_scores([runs[0], evaluate(_dot_model(ds, 1), ds, 1)], 'MRR')
    with pytest.raises(ValueError, match='other cases'):
        case_scores([runs[0], evaluate(_dot_model(ds, 1), ds, 1, 'valid', return_cases=True)], 'MRR')


def test_paired_test_known_answers():
    x = np.random.default_rng(0).random(300)
    same = paired_test(x, x)
    assert (same.diff, same.ci_low, same.ci_high, same.p_wilcoxon, same.p_ttest) == (0.0, 0.0, 0.0, 1.0, 1.0)
    # hand check: d = (1, 2, 3): t = 2 * sqrt(3) on 2 df, p = 1 - t / sqrt(t^2 + 2); exact Wilcoxon p = 2 / 2^3
    r = paired_test([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert math.isclose(r.p_ttest, 1 - math.sqrt(12 / 14), rel_tol=1e-12) and math.isclose(r.p_wilcoxon, 0.25)
    assert (r.diff, r.ci_low, r.ci_high, r.n) == (2.0, 1.0, 3.0, 3)
    # a clear shift on 0/1 scores: the interval excludes 0, both tests reject
    rng = np.random.default_rng(1)
    b = (rng.random(1500) < 0.3).astype(float)
    a = np.maximum(b, rng.random(1500) < 0.15)
    shift = paired_test(a, b)
    assert 0 < shift.ci_low < shift.diff < shift.ci_high and max(shift.p_wilcoxon, shift.p_ttest) < 1e-6
    # the bootstrap interval against the normal approximation of the mean difference
    d = a - b
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
    assert abs(shift.ci_low - (d.mean() - half)) < 0.2 * half and abs(shift.ci_high - (d.mean() + half)) < 0.2 * half
    # seeds are averaged per case before testing
    seeds = np.stack([a, 1 - a])
    assert paired_test(seeds, b).mean_a == 0.5
    with pytest.raises(ValueError, match='non-finite'):
        paired_test([1.0, float('nan')], [0.0, 0.0])
    with pytest.raises(ValueError, match='at least 2'):
        paired_test([1.0], [0.0])


def test_notebook_shows_the_committed_speed_table():
    "The evaluation page's speed table (the notebook's committed output) is the current bench result file."
    nbs = Path(__file__).resolve().parent.parent/'nbs'
    table = nbs/'results'/'evaluation_speed.md'
    if not table.exists():
        pytest.skip('bench/bench_evaluation.py has not written nbs/results/evaluation_speed.md')
    nb = json.loads((nbs/'00a_evaluation.ipynb').read_text())
    shown = [''.join(o['data']['text/markdown']) for c in nb['cells'] if c['cell_type'] == 'code'
             for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})]
    assert shown == [table.read_text()], ('nbs/00a_evaluation.ipynb shows another table than '
                                         'nbs/results/evaluation_speed.md: re-execute it (see its Speed section)')
