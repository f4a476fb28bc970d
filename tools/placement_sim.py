#!/usr/bin/env python3
"""Fixed vs dynamic expert placement for larger clusters, on the measured load trace of a run.

    python3 tools/placement_sim.py --metrics RUN/metrics.jsonl [--ranks 8,64,256] [--window 20]
        [--threshold 1.25] [--min-interval 100] [--expert-fraction F] [--step-seconds S]
        [--expert-mb MB] [--move-mb-per-s BW]

The trace is metrics.jsonl's `expert_tokens` (per step, per MoE layer, per expert: token assignments before
dropping). For each rank count R the experts start contiguous (as ExpertPlacement.contiguous) and either stay
(fixed) or move as `parallel.placement: dynamic` moves them (PlacementPolicy.Dynamic, the same rules:
decisions every window from the window's loads, threshold on the busiest rank over the mean, longest-
processing-time first with ties kept in place and at most one expert above an even share per rank, a move
only for a 0.9 prediction, a minimum interval).

Cost model: a step at even load takes --step-seconds, of which --expert-fraction is expert compute, which
grows with the busiest rank's load over the mean (the ranks wait for the busiest at each exchange); the rest
does not depend on the placement. A move costs the experts it moves x --expert-mb / --move-mb-per-s. Left out:
the exchanges' own change with placement (which ranks talk to which), network topology and contention,
stragglers, the dense all-reduce growing with R, and that a real run at R ranks has R times the tokens per step
(the trace's relative loads are assumed to hold).
"""
import argparse
import json


def contiguous(experts, ranks):
    return [max(r for r in range(ranks) if r * experts // ranks <= e) for e in range(experts)]


def imbalance(loads, owners, ranks):
    per = [0] * ranks
    for e, l in enumerate(loads):
        per[owners[e]] += l
    total = sum(per)
    return 1.0 if total == 0 else max(per) * ranks / total


def longest_first(loads, current, ranks):
    experts = len(loads)
    slots = (experts + ranks - 1) // ranks + 1
    order = sorted(range(experts), key=lambda e: (-loads[e], e))
    target = max(max(loads), sum(loads) / ranks)
    load, count, owner = [0] * ranks, [0] * ranks, [0] * experts
    for x in order:
        cur = current[x]
        least = min(load[r] for r in range(ranks) if count[r] < slots)
        if count[cur] < slots and (loads[x] == 0 or load[cur] + loads[x] <= target or load[cur] == least):
            owner[x] = cur
            load[cur] += loads[x]
            count[cur] += 1
            continue
        best = None
        for r in range(ranks):
            if count[r] >= slots:
                continue
            if best is None or load[r] < load[best] or (load[r] == load[best] and (
                    count[r] < count[best] or (count[r] == count[best] and r == current[x] and best != current[x]))):
                best = r
        owner[x] = best
        load[best] += loads[x]
        count[best] += 1
    return owner


def simulate(trace, ranks, dynamic, a):
    layers, experts = len(trace[0]), len(trace[0][0])
    owners = [contiguous(experts, ranks) for _ in range(layers)]
    window = [[0] * experts for _ in range(layers)]
    last_move, moved, seconds, busiest = -10 ** 9, 0, 0.0, 0.0
    for step, counts in enumerate(trace, start=1):
        imb = sum(imbalance(counts[l], owners[l], ranks) for l in range(layers)) / layers
        busiest += imb / ranks
        seconds += a.step_seconds * ((1 - a.expert_fraction) + a.expert_fraction * imb)
        for l in range(layers):
            for e in range(experts):
                window[l][e] += counts[l][e]
        if dynamic and step % a.window == 0:
            seen, window = window, [[0] * experts for _ in range(layers)]
            if step - last_move >= a.min_interval:
                changed = 0
                for l in range(layers):
                    before = imbalance(seen[l], owners[l], ranks)
                    if before > a.threshold:
                        laid = longest_first(seen[l], owners[l], ranks)
                        if imbalance(seen[l], laid, ranks) <= 0.9 * before:
                            changed += sum(1 for e in range(experts) if laid[e] != owners[l][e])
                            owners[l] = laid
                if changed:
                    last_move = step
                    moved += changed
                    seconds += changed * a.expert_mb / a.move_mb_per_s
    n = len(trace)
    return {"busiest_share": busiest / n, "seconds_per_step": seconds / n, "experts_moved": moved}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--metrics", required=True)
    p.add_argument("--ranks", default="8,64,256")
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--threshold", type=float, default=1.25)
    p.add_argument("--min-interval", type=int, default=100)
    p.add_argument("--expert-fraction", type=float, default=0.5)
    p.add_argument("--step-seconds", type=float, default=1.0)
    p.add_argument("--expert-mb", type=float, default=1.0)
    p.add_argument("--move-mb-per-s", type=float, default=1000.0)
    a = p.parse_args()
    rows = [json.loads(l) for l in open(a.metrics) if l.strip()]
    trace = [r["expert_tokens"] for r in rows if "event" not in r]
    print("| ranks | experts | fixed: busiest share | dynamic: busiest share | dynamic: experts moved "
          "| fixed s/step | dynamic s/step | dynamic vs fixed |")
    print("|---|---|---|---|---|---|---|---|")
    for ranks in map(int, a.ranks.split(",")):
        if ranks > len(trace[0][0]):
            continue
        f, d = simulate(trace, ranks, False, a), simulate(trace, ranks, True, a)
        print(f"| {ranks} | {len(trace[0][0])} | {f['busiest_share']:.4f} | {d['busiest_share']:.4f} "
              f"| {d['experts_moved']} | {f['seconds_per_step']:.3f} | {d['seconds_per_step']:.3f} "
              f"| {f['seconds_per_step'] / d['seconds_per_step']:.2f}x |")


if __name__ == "__main__":
    main()
