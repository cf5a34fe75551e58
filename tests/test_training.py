"""The trainer: exact resume after SIGKILL, two CPU processes (gloo) vs one, evaluation in fp32 under bf16 training,
and a finished run trained again when the text features it was trained on change."""
import json, os, signal, socket, subprocess, sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
WORKER = HERE/'trainer_worker.py'
sys.path.insert(0, str(HERE))


def _env():
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONHASHSEED='0')
    env.pop('SEMACDR_TEST_FAST', None)
    return env


def _worker(out, *args, check=True, n_proc=1):
    if n_proc == 1:
        cmd = [sys.executable, str(WORKER), '--out', str(out), *args]
    else:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(n_proc), '--master_addr',
               '127.0.0.1', '--master_port', str(port), str(WORKER), '--out', str(out), *args]
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f'{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}')
    return p


def _results(out):
    return json.loads((Path(out)/'results.json').read_text())


def _same_run(a, b):
    "Equal final metrics and equal per-epoch losses and validation metrics (timings excluded)."
    assert a['valid'] == b['valid'] and a['test'] == b['test']
    assert a['best_epoch'] == b['best_epoch'] and a['best_score'] == b['best_score']
    drop = ('sec', 'eval_sec', 'peak_mem_mb')
    ha = [{k: v for k, v in h.items() if k not in drop} for h in a['history']]
    hb = [{k: v for k, v in h.items() if k not in drop} for h in b['history']]
    assert ha == hb


def test_resume_after_sigkill_is_exact(tmp_path):
    "SIGKILL a real training process mid-epoch, start it again: the final metrics equal an uninterrupted run's."
    # (a) GRU4Rec, only epoch-end checkpoints: the killed epoch is redone from its start
    # (b) SemaCDR (dropout, sampled contrastive items), a checkpoint every 2 steps: resume skips the 2 batches already
    #     done (accelerate.skip_first_batches) and restores the random state of step 2
    for name, model, every, resumed in (('a', 'gru4rec', '0', 'e0001-s000000'), ('b', 'semacdr', '2', 'e0001-s000002')):
        ref, out = tmp_path/f'{name}-ref', tmp_path/name
        _worker(ref, '--epochs', '3', '--model', model)
        p = _worker(out, '--epochs', '3', '--model', model, '--ckpt-every', every, '--kill-at', '1:3', check=False)
        assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])
        assert not (out/'results.json').exists()
        assert len((out/'history.jsonl').read_text().splitlines()) == 1   # epoch 1 done, epoch 2 killed at step 3
        _worker(out, '--epochs', '3', '--model', model, '--ckpt-every', every)
        r = _results(out)
        assert r['resumed_from'].endswith(resumed)
        assert len((out/'history.jsonl').read_text().splitlines()) == 3   # no duplicated epochs
        _same_run(r, _results(ref))


def test_two_processes_match_one(tmp_path):
    "2 CPU processes (gloo, torchrun) train on the same rows and score every validation user once, as one process does."
    from trainer_worker import toy_dataset
    from semacdr.baselines import GRU4Rec
    from semacdr.evaluation import evaluate
    one, two = tmp_path/'one', tmp_path/'two'
    _worker(one, '--epochs', '2', '--eval-init')
    _worker(two, '--epochs', '2', '--eval-init', n_proc=2)
    r1, r2 = _results(one), _results(two)
    assert (r1['n_processes'], r2['n_processes']) == (1, 2)
    ds = toy_dataset()
    n_valid = len(ds.split(1).valid)
    # the same weights scored by 1 and by 2 processes: identical gathered metrics, every case once
    i1, i2 = (json.loads((d/'init_eval.json').read_text()) for d in (one, two))
    assert sorted(i2['cases']['index']) == list(range(n_valid)) and i1['n_cases'] == i2['n_cases'] == n_valid
    for k in ('HR@10', 'NDCG@10', 'MRR'):
        assert i1[k] == pytest.approx(i2[k], abs=1e-6)
    for h1, h2 in zip(r1['history'], r2['history']):
        assert h1['valid_users'] == h2['valid_users'] == n_valid           # checked inside the trainer as well
        assert h1['train_set_digest'] == h2['train_set_digest']            # the same rows in each epoch ...
        assert h1['train_unique'] == h2['train_unique'] == h1['train_examples']
        # ... plus accelerate's padding of the last batch
        assert h2['train_examples'] - h2['train_unique'] < 16
        assert abs(h1['loss'] - h2['loss']) < 0.05
    # the 2-process model evaluated in this single process gives the metrics the 2 processes gathered
    m = GRU4Rec.from_pretrained(two/'best')
    v = evaluate(m, ds, 1, 'valid', maxlen=20, batch_size=64)
    for k in ('HR@10', 'NDCG@10', 'MRR'):
        assert v[k] == pytest.approx(r2['valid']['full'][k], abs=1e-6)


