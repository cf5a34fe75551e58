"""Where a SemaCDR training step spends its time, next to SASRec-target's step, on Amazon Food–Kitchen (kitchen target).

Both models train on the same batches (the Food–Kitchen config: batch 128, maxlen 50, hidden 64, dropout 0.5, 1,024
sampled negatives), in this process, alternating step by step so that load on the machine hits both alike. The text
views are random unit vectors of MiniLM's width (384): the compute of a step does not depend on their values, and this
keeps the profile free of the 5-minute encoding pass. The previous implementation (`tests/reference/
semacdr_model_v0.py`, marked `@v0`) trains on the same batches in the same loop. Reported: median seconds per step of
each model and the ratios, and each SemaCDR's forward pass broken down by part (torch.profiler, `record_function`
labels put around each part's module by this script), with the backward pass as one line. Writes the record to
nbs/results/semacdr_profile.json and `render(record)`, its table, to semacdr_profile.md.

    python bench/profile_semacdr.py --steps 20 --threads 1
"""
from __future__ import annotations
import argparse, json, statistics, sys, time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def _label(mod, name):
    "Wrap `mod.forward` in a profiler label (this script only; the model code is unchanged)."
    from torch.profiler import record_function
    f = mod.forward
    def g(*a, **k):
        with record_function(name):
            return f(*a, **k)
    mod.forward = g


def build(ds, target, preset, sampled, dropout=0.5, v0=False):
    "A SemaCDR preset with random MiniLM-width text views; `v0`: the previous implementation's class."
    import importlib.util, torch
    if v0:
        spec = importlib.util.spec_from_file_location('semacdr_model_v0',
                                                      ROOT/'tests'/'reference'/'semacdr_model_v0.py')
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod              # dataclasses look their module up
        spec.loader.exec_module(mod)
    else:
        import semacdr.model as mod
    g = torch.Generator().manual_seed(0)
    feats = {v: torch.nn.functional.normalize(torch.randn(ds.n_items, 384, generator=g), dim=1)
             for v in ('specific', 'agnostic')}
    cfg = mod.SemaCDRConfig.preset(preset, target_domain=target, hidden=64, maxlen=50, dropout=dropout,
                                   sampled_negatives=sampled)
    torch.manual_seed(0)
    return mod.SemaCDR(cfg, item_features={v: feats[v] for v in cfg.views if v != 'id'}, item_domain=ds.item_domain,
                       local_index=ds.local_index)


def batches(ds, target, n, bs=128, maxlen=50, seed=0):
    import numpy as np
    from semacdr.data import collate_train, trim_padding
    from semacdr.training import trainable_rows
    seqs = ds.split(target).train[:]['items']
    keep = trainable_rows(seqs, ds.item_domain, target, maxlen)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        rows = [seqs[keep[i]] for i in rng.choice(len(keep), bs, replace=False)]
        out.append(trim_padding(collate_train(rows, ds.item_domain, ds.local_index, target, maxlen)))
    return out


def step_time(model, opt, b):
    t = time.perf_counter()
    loss = model(input_ids=b['input_ids'], labels=b['labels']).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


PARTS = ('encoder:source', 'encoder:target', 'encoder:mixed', 'cross-attention', 'adapter:specific',
         'adapter:agnostic', 'id-embedding', 'item-gate', 'sequence-gate', 'forward', 'backward')


def profile_parts(m, opt, bs) -> dict:
    "CPU milliseconds of each labelled part of SemaCDR's forward, the forward and the backward, over the batches."
    from torch.profiler import profile, ProfilerActivity, record_function
    for name, enc in m.encoders.items():
        _label(enc, f'encoder:{name}')
    for name, mod in (('cross-attention', m.cross), ('id-embedding', m.id_emb), ('item-gate', m.item_gate),
                      ('sequence-gate', m.seq_gate), *((f'adapter:{v}', ad) for v, ad in m.adapters.items())):
        if mod is not None:
            _label(mod, name)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in bs:
            with record_function('forward'):
                out = m(input_ids=b['input_ids'], labels=b['labels'])
            with record_function('backward'):
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
            opt.step()
    parts = {e.key: round(e.cpu_time_total / 1e3 / len(bs), 1) for e in prof.key_averages() if e.key in PARTS}
    step = parts['forward'] + parts['backward']
    return {k: {'ms_per_step': v, 'share_of_step': round(v / step, 3)} for k, v in parts.items()}


