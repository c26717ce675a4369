"""The measurement behind reports.importance.MIN_TRIALS, as run for docs (log: importance_minimum.log).

    OMP_NUM_THREADS=1 PYTHONPATH=. python docs/probes/importance_minimum.py
    OMP_NUM_THREADS=1 PYTHONPATH=. python -m study.bench.importance --sampler random --no-prune \
        --counts 20,40,60,80,120,160 --repeats 8
    OMP_NUM_THREADS=1 PYTHONPATH=. python -m study.bench.importance --counts 240,320 --repeats 8

The first runs `python -m study.bench.importance` (whose docstring states the criterion) with the
studies the reports meet: TPE as the search uses it, successive halving, the real trial noise (2.7
points), only completed trials fitted; 8 studies per count. The second measures random sampling at
the same noise; the third extends the first. The log holds all three, each after its command.
"""

from reports import importance_check

if __name__ == "__main__":
    importance_check.main(["--counts", "20,40,60,80,120,160", "--repeats", "8"])
