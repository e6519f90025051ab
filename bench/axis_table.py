"""Write the table of bench/results/axis-*.json (bench/axis.py --json) into bench/README.md, between its
`<!-- axis-results -->` markers: the figures are never typed by hand.

    .venv/bin/python bench/axis_table.py
"""

from __future__ import annotations

from tables import load_change, runs, write_marked


def table() -> str:
    lines = [
        "| run | measured (UTC) | load before → after | size | PUT + Complete | hash + encrypt (1 thread) | disk | "
        "ratio (goal ≥ 0.5) | MD5 alone (ceiling ratio) | server CPU per GiB | peak RSS (idle) |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, doc in runs("axis-*.json"):
        f = doc["figures"]
        rows = {r[0]: r[1] for r in doc["rows"]}
        cpu = f"{f['server_cpu_s_per_gib']:.2f} s" if "server_cpu_s_per_gib" in f else "—"
        md5 = f"{f['md5_mb_s']:.0f} MB/s ({f['md5_ceiling_ratio']:.2f})" if "md5_mb_s" in f else "—"
        lines.append(
            f"| {name} | {f.get('measured_at', doc['date'])} | {load_change(doc)} | {doc['size']} | "
            f"{f['rate_mb_s']:.0f} MB/s | {f['hash_mb_s']:.0f} MB/s | {f['disk_mb_s']:.0f} MB/s | "
            f"{f['ratio']:.2f} | {md5} | {cpu} | {rows['server peak RSS during the PUT']} |"
        )
    return "\n".join(lines)


def main() -> None:
    write_marked("axis-results", table())


if __name__ == "__main__":
    main()
