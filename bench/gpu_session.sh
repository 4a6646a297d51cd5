#!/usr/bin/env bash
# A session on the GPU machine (15 minutes of device time in all, 10 a command, warm about 30 s after a call): the
# CUDA checks, then CycleGAN horse<->zebra at the reference's length, in two back-to-back calls on one warm machine.
#
#     bash bench/gpu_session.sh DATA OUT [SECONDS]                   # call 1: checks, pilot, the run starts
#     PHASE=continue bash bench/gpu_session.sh DATA OUT [SECONDS]    # call 2, at once: the run resumes and ends
#
# DATA holds trainA/ trainB/ testA/ testB/ (horse2zebra, carried re-encoded by bench/gpu_data.py to fit the 64 MiB
# that travels). OUT gets at most 8 files (the device tool's limit): session.log, cuda.tar (bench/cuda_check.py's
# report and test log), pilot.tar (the pilot's metrics and eval), and after call 2 h2z.tar (the run's export/,
# metrics, log, options, last grids). runs/ (ignored by git) stays on the warm machine between the two calls.
#
# Call 1, within SECONDS (default 570) of its start:
#   1. CHECK=full (default) runs bench/cuda_check.py within CHECK_BUDGET s (default 200: the tests marked cuda and the
#      side-by-side speed rows); CHECK=rows only the speed rows; CHECK=none neither.
#   2. The pilot: PILOTS ("name:args;...", default widths 48 and 64 at --lr 2e-4 and 4e-4 for batch 16), each for
#      PILOT_STEPS steps (equal images), one after another (the GPU is shared by none), then judged on every held-out
#      photo each way (`gan eval --real DATA`): the best sum of the two target-domain rates wins; a narrower
#      generator wins a tie within 3 points (it fits the tree budget better).
#   3. The run: `gan train` with the chosen recipe for EPOCHS (default 200) epochs, batch 16, stopped by SIGTERM
#      (a checkpoint) 20 s before the call's end.
# Call 2 resumes runs/h2z for what is left of SECONDS and exports it; a run that has not ended by then is exported
# at the step it reached (its learning rate not yet decayed to zero: the card must say so). Evaluation with `gan eval`
# is the CPU's work afterwards.
#
# For a dry run on the CPU, small:
#     CHECK=none DEVICE=cpu PILOT_STEPS=4 EPOCHS=0.5 EXTRA="--blocks 2 --d-width 8 --size 32 --load-size 36 --batch-size 2" \
#       PILOTS="w8:--g-width 8;w12:--g-width 12" bash bench/gpu_session.sh SMALL_DATA /tmp/out 300
set -u
DATA=$1 OUT=$2 BUDGET=${3:-570}
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
COMMON="--arch cyclegan --domains horse,zebra --size 128 --load-size 286 --blocks 9 --batch-size 16 --device $DEVICE --seed 0 ${EXTRA:-}"
mkdir -p "$OUT" runs
exec > >(tee -a "$OUT/session.log") 2>&1
echo "== ${PHASE:-first} call, $(date -u +%H:%M:%S), budget $BUDGET s"

