"""Benchmark: `semacdr.evaluation.evaluate` against a per-user Python loop as peers write it, on one CPU thread.

Both paths score the Amazon Food–Kitchen test cases of both target domains with the same model, under full ranking and
the 999-negative protocol, and must agree on every metric; `evaluate`'s numpy and torch rank backends must agree
exactly. Three models: precomputed scores (a row lookup: scoring is one copy), the mean of the history's item
embeddings (one matmul), and SASRec (the `sasrec` preset of SemaCDR, untrained, seeded); and the evaluation overhead
alone, with the mean-embedding model's scores recorded once and replayed, so that scoring costs nothing.
The script writes the raw record to nbs/results/evaluation_speed.json and `render(record)`, its table, to
nbs/results/evaluation_speed.md (tests/test_results.py checks that the committed table is the committed record's).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_evaluation.py
    # then show the new table on the evaluation page (its committed output; tests/test_evaluation.py compares them):
    .venv/bin/jupyter nbconvert --to notebook --execute --inplace nbs/00a_evaluation.ipynb
    .venv/bin/nbdev_clean --fname nbs/00a_evaluation.ipynb
"""
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from semacdr.core import shared_data_dir
from semacdr.data import load_llmcdsr, pad_left
from semacdr.evaluation import Protocol, evaluate, split_candidates
from semacdr.model import SemaCDR, SemaCDRConfig

RESULTS = Path(__file__).resolve().parent.parent/'nbs'/'results'
KS = (1, 5, 10, 20)
REPEATS = 3   # every timing is the fastest of REPEATS runs


