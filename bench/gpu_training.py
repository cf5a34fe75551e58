#!/usr/bin/env python
"""Time training epochs and evaluation passes on Amazon Food–Kitchen: bf16 autocast against fp32, SemaCDR next to
SASRec.

Meant for a machine with one CUDA GPU; run from the repository root after `make setup` (or `pip install -e .`):

    python bench/gpu_training.py                              # SemaCDR + SASRec, both targets, fp32 and bf16, 2 epochs
    python bench/gpu_training.py --models semacdr --targets 1 # the headline figure only (food -> kitchen)
    python bench/gpu_training.py --device cpu --max-steps 5 --targets 1 --models semacdr   # a smoke run without a GPU

It needs `../shared/data/food-kitchen` (or `$SEMACDR_SHARED_DATA`). Item text features are random unit vectors of the
MiniLM width (384) unless `--features minilm` (then they are encoded, or read from the cache): the timings do not depend
on the feature values, and random features keep the run independent of the encoder and the LLM semantics.

Every (model, target, precision) trains with `semacdr.training.train` exactly as the pipeline does (AdamW, batch 128,
validation after each epoch, checkpoints), then the best weights are scored on the test split under full ranking and
the 999-negative protocol. Reported per run: seconds of each training epoch (the first includes CUDA/cuBLAS warm-up),
the validation pass, the test evaluation passes (best of 3), peak GPU memory, and the test metrics (a sanity check that
bf16 does not hurt quality). Results go to `--out` (default bench/results/) as gpu_training.json and gpu_training.md.
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, sys, tempfile, time
from pathlib import Path

import torch


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_model(name: str, ds, target: int, features: dict, hidden: int, maxlen: int):
    from semacdr.model import SemaCDR, SemaCDRConfig
    cfg = SemaCDRConfig.preset(name, target_domain=target, hidden=hidden, maxlen=maxlen)
    return SemaCDR(cfg, item_features=features, item_domain=ds.item_domain, local_index=ds.local_index)


def item_features(ds, kind: str, dim: int = 384) -> dict:
    if kind == 'minilm':
        from semacdr.encoder import encode_item_views
        return encode_item_views(ds)
    g = torch.Generator().manual_seed(0)
    return {v: torch.nn.functional.normalize(torch.randn(ds.n_items, dim, generator=g), dim=1)
            for v in ('specific', 'agnostic')}


def time_eval(model, ds, target, protocol, device, precision, batch_size, repeats=3) -> float:
    from semacdr.evaluation import evaluate
    best = float('inf')
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == 'bf16'):
            evaluate(model, ds, target, 'test', protocol, maxlen=model.config.maxlen, batch_size=batch_size)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--models', nargs='+', default=['semacdr', 'sasrec'], help='SemaCDR presets to time')
    ap.add_argument('--targets', nargs='+', type=int, default=[1, 0], help='target domains (1 = kitchen, 0 = food)')
    ap.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16'])
    ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--eval-batch-size', type=int, default=512)
    ap.add_argument('--hidden', type=int, default=64)
    ap.add_argument('--maxlen', type=int, default=50)
    ap.add_argument('--num-workers', type=int, default=4)
    ap.add_argument('--max-steps', type=int, default=0, help='cap on steps per epoch (smoke runs)')
    ap.add_argument('--features', choices=['random', 'minilm'], default='random')
    ap.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    ap.add_argument('--data', default=None, help='Food–Kitchen folder (default: the shared data folder)')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'))
    a = ap.parse_args(argv)
    if a.device == 'cuda' and not torch.cuda.is_available():
        print('no CUDA device: run with --device cpu for a smoke run', file=sys.stderr)
        return 2
    device = torch.device(a.device)
    from semacdr.data import load_llmcdsr
    from semacdr.training import TrainConfig, train
    t0 = time.perf_counter()
    ds = load_llmcdsr(a.data)
    load_s = time.perf_counter() - t0
    feats = item_features(ds, a.features)
    env = {'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu',
           'torch': torch.__version__, 'cuda': torch.version.cuda, 'data': ds.name, 'data_load_s': round(load_s, 1),
           'features': a.features, **{k: v for k, v in vars(a).items() if k not in ('out', 'data')}}
    print(json.dumps(env))
    rows, work = [], Path(tempfile.mkdtemp(prefix='semacdr-gpu-bench-'))
    for target in a.targets:
        for name in a.models:
            for prec in a.precisions:
                torch.manual_seed(0)
                model = make_model(name, ds, target, feats, a.hidden, a.maxlen)
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, eval_batch_size=a.eval_batch_size, lr=1e-3,
                                  patience=0, mixed_precision='bf16' if prec == 'bf16' else 'no',
                                  cpu=device.type == 'cpu', num_workers=a.num_workers, max_steps_per_epoch=a.max_steps,
                                  overwrite=True, progress=False, output_dir=str(work/f'{name}-t{target}-{prec}'),
                                  test_protocols=('full', 'sampled-999'))
                t = time.perf_counter()
                res = train(model, ds, target, cfg)
                wall = time.perf_counter() - t
                model = model.to(device).eval()
                ev = {p: time_eval(model, ds, target, p, device, prec, a.eval_batch_size)
                      for p in ('full', 'sampled-999')}
                h = res.history
                row = dict(model=name, target=ds.domains[target], precision=prec, train_rows=h[0]['train_examples'],
                           steps_per_epoch=h[0]['step'], epoch_s=[x['sec'] for x in h],
                           valid_pass_s=[x.get('eval_sec') for x in h], test_full_s=round(ev['full'], 3),
                           test_sampled999_s=round(ev['sampled-999'], 3), peak_mem_mb=max(x['peak_mem_mb'] for x in h),
                           run_wall_s=round(wall, 1),
                           params=sum(p.numel() for p in model.parameters() if p.requires_grad),
                           test_full_ndcg10=round(res.test['full']['NDCG@10'], 4),
                           test_sampled999_ndcg10=round(res.test['sampled-999']['NDCG@10'], 4))
                rows.append(row)
                print(json.dumps(row), flush=True)
                del model
                shutil.rmtree(work/f'{name}-t{target}-{prec}', ignore_errors=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out/'gpu_training.json').write_text(json.dumps({'env': env, 'runs': rows}, indent=2))
    lines = [f"Device: {env['device']} · torch {env['torch']} · {ds.name} · batch {a.batch_size} · hidden {a.hidden} · "
             f"maxlen {a.maxlen} · features {a.features}", '',
             '| model | target | precision | s/epoch (1st, later) | valid pass s | test full s | test 999-neg s | peak '
             'MB | test NDCG@10 full / 999 |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in rows:
        ep = r['epoch_s']
        later = f"{sum(ep[1:]) / len(ep[1:]):.1f}" if len(ep) > 1 else '–'
        lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | {ep[0]:.1f}, {later} | "
                     f"{r['valid_pass_s'][-1]:.2f} | {r['test_full_s']:.2f} | {r['test_sampled999_s']:.2f} | "
                     f"{r['peak_mem_mb']:.0f} | {r['test_full_ndcg10']:.4f} / {r['test_sampled999_ndcg10']:.4f} |")
    for target in a.targets:   # bf16 speed-up per model
        for name in a.models:
            f = [r for r in rows if r['model'] == name and r['target'] == ds.domains[target]]
            by = {r['precision']: r['epoch_s'][-1] for r in f}
            if 'fp32' in by and 'bf16' in by:
                lines.append(f"\n{name} → {ds.domains[target]}: bf16 epoch {by['bf16']:.1f} s vs fp32 "
                             f"{by['fp32']:.1f} s (×{by['fp32'] / max(by['bf16'], 1e-9):.2f})")
    (out/'gpu_training.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