finish_run() {  # export the run at the step it reached, if it has not ended, and pack what comes back
  last_ckpt=runs/h2z/checkpoints/$(ls runs/h2z/checkpoints 2>/dev/null | tail -1)
  if [ ! -f runs/h2z/export/config.json ] || [ "$last_ckpt" -nt runs/h2z/export/config.json ]; then
    step=$(ls runs/h2z/checkpoints/ 2>/dev/null | tail -1 | sed 's/step-0*//; s/\.pt//')
    # eager: compiling again for a single grid and the export would eat the little time left
    [ -n "$step" ] && [ "$(left)" -gt 15 ] && timeout $(( $(left) - 5 )) python -m gancli train --out runs/h2z \
      --resume --steps "$step" --device "$DEVICE" --no-compile >> runs/h2z.log 2>&1
  fi
  cp runs/h2z.log runs/h2z/ 2>/dev/null
  last=$(ls runs/h2z/samples/*.png 2>/dev/null | tail -2)
  tar cf "$OUT/h2z.tar" -C runs/h2z export metrics.jsonl log.txt options.json h2z.log losses.png \
    $(for f in $last; do echo "samples/$(basename "$f")"; done) 2>/dev/null
  ls -la "$OUT"
}

if [ "${PHASE:-first}" = continue ]; then
  # stopped with room for the checkpoint on SIGTERM and an eager export of the step it reached
  if [ -n "$(ls runs/h2z/checkpoints 2>/dev/null)" ]; then
    [ "$(left)" -gt 150 ] && timeout -s TERM $(( $(left) - 120 )) python -m gancli train --out runs/h2z --resume \
      --device "$DEVICE" --log-every 200 --sample-every 2000 >> runs/h2z.log 2>&1
  elif [ -f runs/chosen.txt ]; then  # call 1 had no time to start it: it starts here, with the pilot's choice
    [ "$(left)" -gt 150 ] && timeout -s TERM $(( $(left) - 120 )) python -m gancli train "$DATA" $COMMON \
      $(cat runs/chosen.txt) --epochs "${EPOCHS:-200}" --log-every 200 --sample-every 2000 --checkpoint-every 2000 \
      --name cyclegan-horse2zebra --out runs/h2z >> runs/h2z.log 2>&1
  fi
  echo "run: $(tail -1 runs/h2z/log.txt)"
  finish_run
  echo "call done in $(( $(date +%s) - T0 )) s"
  exit 0
fi

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"

# 1. the CUDA checks
CHECK=${CHECK:-full}
case "$CHECK" in
  full) timeout $(( ${CHECK_BUDGET:-200} + 20 )) python bench/cuda_check.py --out "$OUT/cuda" --budget "${CHECK_BUDGET:-200}" ;;
  rows) timeout $(( ${CHECK_BUDGET:-200} + 20 )) python bench/cuda_check.py --out "$OUT/cuda" --budget "${CHECK_BUDGET:-200}" --no-tests ;;
  none) ;;
  *) echo "CHECK is full, rows or none, not $CHECK"; exit 2 ;;
esac
[ -d "$OUT/cuda" ] && (cd "$OUT/cuda" && tar cf ../cuda.tar . && cd .. && rm -rf cuda)

# 2. the pilot: equal images, one after another
IFS=';' read -r -a PILOT <<< "${PILOTS:-w48:--g-width 48 --lr-g 2e-4 --lr-d 2e-4;w48x2:--g-width 48 --lr-g 4e-4 --lr-d 4e-4;w64:--g-width 64 --lr-g 2e-4 --lr-d 2e-4;w64x2:--g-width 64 --lr-g 4e-4 --lr-d 4e-4}"
best= best_score=-1 best_width=0
for p in "${PILOT[@]}"; do
  name=${p%%:*}; args=${p#*:}
  if [ "$(left)" -lt $(( ${RUN_RESERVE:-240} + 150 )) ]; then  # keep RUN_RESERVE s for the run itself
    echo "pilot $name skipped: $(left) s left"
    continue
  fi
  timeout 150 python -m gancli train "$DATA" $COMMON $args --steps "${PILOT_STEPS:-400}" --log-every 50 \
    --sample-every 100000 --checkpoint-every 100000 --out "runs/pilot-$name" > "runs/pilot-$name.log" 2>&1
  for d in a2b b2a; do
    [ -d "runs/pilot-$name/export" ] && timeout 60 python -m gancli eval "runs/pilot-$name/export" --real "$DATA" \
      --direction $d --device "$DEVICE" --json - > "runs/pilot-$name/eval-$d.json" 2>> "runs/pilot-$name.log"
  done
  read -r score width <<< "$(python - "runs/pilot-$name" <<'EOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
try:
    e = [json.loads((run / f"eval-{d}.json").read_text()) for d in ("a2b", "b2a")]
    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k.startswith("target_domain_rate") and isinstance(v, (int, float)):
                    yield v
                else:
                    yield from walk(v)
        elif isinstance(x, list):
            for v in x:
                yield from walk(v)
    rates = list(walk(e))
    score = round(100 * sum(rates)) if len(rates) == 2 else -1
except (OSError, ValueError):
    score = -1
width = json.loads((run / "options.json").read_text()).get("g_width", 0) if (run / "options.json").exists() else 0
print(score, width)
EOF
)"
  echo "pilot $name ($args): score $score (sum of target-domain rates, %), width $width, $(tail -1 "runs/pilot-$name/log.txt" 2>/dev/null)"
  if [ "$score" -gt $(( best_score + 3 )) ] || { [ "$score" -ge $(( best_score - 3 )) ] && [ "$width" -lt "$best_width" ]; }; then
    best=$p best_score=$score best_width=$width
  fi
done
(cd runs && tar cf - pilot-*/metrics.jsonl pilot-*/eval-*.json pilot-*/log.txt pilot-*.log 2>/dev/null) > "$OUT/pilot.tar"
if [ -z "$best" ]; then  # no pilot could be judged (each one's log says why): the first recipe, eager in case the
  best="${PILOT[0]} --no-compile"  # compiled path is what failed (it has not run on a GPU before this session)
  echo "no pilot was judged: taking the first recipe, --no-compile"
fi
echo "chosen: ${best%%:*} (${best#*:}), score $best_score"
echo "${best#*:}" > runs/chosen.txt

# 3. the run, stopped by SIGTERM (a checkpoint at the next step) before the call ends; call 2 resumes it
if [ "$(left)" -lt 180 ]; then  # reading 2,400 photos and compiling come first: too little time leaves no checkpoint
  echo "the run starts in call 2: $(left) s left"; exit 0
fi
timeout -s TERM $(( $(left) - 20 )) python -m gancli train "$DATA" $COMMON ${best#*:} --epochs "${EPOCHS:-200}" \
  --log-every 200 --sample-every 2000 --checkpoint-every 2000 --name cyclegan-horse2zebra --out runs/h2z \
  > runs/h2z.log 2>&1
echo "run stopped: $(tail -1 runs/h2z/log.txt)"
[ -f runs/h2z/export/config.json ] && finish_run  # it ended inside this call (a short run, a dry run)
echo "call done in $(( $(date +%s) - T0 )) s; now: PHASE=continue bash bench/gpu_session.sh $DATA $OUT"
