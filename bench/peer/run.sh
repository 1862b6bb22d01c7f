#!/bin/sh
# The PyTorch peer on 2 threads with Debian's pthread OpenBLAS (apt-get install python3-torch libopenblas0-pthread).
# Usage: bench/peer/run.sh [stats] [forward] [rome] [memit] [d4s] [--reps=N]
here=$(dirname "$0")
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \
  exec /usr/bin/python3 "$here/peer.py" "$@"