class TableScores(torch.nn.Module):
    "Precomputed scores: row `last item id mod 64` of a fixed random [64, N_target] table. Scoring is one row copy."
    def __init__(self, ds, target, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer('table', torch.randn(64, len(ds.domain_items(target)), generator=g))
    def score(self, input_ids):
        return self.table[input_ids[:, -1] % 64]


class MeanEmbedding(torch.nn.Module):
    "A fixed random-embedding scorer: user = mean of the history's item vectors; score = dot product."
    def __init__(self, ds, target, dim=64, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Embedding(ds.n_items + 1, dim, padding_idx=0)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(ds.n_items + 1, dim, generator=g))
            self.emb.weight[0] = 0
        self.register_buffer('target_ids', torch.as_tensor(ds.domain_items(target)) + 1)
    def score(self, input_ids):                           # [B, L] -> [B, N_target]
        h = self.emb(input_ids).sum(1) / (input_ids > 0).sum(1, keepdim=True).clamp(min=1)
        return h @ self.emb(self.target_ids).T


def sasrec(ds, target, seed=0):
    torch.manual_seed(seed)
    cfg = SemaCDRConfig.preset('sasrec', target_domain=target, maxlen=50)
    return SemaCDR(cfg, item_domain=ds.item_domain, local_index=ds.local_index)


MODELS = {'precomputed scores': TableScores, 'mean embedding': MeanEmbedding, 'SASRec': sasrec}


def loop_evaluate(model, ds, target, cand, ks=KS, maxlen=50):
    "One user at a time: one forward pass and one numpy rank per user, metrics accumulated in Python."
    cases = ds.split(target).test
    sums = {f'{m}@{k}': 0.0 for k in ks for m in ('HR', 'NDCG')} | {'MRR': 0.0}
    for r, (hist, tgt) in enumerate(zip(cases['history'], cases['target'])):
        with torch.no_grad():
            s = model.score(pad_left([hist], maxlen))[0].numpy()
        t = int(ds.local_index[tgt])
        if cand is not None:
            s, t = s[cand[r].numpy()], 0
        rank = int((s >= s[t]).sum())   # pessimistic ties, as in evaluate()
        for k in ks:
            if rank <= k:
                sums[f'HR@{k}'] += 1
                sums[f'NDCG@{k}'] += 1 / math.log2(rank + 1)
        sums['MRR'] += 1 / rank
    return {k: v / len(cases) for k, v in sums.items()}


class Replay(torch.nn.Module):
    "Plays back, in call order, the score batches `model` gave in one pass: scoring costs nothing, overhead remains."
    def __init__(self, model, run):   # run(recorder) makes the pass to record
        super().__init__()
        self.model, self.outputs, self.i = model, [], 0
        run(self)
        self.model = None
    def rewind(self):
        self.i = 0
        return self
    def score(self, input_ids):
        if self.model is not None:
            self.outputs.append(self.model.score(input_ids))
            return self.outputs[-1]
        out, self.i = self.outputs[self.i], self.i + 1
        if len(out) != len(input_ids):
            raise RuntimeError('replayed out of order')
        return out


def best_time(fn, repeats=REPEATS):
    "Seconds of the fastest of `repeats` runs (the least disturbed: the machine is shared), and the last result."
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def compare(name, models, ds, protocol, cands, timed='end to end'):
    "Per-user loop and evaluate (numpy / torch ranks) on both target domains; checks they agree; one table row."
    t = dict(loop_s=0.0, torch_ranks_s=0.0, numpy_ranks_s=0.0)
    for target in (0, 1):
        model, cand = models[target], cands[protocol, target]
        loop_model, eval_model = model if isinstance(model, tuple) else (model, model)
        rw = (lambda m: m.rewind()) if isinstance(loop_model, Replay) else (lambda m: m)
        dt, slow = best_time(lambda: loop_evaluate(rw(loop_model), ds, target, cand))
        t['loop_s'] += dt
        runs = {}
        for backend in ('numpy', 'torch'):
            dt, runs[backend] = best_time(lambda: evaluate(rw(eval_model), ds, target, 'test', protocol, ks=KS,
                                                           rank_backend=backend))
            t[f'{backend}_ranks_s'] += dt
        if runs['numpy'] != runs['torch']:
            raise AssertionError(f'{name} {protocol} t{target}: rank backends differ')
        for k, v in slow.items():   # 1e-6: a model's batched and one-row matmuls may round a far-down rank apart
            if abs(runs['numpy'][k] - v) > 1e-6:
                raise AssertionError((name, protocol, target, k, runs['numpy'][k], v))
    row = dict(model=name, protocol=protocol, timed=timed, cases=sum(len(ds.split(x).test) for x in (0, 1)), **t)
    print(row, flush=True)
    return row


def main():
    torch.set_num_threads(1)
    path = shared_data_dir('food-kitchen')
    if path is None:
        raise SystemExit('../shared/data/food-kitchen not found')
    ds = load_llmcdsr(path)
    cands = {(p, t): split_candidates(ds, t, 'test', Protocol.parse(p), seed=0) for p in ('full', 'sampled-999')
             for t in (0, 1)}   # drawn (or read) before any timing
    rows = []
    for name, make in MODELS.items():
        models = {t: make(ds, t).eval() for t in (0, 1)}
        rows += [compare(name, models, ds, protocol, cands) for protocol in ('full', 'sampled-999')]
    # evaluation overhead alone: mean-embedding scores replayed (to the loop per user, to evaluate per batch)
    replays = {}
    for target in (0, 1):
        m = MeanEmbedding(ds, target).eval()
        replays[target] = (Replay(m, lambda r: loop_evaluate(r, ds, target, None)),
                           Replay(m, lambda r: evaluate(r, ds, target, 'test', 'full', ks=KS)))
    rows += [compare('replayed scores', replays, ds, protocol, cands, 'evaluation overhead')
             for protocol in ('full', 'sampled-999')]
    write(rows)


def write(rows):
    "The record (rows and the run's settings) to evaluation_speed.json, then `render(record)` to evaluation_speed.md."
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {'rows': rows, 'torch': torch.__version__, 'numpy': np.__version__, 'threads': torch.get_num_threads(),
              'omp_num_threads': os.environ.get('OMP_NUM_THREADS'), 'repeats': REPEATS, 'timing': 'best of repeats',
              'load_average_at_end': os.getloadavg(), 'cpu_count': os.cpu_count(),
              'machine': platform.machine(), 'processor': platform.processor(), 'date': time.strftime('%Y-%m-%d')}
    raw = json.dumps(record, indent=1) + '\n'
    (RESULTS/'evaluation_speed.json').write_text(raw)
    text = render(json.loads(raw))
    (RESULTS/'evaluation_speed.md').write_text(text)
    print(text)


def render(record: dict) -> str:
    "The Markdown table of a record `write` makes (nbs/results/evaluation_speed.json), from the record alone."
    load = ', '.join(f'{x:.1f}' for x in record['load_average_at_end'])
    head = (f'**Evaluation speed** (`bench/bench_evaluation.py`, Amazon Food–Kitchen test cases of both target '
            f"domains; one CPU thread: torch threads {record['threads']}, "
            f"OMP_NUM_THREADS={record['omp_num_threads']}; torch {record['torch']}, numpy {record['numpy']}; "
            f"every time is the fastest of {record['repeats']} runs, on a shared {record['cpu_count']}-core machine "
            f'with load average {load} when the run ended). Per-user loop: one forward pass, one '
            'numpy rank and Python metric sums per user. `evaluate`: batches of 256, ranks counted by numpy (the CPU '
            'default) or torch. Every path gives the same metrics (checked in the run; the two rank backends '
            'exactly). *End to end* includes the model\'s scoring; *evaluation overhead* replays the scores the '
            'mean-embedding model gave (per user to the loop, per batch to `evaluate`), so scoring costs nothing and '
            'only padding, candidate gathering, ranking and metrics remain.\n')
    lines = [head, '| model | protocol | timed | cases | per-user loop (s) | evaluate, torch ranks (s) | '
             'evaluate (s) | speed-up vs loop | numpy vs torch ranks |', '|---|---|---|---|---|---|---|---|---|']
    for r in record['rows']:
        lines.append(f"| {r['model']} | {r['protocol']} | {r['timed']} | {r['cases']} | {r['loop_s']:.3f} | "
                     f"{r['torch_ranks_s']:.3f} | {r['numpy_ranks_s']:.3f} | "
                     f"{r['loop_s'] / r['numpy_ranks_s']:.1f}× | {r['torch_ranks_s'] / r['numpy_ranks_s']:.1f}× |")
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    main()
