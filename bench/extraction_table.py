"""Write the table of bench/results/extraction-*.json (bench/extraction.py --json) into bench/README.md, between
its `<!-- extraction-results -->` markers: the figures are never typed by hand.

    .venv/bin/python bench/extraction_table.py
"""

from __future__ import annotations

from tables import load_change, runs, write_marked


def table() -> str:
    lines = [
        "| run | measured (UTC) | load before → after | size | packaging | in-memory SHA-256 + decrypt (1 thread) "
        "| disk write + fsync | ratio to min (goal ≥ 0.8) | CPU per MiB: packaging / in-memory | "
        "the package's work (1 thread) | best ratio the cores allow |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, doc in runs("extraction-*.json"):
        f = doc["figures"]
        cpu = (
            f"{f['packaging_cpu_ms_per_mib']:.2f} / {f['in_memory_cpu_ms_per_mib']:.2f} ms"
            if "packaging_cpu_ms_per_mib" in f
            else "—"
        )
        work = f"{f['package_work_mb_s']:.0f} MB/s" if "package_work_mb_s" in f else "—"
        ceiling = f"{f['ceiling_ratio']:.2f}" if "ceiling_ratio" in f else "—"
        lines.append(
            f"| {name} | {f.get('measured_at', doc['date'])} | {load_change(doc)} | {doc['size']} | "
            f"{f['packaging_mb_s']:.0f} MB/s ({f['packaging_wall_s']:.2f} s) | {f['in_memory_mb_s']:.0f} MB/s | "
            f"{f['disk_mb_s']:.0f} MB/s | {f['ratio_to_bound']:.2f} | {cpu} | {work} | {ceiling} |"
        )
    return "\n".join(lines)


def main() -> None:
    write_marked("extraction-results", table())


if __name__ == "__main__":
    main()
