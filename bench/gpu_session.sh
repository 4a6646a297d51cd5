#!/usr/bin/env bash
# The one command of a session on the GPU machine (15 minutes of device time in all, 10 a command): the CUDA
# checks (bench/cuda_check.py: the tests marked cuda, then the side-by-side speed rows), then CycleGAN horse<->zebra
# trained by `gan train` for what is left of the command, three recipes side by side on the one GPU.
#
#     bash bench/gpu_session.sh DATA OUT [SECONDS]
#
# DATA holds trainA/ and trainB/ (horse2zebra; the session carries it re-encoded as WebP to fit the 64 MiB that
# travels). Everything that comes back is under OUT, in at most 8 files (the device tool's limit): cuda_check.md, the
# session's log, and one tar per run (its export/, metrics, log, last grids). Each phase has its own time limit, so a
# hang in one cannot eat the next; the whole ends within SECONDS (default 570) of its start. Settings, from the
# environment: CHECK (full, tests or none: below), RECIPES_SPEC and EQUAL (the runs), EXTRA (options every run
# takes), DEVICE (cuda). For a dry run on the CPU:
#     CHECK=none DEVICE=cpu EXTRA="--g-width 8 --blocks 2 --d-width 8" bash bench/gpu_session.sh SMALL_DATA /tmp/out 150
set -u
DATA=$1 OUT=$2 BUDGET=${3:-570}
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"

# 1. the CUDA checks. CHECK=full (default): bench/cuda_check.py, the tests marked cuda then the side-by-side speed
#    rows, before anything else runs (cuda_check keeps to its budget; timeout: the backstop). CHECK=tests: only the
#    tests, beside the training below (the speed rows would be disturbed by it; the tests are not). CHECK=none:
#    neither.
tests_pid=
CHECK=${CHECK:-full}
if [ "$CHECK" = tests ]; then
  timeout 300 python -m pytest -m cuda tests/test_on_cuda.py -q -p no:cacheprovider > "$OUT/cuda_tests.log" 2>&1 &
  tests_pid=$!
elif [ "$CHECK" = full ]; then
  timeout 260 python bench/cuda_check.py --out "$OUT/cuda" --budget 240 || echo "cuda_check ended with status $?"
  (cd "$OUT/cuda" 2>/dev/null && tar cf ../cuda.tar . && cd .. && rm -rf cuda)
elif [ "$CHECK" != none ]; then
  echo "CHECK is full, tests or none, not $CHECK"; exit 2
fi

# 2. CycleGAN: up to three recipes at once (each is bound by kernel launches, not by the GPU's arithmetic). A
#    60-step calibration of all of them measures their joint speed, so the real runs' --steps (and with it the
#    learning rate's linear decay to zero) end before the command does. RECIPES="name:args;name:args" replaces the
#    default three; the recipes named in EQUAL share one length (the slowest one's), for a side-by-side comparison.
#    The zoo's tree budget holds two fp16 generators of about 2M parameters each: width 32 with 6 residual blocks, or
#    width 24 with 9; and batch 4 against the reference's batch 1.
if [ -n "${RECIPES_SPEC:-}" ]; then
  IFS=';' read -r -a RECIPES <<< "$RECIPES_SPEC"
else
  RECIPES=("w32b6:--g-width 32 --blocks 6 --batch-size 4" "w24b9:--g-width 24 --blocks 9 --batch-size 4"
           "w32b6bs1:--g-width 32 --blocks 6 --batch-size 1")
fi
pids=() runs=()
COMMON="--arch cyclegan --domains horse,zebra --size 128 --load-size 286 --device ${DEVICE:-cuda} --seed 0"
for r in "${RECIPES[@]}"; do
  name=${r%%:*}; args=${r#*:}
  timeout 90 python -m gancli train "$DATA" $COMMON $args ${EXTRA:-} --steps 60 --log-every 20 --sample-every 1000 \
    --out "/tmp/cal-$name" > "/tmp/cal-$name.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"  # by pid: a bare wait would also wait for the tee of the log
declare -A STEPS
seconds=$(( $(left) - 45 ))  # start-up (data decoding), the last grid, the export and the tar
for r in "${RECIPES[@]}"; do
  name=${r%%:*}; args=${r#*:}
  rate=$(python -c "import json,sys; rows=[json.loads(l) for l in open('/tmp/cal-$name/metrics.jsonl')]; print(rows[-1]['images_per_s'])" 2>/dev/null || echo 0)
  batch=$(echo "$args" | sed 's/.*--batch-size \([0-9]*\).*/\1/')
  STEPS[$name]=$(python -c "print(max(100, int($rate * $seconds * 0.9 / $batch)))")
  echo "$name: calibration $rate img/s; $seconds s left -> ${STEPS[$name]} steps"
done
shortest=
for name in ${EQUAL:-}; do
  [ -z "$shortest" ] || [ "${STEPS[$name]}" -lt "$shortest" ] && shortest=${STEPS[$name]}
done
for name in ${EQUAL:-}; do STEPS[$name]=$shortest; done
[ -n "${EQUAL:-}" ] && echo "equal length for ${EQUAL}: $shortest steps"
for r in "${RECIPES[@]}"; do
  name=${r%%:*}; args=${r#*:}
  timeout $(( $(left) - 40 )) python -m gancli train "$DATA" $COMMON $args ${EXTRA:-} --steps "${STEPS[$name]}" \
    --log-every 100 --sample-every 1000 --checkpoint-every 100000 --name "cyclegan-horse2zebra-$name" \
    --out "runs/$name" > "runs-$name.log" 2>&1 &
  runs+=($!)
done
wait "${runs[@]}"
[ -n "$tests_pid" ] && { wait "$tests_pid"; tail -5 "$OUT/cuda_tests.log"; }
for r in "${RECIPES[@]}"; do
  name=${r%%:*}
  if [ ! -f "runs/$name/export/config.json" ]; then  # stopped by its timeout (a checkpoint on SIGTERM): export that
    step=$(ls "runs/$name/checkpoints/" 2>/dev/null | tail -1 | sed 's/step-0*//; s/\.pt//')
    [ -n "$step" ] && timeout $(( $(left) - 5 )) python -m gancli train --out "runs/$name" --resume --steps "$step" \
      --device "${DEVICE:-cuda}" >> "runs-$name.log" 2>&1
  fi
  cp "runs-$name.log" "runs/$name/" 2>/dev/null
  last=$(ls runs/$name/samples/*.png 2>/dev/null | tail -2)
  tar cf "$OUT/$name.tar" -C "runs/$name" export metrics.jsonl log.txt options.json "runs-$name.log" losses.png \
    $(for f in $last; do echo "samples/$(basename "$f")"; done) 2>/dev/null
done
ls -la "$OUT"
echo "session done in $(( $(date +%s) - T0 )) s"
