#!/usr/bin/env python3
"""Turns a million.sh results folder into its README.md and plots.

Reads: samples.csv (the script's 5-second sampler), run.txt, check.txt, the rookery-load
run folder (summary.json) and node-N.metrics (each node's /metrics at the end).
Writes: README.md (tables: the run, memory per session, CPU per phase, latency, per node),
memory.svg and cpu.svg (hand-drawn SVG polylines: no plotting library needed).

Memory arithmetic (one host holds both ends of every loopback connection):
- kernel per connection pair = (Slab at the hold - Slab before the ramp) / sessions;
- engine user space per session = (sum of the nodes' RSS at the hold - before) / sessions;
- generator user space per client = sum of rookery-load's RSS at the hold / clients;
- all-in per pair = the three above; the MemAvailable drop is shown beside it (it moves with
  the page cache and anything else running on the host).
The "hold" sample is the last one before the chat starts (most sessions, no message
traffic).

Usage: million-report.py RESULTS_DIR CLIENTS NODES
"""

import csv
import glob
import json
import os
import re
import sys

HZ = os.sysconf("SC_CLK_TCK")


def load_samples(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def summary_of(out):
    paths = sorted(glob.glob(os.path.join(out, "*", "summary.json")))
    if not paths:
        return None, None
    with open(paths[-1]) as f:
        return json.load(f), os.path.dirname(paths[-1])


def metric_values(text, name):
    """Every sample of `name` (labels kept) in a Prometheus text page."""
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels = line[len(name):].rsplit(" ", 1)[0]
            out.append((labels, float(line.rsplit(" ", 1)[1])))
    return out


def bucket_quantile(buckets, q):
    """Upper bound of the bucket holding quantile q (buckets: [(le, cumulative)])."""
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return None
    for le, count in buckets:
        if count >= q * total:
            return le
    return None


def per_node(out, nodes):
    rows = []
    for i in range(1, nodes + 1):
        path = os.path.join(out, f"node-{i}.metrics")
        if not os.path.exists(path):
            continue
        text = open(path).read()
        sessions = sum(v for _, v in metric_values(text, "rookery_sessions"))
        mails_in = sum(v for _, v in metric_values(text, "rookery_cluster_mails_in_total"))
        mails_out = sum(v for _, v in metric_values(text, "rookery_cluster_mails_out_total"))
        buckets = []
        for labels, v in metric_values(text, "rookery_cluster_latency_seconds_bucket"):
            m = re.search(r'le="([^"]+)"', labels)
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets.append((le, v))
        buckets.sort()
        rows.append((i, sessions, mails_in, mails_out,
                     bucket_quantile(buckets, 0.5), bucket_quantile(buckets, 0.99)))
    return rows


def phase_bounds(summary, samples, loadgen_start_s):
    """(name, from_s, to_s) on the sampler's clock."""
    cfg = summary["config"]
    ramp_s = summary["phases_ms"]["ramp"] / 1000
    hold_s = cfg.get("hold_first_ms", 0) / 1000
    chat_s = cfg["duration_ms"] / 1000
    t = loadgen_start_s
    out = [("ramp", t, t + ramp_s)]
    t += ramp_s
    out.append(("hold (idle)", t, t + hold_s))
    t += hold_s
    storm = summary.get("chat_storm")
    if storm and cfg.get("chat_storm"):
        at = cfg["chat_storm"]["at_ms"] / 1000
        out.append(("chat", t, t + at))
        back = (storm.get("back_ms") or 0) / 1000
        out.append(("chat + storm", t + at, t + at + max(back, 5)))
        out.append(("chat after the storm", t + at + max(back, 5), t + chat_s))
    else:
        out.append(("chat", t, t + chat_s))
    return out


def window_rate(samples, key, lo, hi):
    """Mean per-second increase of a cumulative column between the samples nearest lo, hi."""
    inside = [s for s in samples if lo <= s["t_s"] <= hi]
    if len(inside) < 2:
        return None
    a, b = inside[0], inside[-1]
    dt = b["t_s"] - a["t_s"]
    return (b[key] - a[key]) / dt if dt > 0 else None


def svg_lines(path, title, samples, series, y_label):
    """A plain SVG line chart: series = [(column, label, scale, colour)]."""
    w, h, left, bottom = 760, 320, 70, 40
    xs = [s["t_s"] for s in samples]
    if not xs:
        return
    xmax = max(xs) or 1
    values = [s[c] * scale for c, _, scale, _ in series for s in samples]
    ymax = max(values + [1])
    def px(x):
        return left + (w - left - 20) * x / xmax
    def py(y):
        return h - bottom - (h - bottom - 30) * y / ymax
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{w / 2}" y="18" text-anchor="middle">{title}</text>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - 20}" y2="{h - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="30" x2="{left}" y2="{h - bottom}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">seconds</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" '
             f'text-anchor="middle">{y_label}</text>']
    for k in range(5):
        y = ymax * k / 4
        parts.append(f'<text x="{left - 4}" y="{py(y) + 4}" text-anchor="end">{y:,.1f}</text>')
        x = xmax * k / 4
        parts.append(f'<text x="{px(x)}" y="{h - bottom + 14}" text-anchor="middle">{x:.0f}</text>')
    for n, (column, label, scale, colour) in enumerate(series):
        points = " ".join(f"{px(s['t_s']):.1f},{py(s[column] * scale):.1f}" for s in samples)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        parts.append(f'<text x="{left + 10}" y="{44 + 14 * n}" fill="{colour}">{label}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


# The scale model's constants that this run does not measure, each from a recorded run.
TLS_EXTRA_B = 1190  # idle TLS 1.3 session over plaintext, results/20261207-195913-tls-idle
US_PER_MSG = 23.75  # rookery, one core, 16,000 msgs/s at 38%, results/20261128-200347-vs-ejabberd
US_PER_LOGIN = 68  # plaintext, 13,272 logins/s at 90% of a core, same results
US_PER_LOGIN_TLS = 279  # TLS 1.3 full handshake, 3,012/s at 84%, results/20261207-202115-vs-ejabberd
US_PER_KEEPALIVE = 5  # a whitespace ping: one read completion (estimate, when not measured)
WIRE_BYTES_PER_MSG = 1000  # a chat stanza in and out plus its acks, both directions (estimate)


def scale_model(kernel_pair, engine_user, keepalive_us=None):
    """The projection table: a bare-metal server, no descriptor cap, from per-session costs."""
    cores, ram, nic_bps = 64, 256 * 2**30, 2 * 100e9
    usable = 0.9 * ram
    kernel = kernel_pair / 2  # the server's end of a loopback pair
    plain = kernel + engine_user
    tls = plain + TLS_EXTRA_B
    fit_plain, fit_tls = usable / plain, usable / tls
    measured_keepalive = keepalive_us is not None
    keepalive_us = keepalive_us if measured_keepalive else US_PER_KEEPALIVE
    keepalive_source = (
        "measured in the hold: the nodes' CPU over the keepalives per second, one per session "
        "per interval; here 53 processes are each woken for a few pings per turn, so this is "
        "an upper bound for one big process" if measured_keepalive else "an estimate")
    rows = [
        "## Scale model (a projection, not a measurement)", "",
        "A bare-metal server with 64 cores, 256 GiB and 2 x 100 GbE, one rookery process with "
        "a shard per core and no descriptor cap (LimitNOFILE raised; fs.nr_open allows up to "
        "1,073,741,816), clients remote (the kernel holds one socket per session, not two as "
        "on this box). Inputs: this run's kernel slab per pair / 2 "
        f"= {kernel:,.0f} B and engine user space {engine_user:,.0f} B per session; from other "
        f"recorded runs: TLS +{TLS_EXTRA_B:,} B per session, {US_PER_MSG} us of server CPU per "
        f"message, {US_PER_LOGIN} us per plaintext login and {US_PER_LOGIN_TLS} us per TLS 1.3 "
        f"full-handshake login (sources in million-report.py); {keepalive_us:,.0f} us of server CPU "
        f"per whitespace keepalive ({keepalive_source}). "
        f"Estimate: {WIRE_BYTES_PER_MSG} B on the wire per message.", "",
        "| | plaintext | TLS 1.3 |", "|---|---|---|",
        f"| bytes per idle session (kernel + user) | {plain:,.0f} | {tls:,.0f} |",
        f"| sessions in 90% of 256 GiB | {fit_plain / 1e6:,.1f} M | {fit_tls / 1e6:,.1f} M |",
    ]
    for n in (2e6, 10e6):
        rows.append(f"| memory at {n / 1e6:.0f} M sessions | {n * plain / 2**30:,.1f} GiB | "
                    f"{n * tls / 2**30:,.1f} GiB |")
    for n in (2e6, 10e6):
        rows.append(f"| everyone logs in again, {n / 1e6:.0f} M sessions (CPU of 64 cores) | "
                    f"{n * US_PER_LOGIN / 1e6 / cores:,.1f} s | "
                    f"{n * US_PER_LOGIN_TLS / 1e6 / cores:,.1f} s |")
    msgs = cores * 1e6 / US_PER_MSG
    rows += [
        f"| messages/s, all 64 cores (CPU) | {msgs / 1e6:,.1f} M | lower (AES-GCM per byte) |",
        f"| messages/s the NICs carry at {WIRE_BYTES_PER_MSG} B each | "
        f"{nic_bps / 8 / WIRE_BYTES_PER_MSG / 1e6:,.0f} M | same |",
        f"| keepalives, 10 M sessions x 1 per 4 min | "
        f"{10e6 / 240 * keepalive_us / 1e6 / cores * 100:,.1f}% of the CPU | same |",
        "",
        f"What caps first: memory, at about {fit_plain / 1e6:,.0f} M plaintext or "
        f"{fit_tls / 1e6:,.0f} M TLS sessions; well before it, the CPU for a reconnect storm "
        "decides how fast such a server can refill (the login rows), and the message rate is "
        "bounded by CPU, not by the NICs. On this box the cap was the 20,000-descriptor limit "
        "per process, which split the million over the cluster's nodes (so most messages "
        "crossed nodes over NATS: a cost a single large process does not pay).",
        "",
    ]
    return rows


def main():
    out, clients, nodes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    samples = load_samples(os.path.join(out, "samples.csv"))
    summary, run_dir = summary_of(out)
    run_txt = open(os.path.join(out, "run.txt")).read() if os.path.exists(
        os.path.join(out, "run.txt")) else ""
    m = re.search(r"loadgen_start_s (\d+)", run_txt)
    loadgen_start_s = float(m.group(1)) if m else 0.0
    lines = ["# One million sessions on one box", "", "```", run_txt.strip(), "```", ""]
    check = os.path.join(out, "check.txt")
    if os.path.exists(check):
        lines += ["Host check before the run (`rookery-tune check --role both`, in the namespace "
                  "after the profile was applied):", "", "```",
                  open(check).read().strip(), "```", ""]
    base = samples[0]
    if summary is None:
        lines.append("rookery-load left no summary.json: the run did not finish (see progress.log).")
    else:
        counts = summary["counts"]
        bounds = phase_bounds(summary, samples, loadgen_start_s)
        chat_from = next(lo for name, lo, _ in bounds if name.startswith("chat"))
        before_chat = [s for s in samples if s["t_s"] <= chat_from] or samples
        hold = max(before_chat, key=lambda s: (s["sessions"], s["t_s"]))
        sessions = hold["sessions"] or 1
        kernel = (hold["slab_kib"] - base["slab_kib"]) * 1024 / sessions
        unreclaim = (hold["sunreclaim_kib"] - base["sunreclaim_kib"]) * 1024 / sessions
        mem_drop = (base["mem_available_kib"] - hold["mem_available_kib"]) * 1024 / sessions
        engine = (hold["nodes_rss_kib"] - base["nodes_rss_kib"]) * 1024 / sessions
        loadgen = hold["loadgen_rss_kib"] * 1024 / clients
        all_in = kernel + engine + loadgen
        e2e = summary["latency_us"]["e2e_corrected"]
        login = summary["latency_us"]["login"]
        msgs = counts["messages"]
        acks = counts.get("acks") or {}
        ramp_s = summary["phases_ms"]["ramp"] / 1000
        lines += [
            "## The run", "",
            "| | |", "|---|---|",
            f"| sessions held at once (sum of the nodes' rookery_sessions) | {int(hold['sessions']):,} at t={hold['t_s']:.0f} s |",
            f"| clients online at peak (rookery-load) | {counts['peak_online']:,} of {clients:,} |",
            f"| time to all sessions up (ramp) | {ramp_s:.0f} s |",
            f"| login rate over the ramp | {summary['security']['ramp_logins_per_s'] or 0:,.0f} logins/s |",
            f"| login p50 / p99 | {login['p50_us'] / 1000:.1f} / {login['p99_us'] / 1000:.1f} ms |",
            f"| messages sent / delivered / lost | {msgs['sent']:,} / {msgs['delivered']:,} / {msgs['lost']:,} |",
            f"| acknowledged (XEP-0198) lost | {acks.get('acked_lost', 'n/a')} of {acks.get('acknowledged', 0):,} |",
            f"| unacknowledged when their stream dropped (storm), lost | {acks.get('unacked_lost', 'n/a')} of {acks.get('unacked', 0):,} |",
            f"| duplicates (redelivered after a drop, at-least-once) | {msgs['duplicated']:,} |",
            f"| chat e2e p50 / p99 / p99.9 (CO-corrected) | {e2e['p50_us'] / 1000:.2f} / {e2e['p99_us'] / 1000:.2f} / {e2e['p999_us'] / 1000:.2f} ms |",
            f"| errors | {counts['errors_total']} {json.dumps({k: v for k, v in counts['errors'].items() if v})} |",
        ]
        storm = summary.get("chat_storm")
        if storm:
            sl = summary["latency_us"].get("storm_login") or {}
            back = storm.get("back_ms")
            lines.append(
                f"| storm | {storm['dropped']:,} dropped, {storm['logins']:,} logins again, "
                f"last back after {back / 1000 if back else float('nan'):.1f} s "
                f"({storm.get('logins_per_s') or 0:,.0f} logins/s); storm login p50 / p99 "
                f"{sl.get('p50_us', 0) / 1000:.0f} / {sl.get('p99_us', 0) / 1000:.0f} ms |")
        lines += ["", f"Run folder: `{os.path.relpath(run_dir, out)}/` (summary.json, "
                  "timeline.svg, latency-percentiles.svg, .hgrm/.hlog).", ""]
        lines += [
            "## Memory per session at the hold", "",
            f"Sample at t={hold['t_s']:.0f} s ({int(sessions):,} sessions) minus the one before the ramp.", "",
            "| what | bytes |", "|---|---|",
            f"| kernel slab per connection pair (both ends: server + client socket) | {kernel:,.0f} |",
            f"| of which unreclaimable | {unreclaim:,.0f} |",
            f"| engine user space (RSS of the {nodes} nodes) per session | {engine:,.0f} |",
            f"| rookery-load user space (RSS of its processes) per client | {loadgen:,.0f} |",
            f"| rookery-load's own figure (marginal RSS + slot) | {summary['memory'].get('per_client_bytes')} |",
            f"| all-in per pair (kernel slab + engine + rookery-load, the three rows above) | {all_in:,.0f} |",
            f"| MemAvailable drop per pair (noisy: page cache, other processes) | {mem_drop:,.0f} |",
            f"| TCP sockets in use / tcp_mem pages at the hold | {int(hold['tcp_inuse']):,} / {int(hold['tcp_mem_pages']):,} |",
            "",
        ]
        keepalive_ms = summary["config"].get("keepalive_ms", 0)
        hold_window = next(((lo, hi) for name, lo, hi in bounds if name.startswith("hold")), None)
        keepalive_us = None
        if keepalive_ms and hold_window:
            hold_cores = window_rate(samples, "nodes_cpu_ticks", *hold_window)
            if hold_cores:
                per_s = sessions / (keepalive_ms / 1000)
                keepalive_us = hold_cores / HZ * 1e6 / per_s
        scale_rows = scale_model(kernel, engine, keepalive_us)
        lines += ["## CPU per phase (cores; 2 on this machine)", "",
                  "| phase | s | nodes | nats-server | rookery-load | cross-node mails/s |",
                  "|---|---|---|---|---|---|"]
        for name, lo, hi in bounds:
            rates = [window_rate(samples, k, lo, hi) for k in
                     ("nodes_cpu_ticks", "nats_cpu_ticks", "loadgen_cpu_ticks", "cluster_mails_out")]
            cells = [f"{r / HZ:.2f}" if r is not None else "-" for r in rates[:3]]
            mails = f"{rates[3]:,.0f}" if rates[3] is not None else "-"
            lines.append(f"| {name} | {hi - lo:.0f} | {' | '.join(cells)} | {mails} |")
        lines.append("")
    if summary is not None:
        lines += scale_rows
    rows = per_node(out, nodes)
    if rows:
        lines += ["## Per node (each node's /metrics at the end)", "",
                  "Bus latency: `rookery_cluster_latency_seconds`, batches from other nodes "
                  "(receive time minus the sender's first send), upper bound of the bucket.", "",
                  "| node | sessions at the end | cross-node mails in | out | bus p50 | bus p99 |",
                  "|---|---|---|---|---|---|"]
        def ms(v):
            return "-" if v is None else ("inf" if v == float("inf") else f"{v * 1000:.1f} ms")
        for i, s, mi, mo, p50, p99 in rows:
            lines.append(f"| {i} | {int(s):,} | {int(mi):,} | {int(mo):,} | {ms(p50)} | {ms(p99)} |")
        lines.append("")
    svg_lines(os.path.join(out, "sessions.svg"), "sessions held (sum over nodes)", samples,
              [("sessions", "sessions", 1, "#1f77b4")], "sessions")
    svg_lines(os.path.join(out, "memory.svg"), "memory (GiB)", samples,
              [("slab_kib", "kernel slab", 1 / 1048576, "#d62728"),
               ("nodes_rss_kib", "nodes RSS", 1 / 1048576, "#1f77b4"),
               ("loadgen_rss_kib", "rookery-load RSS", 1 / 1048576, "#2ca02c")], "GiB")
    cpu = []
    for a, b in zip(samples, samples[1:]):
        dt = (b["t_s"] - a["t_s"]) or 1
        cpu.append({"t_s": b["t_s"],
                    "nodes": (b["nodes_cpu_ticks"] - a["nodes_cpu_ticks"]) / HZ / dt,
                    "nats": (b["nats_cpu_ticks"] - a["nats_cpu_ticks"]) / HZ / dt,
                    "load": max(0, b["loadgen_cpu_ticks"] - a["loadgen_cpu_ticks"]) / HZ / dt})
    svg_lines(os.path.join(out, "cpu.svg"), "CPU (cores)", cpu,
              [("nodes", "nodes", 1, "#1f77b4"), ("nats", "nats-server", 1, "#ff7f0e"),
               ("load", "rookery-load", 1, "#2ca02c")], "cores")
    lines += ["Plots: sessions.svg (sessions over time), memory.svg, cpu.svg; the run folder's "
              "timeline.svg (online, logins/s, messages/s per second).", ""]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
