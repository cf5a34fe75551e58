"""Generate the released semantics stores (every MovieLens and every Food–Kitchen item), resumably, into `releases/`.

The stores grow chunk by chunk (one file per generated batch, written atomically and never rewritten), so a kill loses
at most one batch and each commit of the folder adds only new files. Food–Kitchen is generated in tiers of training
popularity (`max_items`), so a partial store covers the items that matter most first.

    OMP_NUM_THREADS=1 python tools/release_semantics.py --threads 1 [--quantize int8] [--data movielens food-kitchen]

`python tools/release_semantics.py --manifest-only` rewrites each store's MANIFEST.json (per-file sha256, counts,
generation settings and statistics) from what is on disk; run it before committing the folder.
"""
from __future__ import annotations
import argparse, json, sys, time

TIERS = {'movielens': [0], 'food-kitchen': [2000, 4000, 8000, 12000, 16000, 20000, 24000, 28000, 32000, 0]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', nargs='+', default=list(TIERS))
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--quantize', default='none', choices=['none', 'int8'])
    ap.add_argument('--manifest-only', action='store_true')
    a = ap.parse_args(argv)
    from semacdr.core import atomic_write_text
    from semacdr.data import load_named
    from semacdr.semantics import SemanticsConfig, generate_semantics, release_path, write_manifest
    backend = None
    for name in a.data:
        ds = load_named(name)
        cfg = SemanticsConfig(num_threads=a.threads, batch_size=a.batch_size, quantize=a.quantize)
        path = release_path(ds.name, cfg)
        if a.manifest_only and not path.exists():
            continue
        if not a.manifest_only:
            for tier in TIERS[name]:
                c = SemanticsConfig(**{**cfg.__dict__, 'max_items': tier})
                if backend is None:
                    from semacdr.semantics import make_backend
                    backend = make_backend(c)
                store = generate_semantics(ds, c, store_dir=path, backend=backend, progress=True)
                st = dict(store.last_run, tier=tier, quantize=a.quantize, threads=a.threads, finished=time.time())
                with open(path/'generation_log.jsonl', 'a', encoding='utf-8') as f:
                    f.write(json.dumps(st) + '\n')
        m = write_manifest(path, ds, cfg)
        print(json.dumps({k: m[k] for k in ('data', 'items', 'covered', 'fallbacks', 'files')}), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
