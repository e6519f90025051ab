"""Write the table of bench/results/ingest-*.json (bench/ingest.py --json) into bench/README.md, between its
`<!-- ingest-runs -->` markers: the figures are never typed by hand.

    .venv/bin/python bench/ingest_table.py
"""

from __future__ import annotations

from tables import runs, write_marked


def _load(doc: dict) -> str:
    start, end = doc.get("loadavg_start"), doc.get("loadavg")
    return f"{start[0]:.1f} → {end[0]:.1f}" if start and end else "—"


def table() -> str:
    lines = [
        "| run | measured (UTC) | load start → end | size per mode | in-memory SHA-256 + AES (1 thread) | "
        "disk write + fsync | camera mode (ratio, goal ≥ 0.8) | whole segments (ratio) | "
        "server CPU per GB: camera / whole | vault code without HTTP (ratio) |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, doc in runs("ingest-*.json"):
        f = doc["figures"]
        gb = f["bytes_per_mode"] / 1e9

        def mode(m: str, f: dict = f) -> str:
            return f"{f[f'{m}_mb_s']:.0f} MB/s ({f[f'{m}_ratio']:.2f})" if f"{m}_mb_s" in f else "—"

        def cpu(m: str, f: dict = f, gb: float = gb) -> str:
            key = f"{m}_server_user_s"
            return f"{(f[key] + f[f'{m}_server_sys_s']) / gb:.2f} s" if key in f else "—"

        lines.append(
            f"| {name} | {doc['date']} | {_load(doc)} | {doc['size'].split(' per mode')[0]} | "
            f"{f['in_memory_mb_s']:.0f} MB/s | {f['disk_mb_s']:.0f} MB/s | {mode('camera')} | {mode('whole')} | "
            f"{cpu('camera')} / {cpu('whole')} | {mode('direct')} |"
        )
    return "\n".join(lines)


def main() -> None:
    write_marked("ingest-runs", table())


if __name__ == "__main__":
    main()
