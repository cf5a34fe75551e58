"Semantics quality measures: word lists, validity counts, leak-free co-interactions, recall, and the whole report."
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from semacdr.data import load_amazon, write_amazon_fixture
from semacdr.quality import (co_interacted_partners, cross_domain_recall, domain_vocabulary, domain_word_shares,
                             quality_markdown, semantics_quality, stored_records, training_prefixes,
                             validity_summary, vocabulary_pattern)
from semacdr.semantics import SemanticsConfig, SemanticsStore, _item_inputs

NBS = Path(__file__).resolve().parent.parent/'nbs'


def test_vocabulary_pattern_matches_whole_words_and_plurals():
    pat = vocabulary_pattern(['pan', 'k-cup', 'box office'])
    assert [bool(pat.search(s)) for s in ('Pans', 'a K-Cup', 'box offices', 'panorama', 'spanish', 'box')] == \
        [True, True, True, False, False, False]
    assert pat.findall('PANS and a k-cups') == ['PAN', 'k-cup']


def test_domain_word_shares_own_other_any():
    vocab = dict(own={0: ['tea'], 1: ['mug']}, shared=['gift'])
    df = domain_word_shares({'agnostic': ['tea time', 'a gift', 'mug of tea', 'calm']}, np.array([0, 0, 1, 1]), vocab)
    assert df[['n', 'own', 'other', 'any']].values.tolist() == [[2, 0.5, 0.0, 1.0], [2, 0.5, 0.5, 0.5]]


def test_validity_summary_partitions_the_records():
    recs = [dict(fallback=False, retried=False, problems=['truncated: specific', 'truncated: agnostic']),
            dict(fallback=False, retried=True, problems=[]), dict(fallback=True, retried=True, problems=['empty: x']),
            dict(fallback=True, retried=False, problems=['missing label']), None]
    v = validity_summary(recs)
    assert (v['records'], v['first_try'], v['retried_valid'], v['fallback']) == (4, 1, 1, 2)
    assert v['problems'] == {'empty': 0.25, 'missing label': 0.25, 'truncated': 0.25}


def test_training_prefixes_hold_no_evaluation_target(movielens):
    prefixes = training_prefixes(movielens)
    held = 0
    for t in (0, 1):
        for part in (movielens.split(t).valid, movielens.split(t).test):
            for u, x in zip(part['user'], part['target']):
                assert x not in prefixes[u]
                held += 1
    assert held
    train0 = dict(zip(movielens.split(0).train['user'], movielens.split(0).train['items']))
    assert all(len(p) <= len(train0[u]) for u, p in prefixes.items() if u in train0)


def test_partners_are_cross_domain_and_ranked_by_association(movielens):
    partners = co_interacted_partners(movielens, top=5, min_users=3)
    d = movielens.item_domain
    assert partners and all(len(p) <= 5 and (d[p] != d[i]).all() for i, p in partners.items())
    few = co_interacted_partners(movielens, items=movielens.domain_items(0)[:20], top=5)
    assert not few                                           # one domain only: no cross-domain pair is left


def test_cross_domain_recall_finds_twins_and_chance_for_noise():
    rng = np.random.default_rng(0)
    twin = rng.standard_normal((200, 32))
    X = np.concatenate([twin, twin + 0.05 * rng.standard_normal((200, 32))])
    dom = np.repeat([0, 1], 200)
    partners = {i: np.array([200 + i]) for i in range(200)} | {200 + i: np.array([i]) for i in range(200)}
    r = cross_domain_recall(X, dom, partners, ks=(1, 20))
    assert r[0]['R@1'] == 1.0 and r[1]['R@1'] == 1.0 and r[0]['chance'] == {'R@1': 0.005, 'R@20': 0.1}
    noise = cross_domain_recall(rng.standard_normal((400, 32)), dom, partners, ks=(20,))
    assert abs(noise[0]['R@20'] - 0.1) < 0.06


def hashed_words(texts, dim=64):
    "A deterministic bag-of-words embedding (no model): one crc32 bucket per lower-cased word."
    out = np.zeros((len(texts), dim), np.float32)
    for r, t in enumerate(texts):
        for w in str(t).lower().split():
            out[r, zlib.crc32(w.encode()) % dim] += 1
    return out + 1e-3


def test_semantics_quality_on_a_toy_store(tmp_path):
    reviews, meta = write_amazon_fixture(tmp_path/'raw', n_users=12)
    ds = load_amazon(reviews, meta, user_core=1, item_core=1)
    assert [n.lower() for n in ds.domains] == ['food', 'kitchen']
    cfg = SemanticsConfig(use_release=False)
    _, inputs = _item_inputs(ds, cfg)
    records = [dict(item_id=x['item_id'], specific=f"{x['item']['title']} for the home",
                    agnostic='cozy mornings' if ds.item_domain[x['item_id']] == 0 else 'a food lover gift',
                    fallback=x['item_id'] == 1, model=cfg.model, prompt_version=cfg.prompt_version,
                    input_hash=x['input_hash'], retried=x['item_id'] in (1, 2), problems=[])
               for x in inputs if x['item_id'] != 0]              # item 0 is not covered
    SemanticsStore(tmp_path/'store').append(records)
    got = stored_records(ds, cfg, tmp_path/'store')
    assert got[0] is None and [r['item_id'] for r in got[1:]] == list(range(1, ds.n_items))
    rep = semantics_quality(ds, cfg, tmp_path/'store', embed=hashed_words, ks=(1, 3), min_users=1)
    assert (rep['items'], rep['covered'], rep['measured']) == (ds.n_items, ds.n_items - 1, ds.n_items - 1)
    assert (rep['validity']['fallback'], rep['validity']['retried_valid']) == (1, 1)
    words = {(w['text'], w['domain']): w for w in rep['domain_words']}
    assert words[('agnostic', 0)]['any'] == 0.0 and words[('agnostic', 1)]['other'] == 1.0   # 'food' in kitchen texts
    assert rep['agnostic_domain_words'][1] == [('food', 1.0)]
    assert set(rep['neighbours']) == {'agnostic', 'specific', 'specific_fallback', 'title', 'random'}
    assert rep['partners']['items_with_partners'] > 0
    text = quality_markdown(rep)
    assert f"of {ds.n_items - 1:,} with stored semantics" in text and '| random vectors (reference) |' in text
    json.dumps(rep)                                               # the bench writes it as json
    small = semantics_quality(ds, cfg, tmp_path/'store', embed=hashed_words, max_items=4, min_users=1)
    assert small['measured'] == 4


def test_unknown_domains_are_named():
    class DS:
        name, domains = 'toy', ('books', 'toys')
    with pytest.raises(KeyError, match='books'):
        domain_vocabulary(DS())


def test_notebook_shows_the_bench_tables():
    "The quality page's MovieLens table (a committed output of its slow cell) and Food–Kitchen table are the bench's."
    nb = json.loads((NBS/'01a_semantics_quality.ipynb').read_text())
    shown = [''.join(o['data']['text/markdown']) for c in nb['cells'] if c['cell_type'] == 'code'
             for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})]
    for data in ('movielens', 'food-kitchen'):
        table = NBS/'results'/f'semantics_quality_{data}.md'
        if not table.exists():
            pytest.skip(f'bench/semantics_quality.py has not written {table.name}')
        assert table.read_text() in shown, (f'nbs/01a_semantics_quality.ipynb does not show {table}: re-execute it '
                                            '(see bench/semantics_quality.py)')
