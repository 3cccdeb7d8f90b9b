#!/bin/sh
# Print the path of a Python >= 3.12 interpreter (PyMC 6 and ArviZ 1 need it), or say what to
# install and exit 1. Order: $BAYESHRINK_PYTHON, python3.12/3.13/3.14 on PATH, pyenv's versions,
# then python3.
ok() {
    [ -n "$1" ] && [ -x "$1" ] &&
        "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}
if [ -n "${BAYESHRINK_PYTHON:-}" ]; then
    if ok "$BAYESHRINK_PYTHON"; then echo "$BAYESHRINK_PYTHON"; exit 0; fi
    echo "error: BAYESHRINK_PYTHON=$BAYESHRINK_PYTHON is not a working Python >= 3.12" >&2
    exit 1
fi
for name in python3.12 python3.13 python3.14; do
    p=$(command -v "$name" 2>/dev/null) && ok "$p" && { echo "$p"; exit 0; }
done
root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for minor in 12 13 14 15; do
    for d in $(ls -d "$root"/versions/3."$minor".* 2>/dev/null | sort -r); do
        ok "$d/bin/python" && { echo "$d/bin/python"; exit 0; }
    done
done
for name in python3 python; do
    p=$(command -v "$name" 2>/dev/null) && ok "$p" && { echo "$p"; exit 0; }
done
found=$(python3 --version 2>/dev/null || echo "no python3")
cat >&2 <<MSG
error: bayeshrink needs Python >= 3.12 (PyMC 6 and ArviZ 1 do), and none was found
(python3 here is: $found). Install one, then run the command again:
    pyenv install 3.12            # with pyenv
    apt-get install python3.12    # Debian/Ubuntu releases that package it
    uv python install 3.12        # with uv
or point to one you have:  BAYESHRINK_PYTHON=/path/to/python3.12 make ...
MSG
exit 1
