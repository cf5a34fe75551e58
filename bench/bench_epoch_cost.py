"""SemaCDR against SASRec on Amazon Food–Kitchen: seconds per training epoch and peak memory, each model in its own
fresh process (so that one model's memory never shows up in the other's), with the settings of
configs/compare_food_kitchen.yaml (batch 128, maxlen 50, hidden 64, dropout 0.5, 1,024 sampled negatives).

Next to today's models, the same presets of the previous implementation (`tests/reference/semacdr_model_v0.py`, the
model module before the performance work, marked `@v0`) run in the same way, so the speed-up is measured side by side.
The text views are random unit vectors of MiniLM's width (384): a step's compute and memory do not depend on their
values, and the 36k-item encoding pass stays out of the measurement.

    .venv/bin/python bench/bench_epoch_cost.py [--steps 60] [--threads 2]

Each process trains `--steps` steps of one epoch with `semacdr.training.train` and reports the epoch time scaled to a
whole epoch, plus the peak resident memory (VmHWM) of the process, which includes the data set and the frozen text
features. The record (every row, and each model's cost relative to SASRec-target) goes to
nbs/results/food_kitchen_cost.json, and `render(record)`, the table, to food_kitchen_cost.md (`make readme` refreshes
the index and README); tests/test_results.py checks that the committed table is the committed record's.
"""
import argparse, json, math, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ('sasrec-target', 'sasrec-mixed', 'semacdr', 'sasrec-target@v0', 'semacdr@v0')
V0 = {'sasrec-target@v0': 'sasrec', 'semacdr@v0': 'semacdr'}
MEASURES = {'sec_per_epoch': 's/epoch', 'peak_mem_mb': 'peak MB'}   # what the table shows, and its labels


def _features(ds):
    import torch
    g = torch.Generator().manual_seed(0)
    return {v: torch.nn.functional.normalize(torch.randn(ds.n_items, 384, generator=g), dim=1)
            for v in ('specific', 'agnostic')} | {'has_semantics': torch.ones(ds.n_items)}


def _v0(name, ds, target, feats, base):
    "The previous implementation's preset, with the run's shared hyper-parameters."
    import importlib.util
    spec = importlib.util.spec_from_file_location('semacdr_model_v0', ROOT/'tests'/'reference'/'semacdr_model_v0.py')
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old                  # dataclasses look their module up
    spec.loader.exec_module(old)
    keys = ('hidden', 'maxlen', 'heads', 'layers', 'dropout', 'sampled_negatives')
    cfg = old.SemaCDRConfig.preset(V0[name], **{k: getattr(base, k) for k in keys}, target_domain=target)
    feats = {v: feats[v] for v in cfg.views if v != 'id'} or None
    return old.SemaCDR(cfg, item_features=feats, item_domain=ds.item_domain, local_index=ds.local_index)


def one(model: str, target: int, steps: int, threads: int) -> dict:
    import dataclasses, torch
    torch.set_num_threads(threads)
    from semacdr.experiments import build_model, load_run_config
    from semacdr.training import train, trainable_rows
    cfg = load_run_config(ROOT/'configs'/'compare_food_kitchen.yaml', [f'models=["{model.split("@")[0]}"]'])
    ds = cfg.data.load()
    feats = _features(ds)
    net = _v0(model, ds, target, feats, cfg.model) if model in V0 else build_model(model, ds, target, feats, cfg.model)
    with tempfile.TemporaryDirectory() as d:
        tcfg = dataclasses.replace(cfg.train, epochs=1, max_steps_per_epoch=steps, output_dir=d, progress=False,
                                   test_protocols=('full',))
        res = train(net, ds, target, tcfg)
    n_rows = len(trainable_rows(ds.split(target).train[:]['items'], ds.item_domain, target, cfg.model.maxlen))
    full_steps = math.ceil(n_rows / cfg.train.batch_size)
    h = res.history[0]
    return {'model': model, 'target': ds.domains[target], 'sec_per_step': h['sec'] / steps,
            'sec_per_epoch': h['sec'] / steps * full_steps, 'peak_mem_mb': h['peak_mem_mb'],
            'params': sum(p.numel() for p in net.parameters() if p.requires_grad)}


def render(record: dict) -> str:
    "The Markdown table of a record `main` writes (nbs/results/food_kitchen_cost.json), from the record alone."
    import pandas as pd
    models, rel = record['models'], record['relative']
    tab = pd.DataFrame(record['rows']).pivot(index='model', columns='target', values=list(MEASURES)).reindex(models)
    cols = list(tab.columns)
    tab.columns = [f'{MEASURES[v]} ({t})' for v, t in cols]
    return '\n'.join([
        '**SemaCDR vs SASRec, cost of one training epoch** (`python bench/bench_epoch_cost.py`: each model in a '
        f"fresh process, {record['threads']} CPU threads, {record['steps']} steps timed and scaled to the whole epoch; "
        'peak resident memory includes the data and the frozen text features)', '', tab.round(1).to_markdown(), '',
        'Relative to SASRec-target: '
        + ', '.join(f'{m} {rel[m][v][t]:.1f}× {MEASURES[v]} ({t})' for m in models[1:] for v, t in cols) + '.', ''])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=60)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--one', nargs=2, metavar=('MODEL', 'TARGET'))
    a = ap.parse_args()
    if a.one:
        print('RESULT ' + json.dumps(one(a.one[0], int(a.one[1]), a.steps, a.threads)))
        return
    rows = []
    for target in (1, 0):
        for model in MODELS:
            out = subprocess.run([sys.executable, __file__, '--one', model, str(target), '--steps', str(a.steps),
                                  '--threads', str(a.threads)],
                                 capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(next(l for l in out.splitlines() if l.startswith('RESULT '))[7:]))
            print(rows[-1], flush=True)
    base = {(r['target'], v): r[v] for r in rows if r['model'] == MODELS[0] for v in MEASURES}
    relative = {m: {v: {} for v in MEASURES} for m in MODELS[1:]}
    for r in rows:
        for v in MEASURES:
            if r['model'] != MODELS[0]:
                relative[r['model']][v][r['target']] = r[v] / base[r['target'], v]
    record = {'threads': a.threads, 'steps': a.steps, 'models': list(MODELS), 'rows': rows, 'relative_to': MODELS[0],
              'relative': relative}
    out = ROOT/'nbs'/'results'/'food_kitchen_cost'
    text = json.dumps(record, indent=1) + '\n'
    out.with_suffix('.json').write_text(text, encoding='utf-8')
    out.with_suffix('.md').write_text(render(json.loads(text)), encoding='utf-8')
    print(f'wrote {out}.json and .md')


if __name__ == '__main__':
    main()