def render(record: dict) -> str:
    "The Markdown table of a record `main` writes (nbs/results/semacdr_profile.json), from the record alone."
    import pandas as pd
    t, r = record['sec_per_step'], record
    tab = pd.DataFrame({k: {p: v['ms_per_step'] for p, v in r['profile'][k].items()} for k in r['profile']})
    tab = tab.reindex([p for p in PARTS if p in tab.index])
    return '\n'.join([
        f"**Where a SemaCDR training step goes** (`python bench/profile_semacdr.py`: Food–Kitchen, target "
        f"{r['target']}, batch 128, {r['sampled_negatives']} sampled negatives, {r['threads']} CPU thread, the same "
        f"{r['steps']} batches for every model in one loop; random MiniLM-width text views; `@v0`: the implementation "
        f"before the performance work; load average {r['load_avg']:.1f})", '',
        '| model | s/step | relative to SASRec-target of the same implementation |', '| --- | --- | --- |',
        *(f"| {k} | {v:.3f} | {v / t['sasrec-target' + ('@v0' if k.endswith('@v0') else '')]:.2f}× |"
          for k, v in t.items()), '',
        f"SemaCDR's step is {t['semacdr@v0'] / t['semacdr']:.2f}× faster than before; SASRec-target's "
        f"{t['sasrec-target@v0'] / t['sasrec-target']:.2f}×.", '',
        'Milliseconds per step by part (the forward parts are nested in *forward*; *backward* is the whole backward '
        'pass):',
        '', tab.to_markdown(), ''])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--target', type=int, default=1)
    ap.add_argument('--sampled', type=int, default=1024)
    a = ap.parse_args(argv)
    import os, torch
    torch.set_num_threads(a.threads)
    from semacdr.core import atomic_write_text
    from semacdr.data import load_named
    ds = load_named('food-kitchen')
    bs = batches(ds, a.target, a.steps + 2)
    models = {'sasrec-target': build(ds, a.target, 'sasrec', a.sampled),
              'semacdr': build(ds, a.target, 'semacdr', a.sampled),
              'sasrec-target@v0': build(ds, a.target, 'sasrec', a.sampled, v0=True),
              'semacdr@v0': build(ds, a.target, 'semacdr', a.sampled, v0=True)}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-3) for k, m in models.items()}
    times = {k: [] for k in models}
    for i, b in enumerate(bs):
        for k, m in models.items():
            m.train()
            dt = step_time(m, opts[k], b)
            if i >= 2:
                times[k].append(dt)                     # two warm-up steps
    med = {k: statistics.median(v) for k, v in times.items()}
    res = dict(data=ds.name, target=ds.domains[a.target], threads=a.threads, steps=a.steps, sampled_negatives=a.sampled,
               sec_per_step={k: round(v, 4) for k, v in med.items()})
    print(json.dumps(res), flush=True)
    res['profile'] = {k: profile_parts(models[k], opts[k], bs[2:2 + min(8, a.steps)])
                      for k in ('semacdr', 'semacdr@v0')}
    res['load_avg'] = os.getloadavg()[0]
    out = ROOT/'nbs'/'results'/'semacdr_profile'
    raw = json.dumps(res, indent=2)
    md = render(json.loads(raw))
    atomic_write_text(out.with_suffix('.json'), raw)
    atomic_write_text(out.with_suffix('.md'), md)
    print(md)


if __name__ == '__main__':
    main()
