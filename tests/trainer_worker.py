"""A toy cross-domain data set and a training worker for tests/test_training.py.

Run as a script (also under `torchrun` / `accelerate launch`) it trains a small GRU4Rec on the toy data with
`semacdr.training.train`; `--kill-at EPOCH:STEP` makes the process SIGKILL itself right after that training step.
"""
from __future__ import annotations
import argparse, json, os, signal, sys
from pathlib import Path

import numpy as np
import torch


def toy_dataset(n_users: int = 150, n_a: int = 30, n_b: int = 40, n_clusters: int = 4, seed: int = 0):
    "Users with a taste cluster shared by both domains; 80% of their items come from it (learnable cross-domain link)."
    from datasets import Dataset
    from semacdr.data import CrossDomainDataset, leave_one_out
    rng = np.random.default_rng(seed)
    item_domain = np.array([0] * n_a + [1] * n_b)
    n = len(item_domain)
    items = Dataset.from_dict({'item_id': list(range(n)), 'domain': item_domain.tolist(),
                               'title': [f'item {i}' for i in range(n)],
        'category': [f'c{i % n_clusters}' for i in range(n)], 'brand': [''] * n, 'description': [''] * n})
    pools = {(d, c): [i for i in range(n) if item_domain[i] == d and i % n_clusters == c] for d in (0, 1)
             for c in range(n_clusters)}
    users, seqs = [], []
    for u in range(n_users):
        c, s = int(rng.integers(n_clusters)), []
        for _ in range(int(rng.integers(8, 21))):
            d = int(rng.integers(2))
            s.append(int(rng.choice(pools[d, c])) if rng.random() < 0.8
                     else int(rng.choice(np.flatnonzero(item_domain == d))))
        users.append(f'u{u}')
        seqs.append(s)
    sequences = Dataset.from_dict({'user': users, 'items': seqs})
    splits = {d: leave_one_out(sequences, item_domain, d) for d in (0, 1)}
    return CrossDomainDataset('toy', ('A', 'B'), items, sequences, splits)


def make_model(name: str, ds, target: int, maxlen: int = 20):
    "A small model for the toy data: GRU4Rec, or SemaCDR with a preset (random unit-norm text features)."
    if name == 'gru4rec':
        from semacdr.baselines import GRU4Rec, GRU4RecConfig
        return GRU4Rec(GRU4RecConfig(target_domain=target, hidden=16, maxlen=maxlen), item_domain=ds.item_domain,
                       local_index=ds.local_index)
    from semacdr.model import SemaCDR, SemaCDRConfig
    g = torch.Generator().manual_seed(0)
    feats = {v: torch.nn.functional.normalize(torch.randn(ds.n_items, 16, generator=g), dim=1)
             for v in ('specific', 'agnostic')}
    cfg = SemaCDRConfig.preset(name, target_domain=target, hidden=16, heads=2, layers=1, maxlen=maxlen)
    return SemaCDR(cfg, item_features=feats, item_domain=ds.item_domain, local_index=ds.local_index)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--target', type=int, default=1)
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--ckpt-every', type=int, default=0)
    ap.add_argument('--kill-at', default='')
    ap.add_argument('--eval-init', action='store_true', help='write the validation metrics of the initial weights')
    ap.add_argument('--model', default='gru4rec', help="gru4rec, or a SemaCDR preset ('semacdr', 'sasrec', ...)")
    ap.add_argument('--find-unused', action='store_true')
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from semacdr.evaluation import evaluate
    from semacdr.training import TrainConfig, make_accelerator, train
    ds = toy_dataset()
    torch.manual_seed(a.seed)
    model = make_model(a.model, ds, a.target)
    cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch, eval_batch_size=8, lr=5e-3, warmup=0.1, cosine=True,
                      patience=0, seed=a.seed, output_dir=a.out, progress=False, checkpoint_every_steps=a.ckpt_every,
                      cpu=True, find_unused_parameters=a.find_unused)
    acc = make_accelerator(cfg)
    if a.eval_init:
        r = evaluate(model.to(acc.device), ds, a.target, 'valid', maxlen=20, batch_size=8,
                     accelerator=acc if acc.num_processes > 1 else None, return_cases=True)
        if acc.is_main_process:
            Path(a.out).mkdir(parents=True, exist_ok=True)
            (Path(a.out)/'init_eval.json').write_text(json.dumps(r))
    kill = tuple(int(x) for x in a.kill_at.split(':')) if a.kill_at else None
    def cb(event, info):
        if kill and event == 'step' and (info['epoch'], info['step']) == kill:
            os.kill(os.getpid(), signal.SIGKILL)
    train(model, ds, a.target, cfg, callback=cb, accelerator=acc)


if __name__ == '__main__':
    sys.exit(main())
