"""Where a SemaCDR training step spends its time, next to SASRec-target's step, on Amazon Food–Kitchen (kitchen target).

Both models train on the same batches (the Food–Kitchen config: batch 128, maxlen 50, hidden 64, dropout 0.5, 1,024
sampled negatives), in this process, alternating step by step so that load on the machine hits both alike. The text
views are random unit vectors of MiniLM's width (384): the compute of a step does not depend on their values, and this
keeps the profile free of the 5-minute encoding pass. Reported: median seconds per step of each model and their ratio,
and the forward pass of SemaCDR broken down by part (torch.profiler, `record_function` labels put around each part's
module by this script), with the backward pass as one line.

    python bench/profile_semacdr.py --steps 20 --threads 1 [--json nbs/results/semacdr_profile.json]
"""
from __future__ import annotations
import argparse, json, statistics, time


def _label(mod, name):
    "Wrap `mod.forward` in a profiler label (this script only; the model code is unchanged)."
    from torch.profiler import record_function
    f = mod.forward
    def g(*a, **k):
        with record_function(name):
            return f(*a, **k)
    mod.forward = g


def build(ds, target, preset, sampled, dropout=0.5):
    import torch
    from semacdr.model import SemaCDR, SemaCDRConfig
    from semacdr.experiments import build_model  # noqa: F401  (the same constructor arguments the zoo uses)
    g = torch.Generator().manual_seed(0)
    feats = {v: torch.nn.functional.normalize(torch.randn(ds.n_items, 384, generator=g), dim=1)
             for v in ('specific', 'agnostic')}
    cfg = SemaCDRConfig.preset(preset, target_domain=target, hidden=64, maxlen=50, dropout=dropout,
                               sampled_negatives=sampled)
    torch.manual_seed(0)
    return SemaCDR(cfg, item_features={v: feats[v] for v in cfg.views if v != 'id'}, item_domain=ds.item_domain,
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--target', type=int, default=1)
    ap.add_argument('--sampled', type=int, default=1024)
    ap.add_argument('--json', default='')
    a = ap.parse_args(argv)
    import torch
    from torch.profiler import profile, ProfilerActivity, record_function
    torch.set_num_threads(a.threads)
    from semacdr.data import load_named
    ds = load_named('food-kitchen')
    bs = batches(ds, a.target, a.steps + 2)
    models = {'sasrec-target': build(ds, a.target, 'sasrec', a.sampled),
              'semacdr': build(ds, a.target, 'semacdr', a.sampled)}
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
               sec_per_step={k: round(v, 4) for k, v in med.items()},
               ratio=round(med['semacdr'] / med['sasrec-target'], 2))
    print(json.dumps(res), flush=True)
    # profile of SemaCDR's forward by part
    m = models['semacdr']
    for name, enc in m.encoders.items():
        _label(enc, f'encoder:{name}')
    if m.cross is not None:
        _label(m.cross, 'cross-attention')
    for v, ad in m.adapters.items():
        _label(ad, f'adapter:{v}')
    if m.id_emb is not None:
        _label(m.id_emb, 'id-embedding')
    if m.item_gate is not None:
        _label(m.item_gate, 'item-gate')
    if m.seq_gate is not None:
        _label(m.seq_gate, 'sequence-gate')
    parts = {}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in bs[2:2 + min(8, a.steps)]:
            with record_function('forward'):
                out = m(input_ids=b['input_ids'], labels=b['labels'])
            with record_function('backward'):
                opts['semacdr'].zero_grad(set_to_none=True)
                out.loss.backward()
            opts['semacdr'].step()
    for e in prof.key_averages():
        if e.key in ('forward', 'backward') or ':' in e.key and e.key.split(':')[0] in ('encoder', 'adapter') \
                or e.key in ('cross-attention', 'id-embedding', 'item-gate', 'sequence-gate'):
            parts[e.key] = dict(calls=e.count, cpu_ms=round(e.cpu_time_total / 1e3, 1))
    total = parts['forward']['cpu_ms'] + parts['backward']['cpu_ms']
    for k, v in parts.items():
        v['share_of_step'] = round(v['cpu_ms'] / total, 3)
    res['profile'] = parts
    print(json.dumps(parts, indent=1))
    if a.json:
        from semacdr.core import atomic_write_text
        atomic_write_text(a.json, json.dumps(res, indent=2))


if __name__ == '__main__':
    main()
