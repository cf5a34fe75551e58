"""The `semacdr` commands' options come from the config dataclasses: `semacdr run` (RunConfig) next to CONFIG and
--set, through the real entry point."""
from __future__ import annotations
from pathlib import Path

import pytest

from semacdr.cli import main
from semacdr.experiments import RunConfig, load_run_config, run_args

CONFIG = str(Path(__file__).parent.parent/'configs'/'movielens.yaml')


def test_run_options_match_set_overrides():
    by_options = run_args([CONFIG, '--train.epochs', '2', '--models', 'pop', 'gru4rec', '--targets', '1',
                           '--no-train.progress', '--encoder.batch-size', '8'])
    by_sets = load_run_config(CONFIG, ['train.epochs=2', 'models=["pop", "gru4rec"]', 'targets=[1]',
                                       'train.progress=false', 'encoder.batch_size=8'])
    assert by_options == by_sets != load_run_config(CONFIG)


def test_run_order_file_options_set(tmp_path):
    (tmp_path/'run.yaml').write_text('name: t\ntrain:\n  epochs: 4\n  lr: 0.01\n')
    cfg = run_args([str(tmp_path/'run.yaml'), '--train.epochs', '2'])
    assert (cfg.name, cfg.train.epochs, cfg.train.lr) == ('t', 2, 0.01)
    cfg = run_args([str(tmp_path/'run.yaml'), '--train.epochs', '2', '--set', 'train.epochs=9'])
    assert cfg.train.epochs == 9
    assert run_args([]) == RunConfig()


def test_run_help_lists_nested_fields(capsys):
    with pytest.raises(SystemExit):
        main(['run', '--help'])
    shown = ' '.join(capsys.readouterr().out.split())
    for opt in ('--set KEY=VALUE', '--train.epochs EPOCHS', '--data.name NAME', '--model.hidden HIDDEN', '--jobs JOBS'):
        assert opt in shown, opt


def test_run_rejects_a_bad_option_value():
    with pytest.raises(SystemExit):
        run_args(['--train.epochs', 'many'])
