#!/usr/bin/env bash
# One `python -m study run` per node of a Slurm array, all on one study (docs/cluster.md):
#   STORAGE=postgresql://user:pass@dbhost/study sbatch examples/cluster/slurm.sh
#   STORAGE=grpc://proxyhost:13000 sbatch --array=0-63 examples/cluster/slurm.sh    # many nodes: the proxy
# Submit from the project folder on the shared filesystem: every node reads the space file and the data
# from there and writes checkpoints to its runs/, so a trial retried on another node resumes its checkpoint.
# Resume: submit the same job again. Watch: python -m study dashboard "$STORAGE" (or optuna-dashboard on the DB URL).
#SBATCH --job-name=study
#SBATCH --array=0-3
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --signal=TERM@120
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

SPACE=${SPACE:-spaces/naivenet128.py}
STORAGE=${STORAGE:?set STORAGE to postgresql://user:pass@dbhost/db or grpc://proxyhost:13000}
DATA_DIR=${DATA_DIR:-${SLURM_SUBMIT_DIR:-$PWD}/../shared/data}
cd "${SLURM_SUBMIT_DIR:-$PWD}"

echo "array task ${SLURM_ARRAY_TASK_ID:?run it with sbatch --array, or set SLURM_ARRAY_TASK_ID by hand} on $(hostname)" >&2
# `run` uses every GPU Slurm gave this node (4 trials per GPU); it joins the study or creates it, and the
# study's budget is shared exactly by all array tasks. exec: Slurm's SIGTERM reaches python, which marks
# its trial interrupted (re-queued by the next run).
exec python -m study run "$SPACE" --storage "$STORAGE" --data-dir "$DATA_DIR" --plain
