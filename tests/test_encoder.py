"Frozen text encoder: parity with sentence-transformers, cache + resume, item views, CLI."
import numpy as np
import pytest
import torch

torch.set_num_threads(1)
from semacdr import encoder as E
from semacdr.encoder import EncoderConfig, encode_texts, get_encoder, item_view_texts, encode_item_views, text_key

TEXTS = ['Organic green tea, 100 bags', 'Cast iron skillet 12 inch', 'dark chocolate with sea salt',
         'Organic green tea, 100 bags', 'a', 'Stainless steel knife block with seven knives and a sharpener']


@pytest.fixture(scope='module')
def enc():
    return get_encoder(EncoderConfig(progress=False))


def test_matches_sentence_transformers(enc):
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(enc.path, device='cpu')
    st.max_seq_length = enc.max_length
    ref = st.encode(TEXTS, convert_to_tensor=True, batch_size=4)
    ours = enc.embed(TEXTS, batch_size=4, progress=False)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == torch.float32
    assert float((ref - ours).abs().max()) <= 1e-5


def test_cache_skips_and_resumes_after_a_crash(enc, tmp_path, monkeypatch):
    cfg = EncoderConfig(chunk_size=2, progress=False)
    full = enc.embed(TEXTS, progress=False)
    calls = []
    real = E.TextEncoder.embed
    def crashing(self, texts, **kw):
        calls.append(list(texts))
        if len(calls) == 2:
            raise RuntimeError('simulated crash')
        return real(self, texts, **kw)
    monkeypatch.setattr(E.TextEncoder, 'embed', crashing)
    with pytest.raises(RuntimeError):
        encode_texts(TEXTS, cfg, cache_root=tmp_path)
    assert len(list((tmp_path/enc.key).glob('*.safetensors'))) == 1      # the first chunk was persisted
    done = set(calls[0])
    calls.clear()
    monkeypatch.setattr(E.TextEncoder, 'embed', real)
    monkeypatch.setattr(E.TextEncoder, 'embed',
                        lambda self, texts, **kw: (calls.append(list(texts)), real(self, texts, **kw))[1])
    out = encode_texts(TEXTS, cfg, cache_root=tmp_path)                   # resume: only the rest is encoded
    redone = {t for c in calls for t in c}
    assert not (redone & done) and redone | done == set(TEXTS)
    assert torch.allclose(out, full, atol=1e-5)
    calls.clear()
    again = encode_texts(TEXTS, cfg, cache_root=tmp_path)                 # a re-run encodes nothing
    assert calls == [] and torch.equal(again, out)
    assert not list((tmp_path/enc.key).glob('*.tmp'))                     # no half-written files
    monkeypatch.setattr(E, '_ENCODERS', {})
    assert torch.equal(encode_texts(TEXTS, cfg, cache_root=tmp_path), out)
    assert get_encoder(cfg)._model is None                                 # a fully cached run never loads the weights


def test_local_folder_and_cache_key(enc):
    p, mid = E.resolve_model(str(enc.path))
    assert mid.startswith('local:') and p == str(enc.path)
    other = E.TextEncoder(EncoderConfig(model=str(enc.path), normalize=False, progress=False))
    assert other.key != enc.key                                            # settings that change vectors change the key
    v = other.embed(TEXTS[:2], progress=False)
    assert not torch.allclose(v.norm(dim=1), torch.ones(2))


class ToyDS:
    name = 'toy'
    n_items = 3
    def item_text(self, i):
        return ['Green tea; category: Tea', 'Teapot; category: Kitchen', 'Rice'][i]


def test_item_view_texts_from_a_datasets_store():
    from datasets import Dataset
    sem = Dataset.from_dict({'item_id': [1, 0], 'specific': ['a brewing vessel', 'a loose-leaf tea'],
                             'agnostic': ['slow mornings', ''], 'fallback': [False, True]})
    vt = item_view_texts(ToyDS(), sem)
    # item 0 is a marked fallback: its specific text would only repeat the item text, so the view is the item text alone
    assert vt['specific'] == ['Green tea; category: Tea', 'Teapot; category: Kitchen. a brewing vessel', 'Rice']
    assert vt['agnostic'] == ['Green tea; category: Tea', 'slow mornings', 'Rice']
    assert item_view_texts(ToyDS(), None)['agnostic'] == item_view_texts(ToyDS(), None)['specific']


def test_encode_item_views_and_cli(tmp_path, monkeypatch):
    monkeypatch.setenv('SEMACDR_CACHE', str(tmp_path/'cache'))
    feats = encode_item_views(ToyDS(), None, EncoderConfig(progress=False))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {'specific': (3, 384), 'agnostic': (3, 384),
                                                           'has_semantics': (3,)}
    import semacdr.data
    monkeypatch.setattr(semacdr.data, 'load_named', lambda name, **kw: ToyDS())
    out = tmp_path/'f.safetensors'
    assert E.encode_cli(['toy', '--semantics', 'none', '--out', str(out)]) == 0
    loaded = E.load_item_features(out)
    assert torch.allclose(loaded['specific'], feats['specific'])
    from semacdr.cli import main
    assert main(['encode', 'toy', '--semantics', 'none', '--views', 'agnostic']) == 0


def test_load_semantics_for(monkeypatch):
    "No store -> None; a partial store -> its rows with marked fallbacks; 'none' -> None."
    import semacdr.semantics as S
    from datasets import Dataset
    full = Dataset.from_dict({'item_id': [0, 1, 2], 'specific': ['s0', 's1', 's2'], 'agnostic': ['a0', 'a1', 'a2'],
                              'fallback': [False, True, False]})
    def missing(ds, allow_missing=False):
        raise FileNotFoundError('no store')
    def partial(ds, allow_missing=False):
        if not allow_missing:
            raise KeyError('1 of 3 items have no semantics')
        return full
    monkeypatch.setattr(S, 'load_semantics', missing)
    assert E.load_semantics_for(ToyDS()) is None and E.load_semantics_for(ToyDS(), 'none') is None
    monkeypatch.setattr(S, 'load_semantics', partial)
    sem = E.load_semantics_for(ToyDS())
    assert item_view_texts(ToyDS(), sem)['agnostic'] == ['a0', 'a1', 'a2']
