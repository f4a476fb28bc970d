#!/usr/bin/env python3
"""Fixed vs dynamic expert placement for larger clusters, on the measured load trace of a run.

    python3 tools/placement_sim.py --metrics RUN/metrics.jsonl [--ranks 8,64,256] [--window 20]
        [--threshold 1.25] [--min-interval 100] [--replica-slots N] [--move-cost TOKENS] [--expert-fraction F]
        [--step-seconds S] [--expert-mb MB] [--move-mb-per-s BW]

The trace is metrics.jsonl's `expert_tokens` (per step, per MoE layer, per expert: token assignments before
dropping). For each rank count R the experts start contiguous (as ExpertPlacement.contiguous) and either stay
(fixed) or move as `parallel.placement: dynamic` moves them (PlacementPolicy.Dynamic, the same rules:
decisions every window from the window's loads, threshold on the busiest rank over the mean, copies of
experts heavier than an even share within --replica-slots, longest-processing-time first over the copies
with experts kept in place where moving buys nothing, the better of copies and moves alone, a move only
for a 0.9 prediction whose saving in expert-token passes over max(window, minimum interval) steps pays for
its copies at --move-cost each (parallel.placement_move_cost), a minimum interval). A replicated expert's
tokens split among its holders as the dispatch splits them (ShardLayout.destination: a holder keeps its
own, source s sends to holder s mod n), each source carrying an equal share. The policy sees the trace's
counts as they are: a run at R ranks would have R times the tokens per step, so the savings it weighs
against --move-cost are understated at large R (the policy moves less than it would).

Cost model: a step at even load takes --step-seconds, of which --expert-fraction is expert compute, which
grows with the busiest rank's load over the mean (the ranks wait for the busiest at each exchange); the rest
does not depend on the placement. A move costs the expert copies it creates x --expert-mb / --move-mb-per-s
(a replica's gradient sum each step is left out). Left out: the exchanges' own change with placement (which
ranks talk to which), network topology and contention, stragglers, the dense all-reduce growing with R, and
that a real run at R ranks has R times the tokens per step (the trace's relative loads are assumed to hold).
"""
import argparse
import json


def contiguous(experts, ranks):
    return [max(r for r in range(ranks) if r * experts // ranks <= e) for e in range(experts)]


def destination(source, holders):
    return holders[0] if len(holders) == 1 else (source if source in holders else holders[source % len(holders)])


def rank_loads(loads, holders, ranks):
    per = [0.0] * ranks
    for e, l in enumerate(loads):
        if len(holders[e]) == 1:
            per[holders[e][0]] += l
        else:
            for s in range(ranks):
                per[destination(s, holders[e])] += l / ranks
    return per


def imbalance(loads, holders, ranks):
    per = rank_loads(loads, holders, ranks)
    total = sum(per)
    return 1.0 if total == 0 else max(per) * ranks / total


def lay_out(loads, current, ranks, replica_slots):
    """PlacementPolicy.Dynamic.layOut: copies first, then longest-processing-time over the copies."""
    experts, total = len(loads), sum(loads)
    copies = [1] * experts
    for _ in range(ranks * replica_slots):
        hot = max(range(experts), key=lambda x: (loads[x] / copies[x], -x))
        if copies[hot] == ranks or loads[hot] / copies[hot] <= total / ranks:
            break
        copies[hot] += 1
    pieces = sorted(((x, c) for x in range(experts) for c in range(copies[x])),
                    key=lambda p: (-loads[p[0]] / copies[p[0]], p[0]))
    heaviest = loads[pieces[0][0]] / copies[pieces[0][0]] if pieces else 0
    target = max(heaviest, total / ranks)
    slots = (experts + ranks - 1) // ranks + 1 + replica_slots
    load, count = [0.0] * ranks, [0] * ranks
    holds = [set() for _ in range(experts)]
    for x, _ in pieces:
        w = loads[x] / copies[x]
        least = min(load[r] for r in range(ranks) if count[r] < slots and r not in holds[x])
        to = None
        for cur in current[x]:
            if count[cur] < slots and cur not in holds[x] and (w == 0 or load[cur] + w <= target
                                                               or load[cur] == least) and (to is None or load[cur] < load[to]):
                to = cur
        if to is None:
            to = min((r for r in range(ranks) if count[r] < slots and r not in holds[x] and load[r] == least),
                     key=lambda r: (count[r], r))
        holds[x].add(to)
        load[to] += w
        count[to] += 1
    return [sorted(h) for h in holds]


def simulate(trace, ranks, dynamic, a):
    layers, experts = len(trace[0]), len(trace[0][0])
    owners = [[[o] for o in contiguous(experts, ranks)] for _ in range(layers)]
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
                        laid = lay_out(seen[l], owners[l], ranks, 0)
                        if a.replica_slots > 0:
                            copied = lay_out(seen[l], owners[l], ranks, a.replica_slots)
                            if imbalance(seen[l], copied, ranks) < imbalance(seen[l], laid, ranks):
                                laid = copied
                        copies = sum(len(set(laid[e]) - set(owners[l][e])) for e in range(experts))
                        saving = (max(rank_loads(seen[l], owners[l], ranks))
                                  - max(rank_loads(seen[l], laid, ranks))) / a.window
                        if (imbalance(seen[l], laid, ranks) <= 0.9 * before
                                and saving * max(a.window, a.min_interval) >= copies * a.move_cost):
                            changed += copies
                            owners[l] = laid
                if changed:
                    last_move = step
                    moved += changed
                    seconds += changed * a.expert_mb / a.move_mb_per_s
    n = len(trace)
    return {"busiest_share": busiest / n, "seconds_per_step": seconds / n, "experts_moved": moved,
            "replicas": sum(len(h) - 1 for layer in owners for h in layer)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--metrics", required=True)
    p.add_argument("--ranks", default="8,64,256")
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--threshold", type=float, default=1.25)
    p.add_argument("--min-interval", type=int, default=100)
    p.add_argument("--replica-slots", type=int, default=0)
    p.add_argument("--move-cost", type=float, default=800.0)
    p.add_argument("--expert-fraction", type=float, default=0.5)
    p.add_argument("--step-seconds", type=float, default=1.0)
    p.add_argument("--expert-mb", type=float, default=1.0)
    p.add_argument("--move-mb-per-s", type=float, default=1000.0)
    a = p.parse_args()
    rows = [json.loads(l) for l in open(a.metrics) if l.strip()]
    trace = [r["expert_tokens"] for r in rows if "event" not in r]
    print("| ranks | experts | replica slots | fixed: busiest share | dynamic: busiest share | dynamic: copies made "
          "| replicas at the end | fixed s/step | dynamic s/step | dynamic vs fixed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for ranks in map(int, a.ranks.split(",")):
        if ranks > len(trace[0][0]):
            continue
        f, d = simulate(trace, ranks, False, a), simulate(trace, ranks, True, a)
        print(f"| {ranks} | {len(trace[0][0])} | {a.replica_slots} | {f['busiest_share']:.4f} "
              f"| {d['busiest_share']:.4f} | {d['experts_moved']} | {d['replicas']} "
              f"| {f['seconds_per_step']:.3f} | {d['seconds_per_step']:.3f} "
              f"| {f['seconds_per_step'] / d['seconds_per_step']:.2f}x |")


if __name__ == "__main__":
    main()
