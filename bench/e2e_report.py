#!/usr/bin/env python3
"""Report of make bench-e2e (bench/e2e.sh): reads the results file (one "phase run key value" line
per measurement), prints BENCH lines, and writes e2e.md (tables: medians with min-max over the
runs) and e2e.png (throughput and latency) into the output folder. With --append, adds e2e.md to
docs/benchmarks.md and copies the plot to docs/img/bench-e2e.png.
"""
import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)


def load(path):
    """{phase: {key: [value per run]}}"""
    data = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for line in f:
            phase, _run, key, value = line.rstrip("\n").split("\t")
            data[phase][key].append(float(value))
    return data


def med(values):
    return statistics.median(values) if values else None


def spread(values, fmt):
    """'median (min-max, n runs)' in fmt."""
    if not values:
        return "not measured"
    m = fmt.format(med(values))
    if len(values) == 1:
        return m + " (1 run)"
    return f"{m} ({fmt.format(min(values))}–{fmt.format(max(values))}, {len(values)} runs)"


def command_output(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine():
    cpu = "unknown CPU"
    for line in command_output("lscpu").splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = command_output("psql", "-X", "-t", "-A", "-c", "SHOW server_version")
    return (f"{os.cpu_count()} vCPU ({cpu}), {mem_gib:.0f} GiB, {platform.system()} "
            f"{platform.release()}; PostgreSQL {pg.split()[0] if pg != 'unknown' else pg}")


def mixed_section(mixed, a):
    """The mixed phase's lines: fraud (and news) latency with and without articles alongside."""
    md = ["", f"Fraud scoring with news alongside: {a.mixed_rate:,} events/s with and without "
          f"{a.news_rate:,} articles/s (the news model loaded in both), {a.latency_seconds} s "
          "counted after a warm-up, the variants interleaved run by run (ms, Kafka message "
          "timestamp to its row's commit):", "",
          "| variant | lane | p50 | p99 | max |", "|---|---|---|---|---|"]
    for key, label, lanes in (("with_news", "with news", ("fraud", "news")),
                              ("without_news", "without news", ("fraud",))):
        x = mixed.get(key)
        for lane in lanes if x else ():
            md.append(f"| {label} | {lane} | " +
                      " | ".join(spread(x[f"{lane}_{q}_ms"], "{:.1f}") for q in ("p50", "p99", "max")) + " |")
        if x and "alert_p99_ms" in x:
            md.append(f"| {label} | fraud alert NOTIFY | " +
                      " | ".join(spread(x[f"alert_{q}_ms"], "{:.0f}") for q in ("p50", "p99", "max")) + " |")
    md.append("")
    md.append("Fraud alert NOTIFY: of the alerts raised in the counted window, the Kafka timestamp of "
              "the event that raised each to a LISTEN client reading its NOTIFY (milliseconds, the "
              "client's clock read when its poll returned).")
    md.append("")
    w, wo = mixed.get("with_news"), mixed.get("without_news")
    if w and wo:
        pairs = [x / y for x, y in zip(w["fraud_p99_ms"], wo["fraud_p99_ms"])]
        ratio = med(w["fraud_p99_ms"]) / med(wo["fraud_p99_ms"])
        md.append(f"- fraud p99 with news / without: {ratio:.2f}× "
                  f"(of the medians; per run, with against the without that followed it: "
                  f"{spread(pairs, '{:.2f}')})")
    if w:
        md.append(f"- articles committed in the counted window (by commit time): "
                  f"{spread(w['news_committed'], '{:,.0f}')}, of {spread(w['news_offered'], '{:,.0f}')} "
                  "offered in it (by Kafka timestamp); every article was scored")
    if w and wo:
        md.append(f"- vigild CPU s under load, with news {spread(w['cpu_s'], '{:.1f}')} (its news model "
                  f"server busy {spread(w['news_busy_s'], '{:.1f}')} s), without "
                  f"{spread(wo['cpu_s'], '{:.1f}')}")
    return md


def alert_cost_pct(on, off):
    """What alerting takes off the throughput, in % of the medians' throughput without it."""
    return 100 * (1 - med(on["events_per_s"]) / med(off["events_per_s"]))


def alerts_section(on, off, a):
    """The alerts phase's lines: throughput with the built-in rules and without alerting."""
    md = ["", f"What alerting costs: {a.alert_events:,} events of seed 11 among 10,000 users on the "
          "simulated clock the risk model was trained on (3 events/s of event time), with the "
          "built-in alert rules and with `alerts.rules=off`, interleaved run by run:", "",
          "| alerting | events/s | vigild CPU s per M events | PostgreSQL CPU s per M events |",
          "|---|---|---|---|"]
    for label, x in (("built-in rules", on), ("off", off)):
        md.append(f"| {label} | {spread(x['events_per_s'], '{:,.0f}')} | "
                  f"{spread(x['cpu_s_per_m'], '{:.2f}')} | {spread(x['pg_cpu_s_per_m'], '{:.2f}')} |")
    md.append("")
    pairs = [x / y for x, y in zip(on["events_per_s"], off["events_per_s"])]
    md.append(f"- cost: {alert_cost_pct(on, off):.1f}% of the throughput without alerting (of the medians; with rules / "
              f"off per run: {spread(pairs, '{:.2f}')}; goal ≤ 5%)")
    md.append(f"- fraud alerts raised: {spread(on['alerts'], '{:,.0f}')}, holding "
              f"{spread(on['alert_events'], '{:,.0f}')} events "
              f"({100 * med(on['alert_events']) / a.alert_events:.2f}% of them)")
    return md


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--latency-seconds", type=int, required=True)
    ap.add_argument("--mixed-rate", type=int, default=10000, help="the mixed phase's events/s")
    ap.add_argument("--news-rate", type=int, default=50, help="the mixed phase's articles/s")
    ap.add_argument("--alert-events", type=int, default=500000, help="the alerts phase's events")
    ap.add_argument("--command", required=True)
    ap.add_argument("--append", help="docs/benchmarks.md to append the report to")
    a = ap.parse_args()
    d = load(a.results)
    v, c, p = d.get("vigild", {}), d.get("ceiling", {}), d.get("peer", {})
    rate = {k: med(x.get("events_per_s", [])) for k, x in (("vigild", v), ("ceiling", c), ("peer", p))}

    bench = []
    for name, key in (("vigild", "vigild"), ("ceiling", "ceiling"), ("peer", "peer")):
        if rate[key]:
            bench.append(f"BENCH e2e_{name}_events_per_s {rate[key]:.0f} events/s")
    if v.get("cpu_s_per_m"):
        bench.append(f"BENCH e2e_vigild_cpu_s_per_m_events {med(v['cpu_s_per_m']):.2f} s")
    if v.get("peak_rss_mib"):
        bench.append(f"BENCH e2e_vigild_peak_rss {med(v['peak_rss_mib']):.0f} MiB")
    lat_rates = sorted(int(ph[len("latency"):]) for ph in d if ph.startswith("latency"))
    for r in lat_rates:
        bench.append(f"BENCH e2e_latency_p99_at_{r} {med(d[f'latency{r}']['p99_ms']):.1f} ms")
    mixed = {k: d[f"mixed_{k}"] for k in ("with_news", "without_news") if f"mixed_{k}" in d}
    for k, x in mixed.items():
        bench.append(f"BENCH e2e_mixed_fraud_p99_ms_{k} {med(x['fraud_p99_ms']):.1f} ms")
    if "with_news" in mixed:
        bench.append(f"BENCH e2e_mixed_news_p99_ms {med(mixed['with_news']['news_p99_ms']):.1f} ms")
    for k, x in mixed.items():
        if "alert_p99_ms" in x:
            bench.append(f"BENCH e2e_mixed_alert_notify_p99_ms_{k} {med(x['alert_p99_ms']):.0f} ms")
    if len(mixed) == 2:
        ratio = med(mixed["with_news"]["fraud_p99_ms"]) / med(mixed["without_news"]["fraud_p99_ms"])
        bench.append(f"BENCH e2e_mixed_fraud_p99_ratio {ratio:.2f} x")
    on, off = d.get("alerts_rules"), d.get("alerts_off")
    if on and off:
        bench.append(f"BENCH e2e_alerts_events_per_s_rules {med(on['events_per_s']):.0f} events/s")
        bench.append(f"BENCH e2e_alerts_events_per_s_off {med(off['events_per_s']):.0f} events/s")
        bench.append(f"BENCH e2e_alerts_cost_pct {alert_cost_pct(on, off):.1f} %")
    print("\n".join(bench))

    md = []
    md.append(f"### End to end, {datetime.date.today().isoformat()}: `make bench-e2e`")
    md.append("")
    md.append(f"Machine: {machine()}. Command: `{a.command}` ({a.events:,} events, "
              f"{a.users:,} users, {a.runs} runs of each; bench/e2e.sh says what each figure "
              "covers). Figures are medians with min–max over the runs.")
    md.append("")
    rows = (("vigild (risk model, 70 features)", v), ("raw ceiling (kcat + psql \\copy)", c),
            ("Python peer (bench/peer)", p))
    rows = [(label, x) for label, x in rows if x]  # none with --only latency,mixed
    if rows:
        md.append("| pipeline | events/s | its CPU s per M events | PostgreSQL CPU s per M events |")
        md.append("|---|---|---|---|")
    for label, x in rows:
        md.append(f"| {label} | {spread(x.get('events_per_s', []), '{:,.0f}')} | "
                  f"{spread(x.get('cpu_s_per_m', []), '{:.2f}') if x.get('cpu_s_per_m') else '–'} | "
                  f"{spread(x.get('pg_cpu_s_per_m', []), '{:.2f}')} |")
    if rows:
        md.append("")
    goals = []
    if rate["vigild"] and rate["peer"]:
        goals.append(f"vigild / peer = {rate['vigild'] / rate['peer']:.1f}× (goal ≥ 10×)")
    if rate["vigild"] and rate["ceiling"]:
        goals.append(f"vigild / ceiling = {100 * rate['vigild'] / rate['ceiling']:.0f}% (goal ≥ 85%)")
    if v.get("peak_rss_mib"):
        goals.append(f"vigild peak RSS {spread(v['peak_rss_mib'], '{:.0f}')} MiB with "
                     f"{med(v['entities']):,.0f} live entities (goal ≤ 1,024 MiB at 1,000,000)")
    if c.get("kcat_s"):
        goals.append(f"in the ceiling runs kcat alone took {spread(c['kcat_s'], '{:.2f}')} s and "
                     f"psql \\copy {spread(c['copy_s'], '{:.2f}')} s")
    for g in goals:
        md.append(f"- {g}")
    if v.get("events_per_s"):
        wall = 1e6 / rate["vigild"]
        stages = [(s, med(v.get(f"{s}_s", [])) / a.events * 1e6) for s in
                  ("decode", "featurize", "infer", "write") if v.get(f"{s}_s")]
        md.append("")
        md.append("vigild's stages per million events (seconds, from the stage histograms' sums). "
                  "They overlap: decode, featurize and infer run on the events lane's reader while "
                  "its writers (ingest.events_writers) COPY and commit earlier batches, so they do "
                  "not add up to the wall time; write is summed over the writers and is mostly "
                  "waiting on PostgreSQL:")
        md.append("")
        md.append("| " + " | ".join(s for s, _ in stages) + " | wall |")
        md.append("|" + "---|" * (len(stages) + 1))
        md.append("| " + " | ".join(f"{x:.2f}" for _, x in stages) + f" | {wall:.2f} |")
    if lat_rates:
        md.append("")
        md.append(f"Latency, Kafka message timestamp to its row's commit, {a.latency_seconds} s at "
                  "each offered rate after a warm-up (ms):")
        md.append("")
        md.append("| offered events/s | p50 | p99 | max |")
        md.append("|---|---|---|---|")
        for r in lat_rates:
            x = d[f"latency{r}"]
            md.append(f"| {r:,} | {spread(x['p50_ms'], '{:.1f}')} | {spread(x['p99_ms'], '{:.1f}')} | "
                      f"{spread(x['max_ms'], '{:.1f}')} |")
    if mixed:
        md.extend(mixed_section(mixed, a))
    if on and off:
        md.extend(alerts_section(on, off, a))
    md.append("")
    md.append("![throughput and latency](img/bench-e2e.png)")
    md.append("")
    report = "\n".join(md) + "\n"
    with open(os.path.join(a.out, "e2e.md"), "w") as f:
        f.write(report)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    names = [n for n, x in (("vigild", v), ("raw ceiling", c), ("Python peer", p)) if x]
    series = [x["events_per_s"] for x in (v, c, p) if x]
    meds = [med(s) for s in series]
    ax.bar(names, meds, color=["#2b6cb0", "#718096", "#d69e2e"][:len(names)],
           yerr=[[m - min(s) for m, s in zip(meds, series)], [max(s) - m for m, s in zip(meds, series)]],
           capsize=4)
    for i, m in enumerate(meds):
        ax.text(i, m, f"{m:,.0f}", ha="center", va="bottom")
    ax.set_ylabel("events/s (median, min–max)")
    ax.set_title(f"Throughput, {a.events:,} events")
    ax = axes[1]
    if lat_rates:
        for key, style in (("p50_ms", "o-"), ("p99_ms", "s-"), ("max_ms", "^--")):
            ax.plot(lat_rates, [med(d[f"latency{r}"][key]) for r in lat_rates], style,
                    label=key.split("_")[0])
        ax.axhline(50, color="red", linewidth=0.8, linestyle=":", label="50 ms goal (at 10k/s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered events/s")
        ax.set_ylabel("ms, Kafka timestamp to commit")
        ax.set_title("vigild latency")
        ax.legend()
    fig.tight_layout()
    png = os.path.join(a.out, "e2e.png")
    fig.savefig(png, dpi=100)
    print(f"# report: {os.path.join(a.out, 'e2e.md')}, plot: {png}", file=sys.stderr)

    if a.append:
        with open(a.append, "a") as f:
            f.write("\n" + report)
        img = os.path.join(os.path.dirname(a.append), "img")
        os.makedirs(img, exist_ok=True)
        shutil.copyfile(png, os.path.join(img, "bench-e2e.png"))
        print(f"# appended to {a.append}; plot copied to {img}/bench-e2e.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
