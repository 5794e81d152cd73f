"""One writer per workdir: the training run holds workdir/train.lock while it may write checkpoints.

The lock is a small JSON file naming its holder (host, pid, the process's start time, the command).
Taking it is atomic: the file is created with O_EXCL, so of two trainings started together exactly
one creates it and the other reads the winner's name. A lock whose holder is gone (a run killed with
-9, a machine that crashed) would otherwise block the workdir for ever: one left by a pid that no
longer runs on this host (or that now belongs to another process: the start time differs) is taken
over, with a line saying so. A lock held from another host is never taken over (its pid cannot be
checked from here): the message says to delete it by hand once that run is known to be gone.

Read-only modes (evaluate, render, view, mesh) take no lock: they may run beside a training (the
viewer's live reload reads each new checkpoint). Multi-host runs take it on process 0 only.
"""

import json
import os
import socket
import sys
import time

from nerf_jax.errors import CheckpointError

LOCK_NAME = 'train.lock'


def _start_time(pid):
  """The start time of process `pid` in clock ticks since boot (/proc/<pid>/stat, field 22), or None
  where /proc is missing (then a live pid counts as the holder: pid reuse is not guarded)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      # The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
      return int(f.read().rsplit(')', 1)[1].split()[19])
  except (OSError, ValueError, IndexError):
    return None


def _alive(pid, start):
  """Whether process `pid` runs on this host and is the one that started at `start` (None: unknown)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # another user's process: it exists
  now = _start_time(pid)
  return start is None or now is None or now == start


def _describe(holder):
  return (f"pid {holder.get('pid')} on {holder.get('host')!r}, started "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.get('time', 0)))}")


class WorkdirLock:
  """workdir/train.lock, held from acquire() to release() (or the `with` block), by this process.

  say: prints the take-over line (main.py's print by default).
  """

  def __init__(self, workdir, say=print):
    self.workdir = os.path.abspath(workdir)
    self.path = os.path.join(self.workdir, LOCK_NAME)
    self.say = say
    self.held = False
    self._me = {'host': socket.gethostname(), 'pid': os.getpid(), 'start': _start_time(os.getpid()),
                'time': time.time(), 'command': ' '.join(sys.argv)[:500]}

  def _create(self):
    """Creates the lock file with our name in it, atomically; False where it exists already."""
    try:
      fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, 'w') as f:
      json.dump(self._me, f)
    return True

  def _read(self):
    """The holder's record, {} for a file being written right now or garbled, None when gone."""
    try:
      with open(self.path) as f:
        text = f.read()
    except FileNotFoundError:
      return None
    try:
      holder = json.loads(text)
      return holder if isinstance(holder, dict) else {}
    except json.JSONDecodeError:
      return {}

  def acquire(self):
    """Takes the lock, or raises CheckpointError naming its holder and --workdir."""
    for _ in range(50):  # each round either takes it, refuses, or saw it change under it
      if self._create():
        self.held = True
        return self
      seen = self._read()
      if seen == {}:  # created but not yet written (microseconds), or garbled: look again shortly
        time.sleep(0.05)
        seen = self._read()
      if seen is None:
        continue  # released between our two calls: try again
      holder = seen or {'host': self._me['host'], 'pid': -1}  # garbled for good: nobody holds it
      same_host = holder.get('host') == self._me['host']
      pid = holder.get('pid')
      if same_host and isinstance(pid, int) and pid > 0 and _alive(pid, holder.get('start')):
        raise CheckpointError(
            f'Another training holds {self.path} ({_describe(holder)}): one training per workdir. Wait '
            f'for it, stop it, or pass another --workdir (evaluate, render, view and mesh may run beside it).')
      if not same_host:
        raise CheckpointError(
            f'{self.path} is held by a training on another host ({_describe(holder)}). If that run is '
            f'gone, delete the file; else pass another --workdir.')
      # A dead holder on this host: take it over. The rename is atomic, so of two processes taking
      # over the same stale lock only one moves it; the other finds the new lock on its next round.
      stale = f'{self.path}.stale-{os.getpid()}'
      try:
        os.rename(self.path, stale)
      except FileNotFoundError:
        continue
      if self._read_file(stale) != seen:  # we moved a newer, live lock: put it back, look again
        if not os.path.exists(self.path):
          os.rename(stale, self.path)
        continue
      os.remove(stale)
      self.say(f'Took over the stale lock {self.path} of a training that is no longer running '
               f'({_describe(holder)}: killed, or its machine restarted).')
    raise CheckpointError(f'Could not take the lock {self.path}: it changes too often. Is another '
                          f'training starting in the same workdir? Pass another --workdir.')

  @staticmethod
  def _read_file(path):
    try:
      with open(path) as f:
        return json.load(f)
    except (OSError, json.JSONDecodeError):
      return {}

  def release(self):
    """Removes the lock if this process holds it (idempotent; never removes another's)."""
    if not self.held:
      return
    self.held = False
    holder = self._read()
    if holder and holder.get('pid') == self._me['pid'] and holder.get('host') == self._me['host']:
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
