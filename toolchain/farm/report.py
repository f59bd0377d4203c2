"""Per-device throughput, retries and failures of a farm campaign: JSON and a Markdown table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LINK_SUMS = ("requests", "retries", "timeouts", "early_retries", "corrupt_frames",
             "stale_replies", "reuploads", "bytes_out", "bytes_in")


def farm_summary(stats: Sequence[Any], wall_s: float) -> dict:
    """``{"farm": {...}, "link": {...}}``: the devices' rows and the link counters summed (the
    one-device report's ``link`` keys, so existing readers keep working)."""
    rows = [s.as_dict() for s in stats]
    queries = sum(r["queries"] for r in rows)
    link = {k: sum(int(r["link"].get(k, 0)) for r in rows) for k in LINK_SUMS}
    return {"farm": {"devices": rows, "wall_s": round(wall_s, 3),
                     "queries": queries, "queries_per_s": round(queries / max(wall_s, 1e-9), 2),
                     "used": sum(1 for r in rows if r["items"]),
                     "failed": sum(1 for r in rows if r["failed"]),
                     "requeued": sum(r["requeued"] for r in rows)},
            "link": link}


def farm_table(farm: dict) -> list[str]:
    """Markdown lines: one row per device, then the total."""
    out = ["| device | host | items | queries | busy s | queries/s | retries | requeued | "
           "failure |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in farm["devices"]:
        qps = "" if r["queries_per_s"] is None else f"{r['queries_per_s']:.1f}"
        fail = (r["failed"] or "").replace("|", "/")
        out.append(f"| {r['name']} | {r['host']} | {r['items']} | {r['queries']} | "
                   f"{r['busy_s']:.1f} | {qps} | {r['retries']} | {r['requeued']} | {fail} |")
    out.append(f"| **all** ({len(farm['devices'])}) | | "
               f"{sum(r['items'] for r in farm['devices'])} | {farm['queries']} | "
               f"{farm['wall_s']:.1f} wall | {farm['queries_per_s']:.1f} | "
               f"{sum(r['retries'] for r in farm['devices'])} | {farm['requeued']} | "
               f"{farm['failed']} failed |")
    return out
