#!/usr/bin/env bash
# Fixed vs dynamic expert placement, in one run: conf/placement-bench.yaml on local-cluster[2,1,2048] (two
# executor JVMs, one core each), three workloads: skewed (hash routing over 4 experts, as the config has it:
# moves can even the ranks out), hot (hash routing over 2 experts: one carries 76 % of the tokens, only a
# replica helps) and balanced (top-2 softmax routing with the aux loss), each with parallel.placement fixed,
# dynamic (experts move, one holder each) and dynamic
# with parallel.replica_slots=1 ("replicas"). Prints one line per run: tokens/s over the second half of the
# steps, the busiest rank's share of expert tokens there (mean over steps and layers, under the placement in
# force; a replicated expert's tokens split among its holders as the dispatch splits them, each source rank
# taken to carry an equal share of every expert's tokens, as the policy predicts them), and the moves (count,
# replicas after the last, MB, seconds), from the run's metrics.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=${1:-$(mktemp -d)}
mkdir -p "$work"
for load in skewed hot balanced; do
  routing=()
  [[ $load == hot ]] && routing=(--set moe.experts=2)
  [[ $load == balanced ]] && routing=(--set moe.router=topk --set moe.top_k=2 --set moe.aux_loss_coef=0.01)
  for placement in fixed dynamic replicas; do
    run="$work/$load-$placement"
    rm -rf "$run"
    keys=(--set parallel.placement=$placement)
    [[ $placement == replicas ]] && keys=(--set parallel.placement=dynamic --set parallel.replica_slots=1)
    bin/moe-train --config conf/placement-bench.yaml --master 'local-cluster[2,1,2048]' --run-dir "$run" \
      "${routing[@]}" "${keys[@]}" > "$run.log" 2>&1
    python3 - "$run" "$load" "$placement" <<'PY'
import json, sys
run, load, placement = sys.argv[1:]
rows = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
steps = [r for r in rows if "event" not in r]
moves = {r["step"]: r for r in rows if r.get("event") == "placement_move"}
cfg = json.load(open(run + "/config.json"))
E, R = cfg["moe"]["experts"], cfg["parallel"]["ranks"]
# The contiguous start (ExpertPlacement.contiguous), then each move's placement from its step on.
owner = [max(r for r in range(R) if r * E // R <= e) for e in range(E)]
placement_now = [list(owner) for _ in steps[0]["expert_tokens"]]

def holders(h):
    return sorted(h) if isinstance(h, list) else [h]

def destination(source, h):  # ShardLayout.destination
    return source if source in h else h[source % len(h)]

half_from = steps[len(steps) // 2]["step"]
shares, tok = [], []
for s in steps:
    if s["step"] >= half_from:
        tok.append(s["tokens_per_s"])
        for l, counts in enumerate(s["expert_tokens"]):
            load_r = [0] * R
            for e, c in enumerate(counts):
                for source in range(R):
                    load_r[destination(source, holders(placement_now[l][e]))] += c / R
            shares.append(max(load_r) / max(1, sum(load_r)))
    if s["step"] in moves:
        placement_now = [row for row in moves[s["step"]]["placement"] if row]
print(json.dumps({"workload": load, "placement": placement, "tokens_per_s": round(sum(tok) / len(tok)),
                  "busiest_share": round(sum(shares) / len(shares), 3), "moves": len(moves),
                  "replicas": max([m.get("replicas", 0) for m in moves.values()][-1:] or [0]),
                  "move_mb": round(sum(m["bytes"] for m in moves.values()) / 1e6, 2),
                  "move_s": round(sum(m["seconds"] for m in moves.values()), 3)}))
PY
  done
done