def _quick_cfg(out, **kw):
    from semacdr.training import TrainConfig
    return TrainConfig(**{**dict(epochs=2, batch_size=16, eval_batch_size=8, lr=5e-3, patience=0, output_dir=str(out),
                                 progress=False, cpu=True, max_steps_per_epoch=2), **kw})


def test_evaluation_scores_in_fp32(tmp_path):
    "bf16 autocast trains, but every evaluation scores in fp32, and the reported metrics are the fp32 model's."
    from trainer_worker import make_model, toy_dataset
    from semacdr.evaluation import evaluate
    from semacdr.training import load_weights, train
    torch.set_num_threads(1)
    ds = toy_dataset()
    torch.manual_seed(0)
    model, autocast_in_score = make_model('gru4rec', ds, 1), []
    def recorded_score(input_ids, score=model.score):
        autocast_in_score.append(torch.is_autocast_enabled('cpu'))
        return score(input_ids)
    model.score = recorded_score
    res = train(model, ds, 1, _quick_cfg(tmp_path/'bf16', mixed_precision='bf16'))
    assert autocast_in_score and not any(autocast_in_score)   # validation every epoch and the final report: fp32
    fp32 = load_weights(make_model('gru4rec', ds, 1), res.best_checkpoint).eval()
    for split, reported in (('valid', res.valid['full']), ('test', res.test['full'])):
        mine, keys = evaluate(fp32, ds, 1, split, maxlen=20, batch_size=8), ('HR@10', 'NDCG@10', 'MRR')
        assert {k: mine[k] for k in keys} == {k: reported[k] for k in keys}


def test_changed_text_features_train_again(tmp_path):
    "A finished SemaCDR run is reused with the same frozen text features and trained again when one feature changes."
    from trainer_worker import make_model, toy_dataset
    from semacdr.training import train
    torch.set_num_threads(1)
    ds, cfg = toy_dataset(), _quick_cfg(tmp_path/'run')
    def epochs_trained(model):
        seen = []
        train(model, ds, 1, cfg, callback=lambda event, info: seen.append(info['epoch']) if event == 'epoch' else None)
        return seen
    assert epochs_trained(make_model('semacdr', ds, 1)) == [1, 2]
    assert epochs_trained(make_model('semacdr', ds, 1)) == []          # same features: the finished run is reused
    m = make_model('semacdr', ds, 1)
    feats = next(b for name, b in m.named_buffers() if name.startswith('feat_'))   # frozen text features
    with torch.no_grad():
        feats[5, 0] += 1e-3                           # one float of one item's embedding
    assert epochs_trained(m) == [1, 2]
    fp = json.loads((tmp_path/'run'/'train_config.json').read_text())['fingerprint']
    import semacdr
    assert fp['inputs']['version'] == semacdr.__version__ and len(fp['inputs']['buffers']) == 64


def test_fusion_scales_get_their_own_learning_rate(tmp_path):
    "`fusion_lr_scale` reaches the trainer's optimiser: the residual scales alone train at lr x factor."
    from trainer_worker import make_model, toy_dataset
    from semacdr.training import Trainer
    torch.set_num_threads(1)
    ds = toy_dataset()
    for preset, factor in (('semacdr', 1.0), ('fast-fusion', 10.0)):
        tr = Trainer(make_model(preset, ds, 1), ds, 1, _quick_cfg(tmp_path/preset, lr=1e-3))
        assert tr.prepare()
        scales = {id(tr.raw.item_gate.scale), id(tr.raw.seq_gate.scale)}
        lrs = {id(p): g['lr'] for g in tr.opt.param_groups for p in g['params']}
        base = {v for k, v in lrs.items() if k not in scales}
        assert len(base) == 1
        b = base.pop()
        assert all(lrs[k] == pytest.approx(b * factor) for k in scales)
