"""The command line as a user meets it: main.py in a subprocess."""

import json
import os
import subprocess
import sys

from nerf_jax import precision
from tests.conftest import REPO


def run_main(*args, cwd=REPO):
  result = subprocess.run([sys.executable, os.path.join(REPO, 'main.py'), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
  return result.returncode, result.stdout + result.stderr


def test_unknown_config_key_is_named():
  code, out = run_main('--config', 'configs/img_fit.py', '--config.train.lrr=1e-3')
  assert code != 0
  assert "'lrr'" in out and 'Did you mean "lr"' in out and 'Traceback' not in out


def test_wrong_type_is_named():
  code, out = run_main('--config', 'configs/img_fit.py', '--config.train.steps=many')
  assert code != 0 and '--config.train.steps=many' in out and 'Traceback' not in out


def test_missing_data_says_how_to_get_it(tmp_path):
  code, out = run_main('--config', 'configs/img_fit.py', f'--config.data.root={tmp_path}',
                       f'--workdir={tmp_path / "run"}')
  assert code != 0 and 'does not exist' in out and 'nerf_synthetic' in out and 'Traceback' not in out


def test_train_then_evaluate_from_the_command_line(spheres_root, tmp_path):
  # With model.dtype='auto': the start-up line says what this machine gets and why, config.json keeps
  # the dtype chosen, and a resumed or evaluated run keeps it even where this machine would pick another.
  common = ['--config', 'configs/demo.py', f'--config.data.root={spheres_root}', f'--workdir={tmp_path}',
            '--config.train.steps=20', '--config.train.batch_size=512', '--config.model.width=32',
            '--config.model.dtype=auto']
  code, out = run_main(*common)
  assert code == 0, out
  chosen, why = precision.resolve('auto')
  assert f'model.dtype: {chosen} ({why})' in out, out
  assert 'PSNR' in out and os.path.exists(tmp_path / 'config.json')
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(tmp_path))
  with open(tmp_path / 'config.json') as f:
    saved = json.load(f)
  assert saved['model']['dtype'] == chosen
  other = {'float32': 'bfloat16', 'bfloat16': 'float32'}[chosen]
  saved['model']['dtype'] = other  # as if the run had started on a machine that picked the other one
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(saved, f)
  code, out = run_main(*common, '--mode', 'evaluate')
  assert code == 0, out
  assert f'model.dtype: {other} (the dtype this run started with' in out, out
  assert f'{tmp_path}/eval/train_step20/metrics.json' in out


def test_bad_config_values_are_named(spheres_root, tmp_path):
  common = ['--config', 'configs/demo.py', f'--config.data.root={spheres_root}', f'--workdir={tmp_path}']
  code, out = run_main(*common, '--config.train.microbatches=3')
  assert code != 0 and 'train.microbatches=3' in out and 'Traceback' not in out
  code, out = run_main(*common, '--config.task=nerff')
  assert code != 0 and "task='nerff' must be one of ['img_fit', 'nerf']" in out and 'Traceback' not in out
  assert not os.path.exists(tmp_path / 'checkpoints')  # nothing was started


def test_unwritable_workdir_is_a_clear_error(spheres_root, tmp_path):
  # (Permission bits do not stop root, so the workdir is put under a file: just as unwritable.)
  (tmp_path / 'a_file').write_text('')
  code, out = run_main('--config', 'configs/demo.py', f'--config.data.root={spheres_root}',
                       f'--workdir={tmp_path / "a_file" / "run"}')
  assert code != 0 and 'Cannot create the workdir' in out and 'writable --workdir' in out
  assert 'Traceback' not in out


def test_nonsense_values_are_all_named_before_any_work(tmp_path):
  code, out = run_main('--config', 'configs/demo.py', f'--workdir={tmp_path / "run"}', '--config.train.lr=-1e-3',
                       '--config.train.batch_size=0', '--config.data.near=6', '--config.data.far=2',
                       '--config.train.steps=-5')
  assert code != 0 and 'Traceback' not in out
  assert out.strip().splitlines()[-1].startswith('error: 4 config value(s) cannot work: ')
  for rule in ('train.lr=-0.001 must be > 0', 'train.batch_size=0 must be >= 1', 'train.steps=-5 must be >= 0',
               'data.near=6.0 must be < data.far=2.0'):
    assert rule in out
  assert not os.path.exists(tmp_path / 'run')


def test_help_exits_0_and_a_misspelt_config_file_is_one_line(tmp_path):
  code, out = run_main('--help')
  assert code == 0 and '--config' in out and '--mode' in out
  code, out = run_main('--config', 'configs/dmeo.py')
  assert code == 1 and 'Traceback' not in out
  assert "the config file 'configs/dmeo.py' could not be loaded" in out and 'No such file' in out
  (tmp_path / 'broken.py').write_text('def get_config(:\n')
  code, out = run_main('--config', str(tmp_path / 'broken.py'))
  assert code == 1 and 'Traceback' not in out and 'broken.py' in out


def test_evaluate_and_render_in_a_mistyped_workdir_create_nothing(tmp_path):
  for mode in ('evaluate', 'render'):
    code, out = run_main('--config', 'configs/demo_nerf.py', f'--workdir={tmp_path / "rnus" / "demo"}',
                         f'--mode={mode}')
    assert code != 0 and 'Traceback' not in out and 'the folder does not exist' in out, out
    assert not os.path.exists(tmp_path / 'rnus')
