"""Progress output suited to where it goes: a redrawn bar on a terminal, a plain line every few seconds
in a file (a cluster's log, `> run.log`), where a redrawn bar would write megabytes of carriage returns."""

import sys
import time

from tqdm import tqdm


class Progress:
  """`total` steps from `initial`; update(n) after each, note(**values) for the latest loss and such.

  enabled=False prints nothing (processes other than 0). stream: default sys.stdout for lines, tqdm's
  stderr for the bar. every_s: seconds between lines when the stream is not a terminal.
  """

  def __init__(self, total, initial=0, desc='', unit='step', enabled=True, stream=None, every_s=30.0):
    stream = stream or sys.stderr
    self.total, self.count, self.desc, self.unit = total, initial, desc, unit
    self.enabled, self.every_s, self.stream = enabled, every_s, stream
    self.values = {}
    self.is_terminal = enabled and hasattr(stream, 'isatty') and stream.isatty()
    self._bar = (tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=stream)
                 if self.is_terminal else None)
    self._start, self._start_count = time.perf_counter(), initial
    self._last_line = self._start

  def update(self, n=1):
    self.count += n
    if self._bar is not None:
      self._bar.update(n)
    elif self.enabled and time.perf_counter() - self._last_line >= self.every_s:
      self._line()

  def note(self, **values):
    """Values shown with the progress (loss=..., psnr=...), formatted as given."""
    self.values.update(values)
    if self._bar is not None:
      self._bar.set_postfix(**values)

  def close(self):
    if self._bar is not None:
      self._bar.close()
    elif self.enabled and self.count > self._start_count:
      self._line()

  def _line(self):
    now = time.perf_counter()
    self._last_line = now
    rate = (self.count - self._start_count) / max(now - self._start, 1e-9)
    left = (self.total - self.count) / rate if rate > 0 else float('inf')
    eta = time.strftime('%H:%M:%S', time.gmtime(left)) if left != float('inf') else '?'
    values = ''.join(f', {k} {v}' for k, v in self.values.items())
    print(f'{self.desc} {self.count}/{self.total} {self.unit}s ({100 * self.count / self.total:.0f}%), '
          f'{rate:.3g} {self.unit}s/s, ETA {eta}{values}', file=self.stream, flush=True)
