"""Runs docs/tutorial.md's ```bash blocks in order, in one shell, timing each command.

  python docs/run_tutorial.py [--dry-run]

Run it in a fresh clone (its first command makes the virtual environment) to check that the tutorial
works from nothing. ```sh blocks are examples that are parsed (tests/test_docs.py) but not run here.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))


def code_blocks(markdown, langs):
  """The bodies of the markdown's fenced code blocks whose language (the info string's first word,
  as in ```python title="x.py") is in `langs`, in order."""
  return [body for lang, body in re.findall(r'```(\w*)[^\n]*\n(.*?)```', markdown, flags=re.S)
          if lang in langs]


def tutorial_script(markdown):
  """A bash script running each command of the ```bash blocks and printing how long it took."""
  lines = ['set -euo pipefail']
  for block in code_blocks(markdown, ('bash',)):
    for command in block.replace('\\\n', ' ').splitlines():
      if command.strip():
        lines += [f'echo "### $(date +%T)" {shlex.quote(command)}', 'start=$SECONDS', command,
                  'echo "### took $((SECONDS - start)) s"']
  return '\n'.join(lines) + '\n'


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--dry-run', action='store_true', help='print the script instead of running it')
  args = parser.parse_args()
  with open(os.path.join(DOCS, 'tutorial.md')) as f:
    script = tutorial_script(f.read())
  if args.dry_run:
    print(script)
    return 0
  return subprocess.run(['bash', '-c', script], cwd=os.path.dirname(DOCS)).returncode


if __name__ == '__main__':
  sys.exit(main())
