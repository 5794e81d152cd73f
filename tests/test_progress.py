import io

from nerf_jax.progress import Progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_a_file_gets_plain_lines_at_most_every_interval():
  out = io.StringIO()
  progress = Progress(600, desc='train', stream=out, every_s=3600.0)
  for step in range(600):
    progress.update(1)
    progress.note(loss=f'{1.0 / (step + 1):.4g}')
  progress.close()
  text = out.getvalue()
  # No carriage returns, one line for the whole run (the interval never elapsed) and the closing one.
  assert '\r' not in text and text.count('\n') == 1, text
  assert text.startswith('train 600/600 steps (100%)') and 'loss 0.001667' in text


def test_a_short_interval_gives_a_line_per_update_with_rate_and_eta():
  out = io.StringIO()
  progress = Progress(10, initial=4, desc='render', unit='frame', stream=out, every_s=0.0)
  progress.update(1)
  line = out.getvalue().splitlines()[0]
  assert line.startswith('render 5/10 frames (50%), ') and 'frames/s, ETA ' in line


def test_a_terminal_gets_the_redrawn_bar_and_other_processes_nothing():
  terminal = _Terminal()
  progress = Progress(5, stream=terminal)
  progress.update(5)
  progress.close()
  assert '\r' in terminal.getvalue()
  quiet = io.StringIO()
  progress = Progress(5, stream=quiet, enabled=False, every_s=0.0)
  progress.update(5)
  progress.close()
  assert quiet.getvalue() == ''
