"""Human-readable rendering with rich: inspect tables, the training display and summaries.

Every function takes the console to print on, so tests can render at a fixed width and the
CLI can send everything to stderr.
"""
from __future__ import annotations

import time
from typing import Any

RESIDUAL_KIND = {"E": "rel", "pt": "rel", "m": "rel", "eta": "abs", "phi": "abs"}


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    x = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(x) < 1000 or unit == "TB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.2f} {unit}"
        x /= 1000
    return str(x)


def residual_table(summary: dict[str, dict[str, float]], title: str = "residuals"):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in ("variable", "kind", "mean", "std", "p1", "p99", "p99 |r|", "max |r|", ">3σ"):
        t.add_column(col, justify="right" if col not in ("variable", "kind") else "left")
    order = ["E", "pt", "m", "eta", "phi", "px", "py", "pz"]
    for name, s in sorted(summary.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
        if not s.get("n"):
            continue
        t.add_row(name, RESIDUAL_KIND.get(name, "abs"), f"{s['mean']:.2e}", f"{s['std']:.2e}",
                  f"{s['p1']:.2e}", f"{s['p99']:.2e}", f"{s['p99_abs']:.2e}", f"{s['max_abs']:.2e}",
                  f"{s['frac_beyond_3sigma']:.2%}")
    return t


def print_inspect(info: dict[str, Any], console) -> None:
    from rich.table import Table

    if info["kind"] == "model":
        print_model(info, console)
        return
    if info["kind"] == "context_model":
        t = Table(title=f"context model {info['path']}", show_header=False, title_justify="left")
        t.add_column("field", style="bold")
        t.add_column("value")
        for field, value in (("name", info.get("name")), ("sha256 (what files record)", info["sha256"]),
                             ("streams", ", ".join(info["streams"])), ("created", info.get("created")),
                             ("trained on", ", ".join(f"{f.get('file')} ({f.get('sha256', '')[:12]}...)"
                                                      for f in info.get("trained_on") or [])),
                             ("jets", info.get("n_jets")), ("bytes", info["bytes"])):
            t.add_row(field, str(value))
        console.print(t)
        return
    h = info["header"]
    src = info.get("table") or h.get("source") or {}
    t = Table(title=f".aez file {info['path']}", show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value")
    source = h.get("source") or {}
    rows = [
        ("format version", info["format_version"]),
        ("written by", f"jetzip {h.get('jetzip_version')}"),
        *[(str(k), str(v)) for k, v in info.get("codec_description") or []],
        ("source", f"{source.get('file', src.get('file'))} ({source.get('format', src.get('format'))}, "
                   f"tree {src.get('tree')}, layout {src.get('layout')})"),
        ("columns", ", ".join(f"{r}={n}" for r, n in src.get("columns") or [])
         + (f"; counter {src['counter']}" if src.get("counter") else "")),
        ("units", f"{src.get('units')}"
         + (f" (inferred: {src.get('units_reason')})" if src.get("units_inferred") else "")),
        ("kept branches", _names([*(src.get("kept_branches") or []), *(src.get("jet_branches") or []),
                                  *(src.get("carried_branches") or [])])),
        ("not stored", f"{len(src.get('other_branches') or [])} other branch(es)"),
    ]
    chosen = (h.get("notes") or {}).get("coded_or_carried") or []
    if chosen:  # --collection all: collections smaller carried than coded (jetzip.choose)
        rows.append(("carried, not coded", _names([str(line).partition(":")[0] for line in chosen])
                     + " (why: --json, header.notes.coded_or_carried)"))
    if info.get("verified"):
        parts = info.get("bytes_by_part")
        if parts:
            total = max(int(info["bytes"]), 1)
            label = {"framing": "event counts and framing", "extras": "other objects", "side": "decoder"}
            shown = ", ".join(f"{label.get(name, name)} {_fmt_bytes(v)} ({v / total:.0%})"
                              for name, v in parts.items() if v)
        else:  # files before format 3.0
            shown = ", ".join(f"{k} {_fmt_bytes(info.get(v))}" for k, v in
                              (("jets", "payload_bytes"), ("decoder", "side_bytes"), ("other objects", "extras_bytes"))
                              if info.get(v))
        rows += [
            ("jets / events", f"{info['n_jets']} / {info['n_events']} in {info['n_chunks']} chunk(s)"),
            ("file size", f"{_fmt_bytes(info['bytes'])} ({shown})"),
            ("bytes per jet", "-" if info["bytes_per_jet"] is None else
             f"{info['bytes_per_jet']:.3f} ({info['ratio_to_float32']:.1%} of 4 x float32)"),
        ]
        for table in info.get("tables") or []:
            colls = "; ".join(f"{c['name'] or 'jets'} ({c['codec']}) {c['jets']} in {_fmt_bytes(c['bytes'])}"
                              + (f", {c['bytes'] / c['jets']:.2f} B each" if c["jets"] else "")
                              for c in table.get("collections") or [])
            name = table.get("name") or "of the file"  # Parquet and CSV tables have no name
            rows.append((f"table {name}", f"{table.get('entries')} entries; " + (colls or "no jets")
                         + f"; {table.get('carried_branches', 0)} carried branches in "
                         + _fmt_bytes(table.get("carried_bytes", 0))))
        streams = info.get("stream_bytes")
        if streams and info["n_jets"]:
            rows.append(("per column", ", ".join(f"{k} {8 * v / info['n_jets']:.2f}"
                                                 for k, v in streams.items()) + " bits/jet"))
        rows.append(("checksums", "all verified"))
        for line in info.get("payloads_not_verified") or []:
            rows.append(("payloads", f"not decoded: {line}"))
    else:
        rows.append(("checksums", "not verified (--no-verify)"))
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)


def print_model(info: dict[str, Any], console) -> None:
    from rich.table import Table

    arch = info["arch"]
    norm = info["normalization"]
    meta = info.get("metadata") or {}
    t = Table(title=f"model {info['path']}", show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value")
    sizes = [arch["n_features"], *arch["hidden"], arch["latent"], *reversed(arch["hidden"]), arch["n_features"]]
    rows = [
        ("name", info["name"]),
        ("architecture", f"{arch['name']}: {'-'.join(map(str, sizes))}, {arch['activation']}, "
                         f"{info['n_parameters']} parameters"),
        ("weights sha256", info["weights_sha256"]),
        ("normalization", f"{norm['kind']}; shift {[round(x, 4) for x in norm['shift']]}, "
                          f"scale {[round(x, 4) for x in norm['scale']]}"),
    ]
    if meta:
        ranges = meta.get("training_ranges") or {}
        data = meta.get("data") or []
        rows += [
            ("trained on", f"{meta.get('n_jets', '?')} jets from {len(data)} file(s): "
                           + ", ".join(d["file"] for d in data[:5])),
            ("training ranges", ", ".join(f"{k} {v[0]:.3g}..{v[1]:.3g}" for k, v in ranges.items())),
            ("options", ", ".join(f"{k}={v}" for k, v in (meta.get("options") or {}).items())),
            ("epochs", f"{len(info.get('history') or [])} (best {meta.get('best_epoch')}), "
                       f"{meta.get('train_seconds', 0):.0f} s on {meta.get('torch_threads', '?')} thread(s)"),
            ("losses", f"train {meta.get('final_train_loss')}, best validation {meta.get('best_val_loss')}"),
            ("jetzip", str(meta.get("jetzip_version"))),
        ]
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)
    if meta.get("val_residuals"):
        console.print(residual_table(meta["val_residuals"], "validation residuals"))


def print_train_summary(model, path: str, console) -> None:
    console.print(f"saved {path}: {model.arch.name}, best epoch {model.metadata.get('best_epoch')} "
                  f"of {len(model.history)}, validation loss {model.metadata.get('best_val_loss'):.3e}")
    console.print(residual_table(model.metadata["val_residuals"], "validation residuals"))


class TrainDisplay:
    """Live progress of training on stderr: epoch, batches, losses, learning rate, time left."""

    def __init__(self, console, enabled: bool = True, quiet: bool = False) -> None:
        self.console = console
        self.enabled = enabled
        self.quiet = quiet
        self.progress: Any = None  # a rich Progress while it shows
        self.t0 = time.perf_counter()

    def __enter__(self) -> "TrainDisplay":
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                     console=self.console, transient=True)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def report(self, event: str, info: dict[str, Any]) -> None:
        if event == "start":
            self.info = info
            if self.progress is not None:
                self.epochs = self.progress.add_task("epochs", total=info["epochs"], status="")
                self.batches = self.progress.add_task("batches", total=info["steps_per_epoch"], status="")
            elif not self.quiet:
                self.console.print(f"training on {info['n_train']} jets, validating on {info['n_val']}, "
                                   f"{info['device']}")
        elif event == "resumed":
            if self.progress is not None and hasattr(self, "epochs"):
                self.progress.update(self.epochs, completed=info["epoch"])
            if not self.quiet:
                self.console.print(f"resumed at epoch {info['epoch']}")
        elif event == "batch" and self.progress is not None:
            self.progress.update(self.batches, completed=info["step"], status=f"loss {info['loss']:.3e}")
        elif event == "epoch":
            line = (f"epoch {info['epoch']:3d}  train {info['train_loss']:.4e}  val {info['val_loss']:.4e}  "
                    f"lr {info['lr']:.2e}  {info['seconds']:.1f} s  (best {info['best_epoch']})")
            if self.progress is not None:
                self.progress.update(self.epochs, completed=info["epoch"] + 1,
                                     status=f"val {info['val_loss']:.3e} lr {info['lr']:.1e}")
                self.progress.update(self.batches, completed=0)
                self.progress.console.print(line)
            elif not self.quiet:
                self.console.print(line)
        elif event == "early_stop" and not self.quiet:
            self.console.print(f"early stop after epoch {info['epoch']}: no better validation loss")


def print_evaluation(r: dict[str, Any], console) -> None:
    codec = f"codec {r['codec']}" + (f", model {r['model']}, latents {r['latent_dtype']}"
                                     if r.get("model") else "")
    console.print(f"{r['compressed']} against {r['original']}: {r['n_jets']} jets, {codec}")
    if r.get("invalid_jets_left_out"):
        console.print(f"{r['invalid_jets_left_out']} jet(s) of {r['original']} that the codec cannot store (NaN, "
                      "inf, ...) are not in the .aez (compressed with --drop-invalid) and not compared")
    console.print(residual_table(r["residuals"], "residuals (E, pt, m relative; eta, phi absolute)"))
    if r.get("bounds"):
        console.print(_bounds_table(r["bounds"]))
        console.print("every value within its bound" if r.get("all_within_bounds") else
                      "SOME VALUES ARE BEYOND THEIR BOUND (see violations)")
    if r.get("collections"):
        from rich.table import Table

        t = Table(title="every coded collection (the largest error as a share of its bound)", title_justify="left")
        for col in ("table", "collection", "codec", "jets", "B/jet", "largest error / bound", "within"):
            t.add_column(col, justify="left" if col in ("table", "collection", "codec") else "right")
        for c in r["collections"]:
            worst = ", ".join(f"{k} {v['max_error'] / v['bound']:.2f}" for k, v in (c.get("bounds") or {}).items())
            t.add_row(str(c["table"]), str(c["collection"] or "-"), str(c["codec"]), str(c["n_jets"]),
                      "-" if c["bytes_per_jet"] is None else f"{c['bytes_per_jet']:.2f}", worst or "-",
                      {True: "yes", False: "NO"}.get(c.get("all_within_bounds"), "-"))
        console.print(t)
    if r.get("bytes_per_jet") is not None:
        share = f"{r['ratio_to_input']:.0%} of the input, " if r.get("ratio_to_input") is not None else ""
        console.print(f"size: {r['bytes']} bytes ({share}{r['bytes_per_jet']:.3f} B/jet over the whole file); "
                      f"the jets alone (no header, decoder or carried branches) "
                      f"{r.get('payload_bytes_per_jet') or 0:.3f} B/jet (4 x float32: 16)")
    alt = r.get("alternatives") or {}
    if alt:
        from rich.table import Table
        t = Table(title="the same jets, other ways (size per jet; residual std, p99 |r|)", title_justify="left")
        for col in ("method", "B/jet", "E", "pt", "eta", "phi"):
            t.add_column(col, justify="right" if col != "method" else "left")
        res = r["residuals"]

        def cell(std, p99, k):
            return f"{std[k]:.1e} / {p99[k]:.1e}" if k in std else "-"
        stds = {k: v["std"] for k, v in res.items() if v.get("n")}
        p99s = {k: v["p99_abs"] for k, v in res.items() if v.get("n")}
        t.add_row("jetzip (this file, the jets alone)", "-" if r.get("payload_bytes_per_jet") is None
                  else f"{r['payload_bytes_per_jet']:.2f}",
                  *(cell(stds, p99s, k) for k in ("E", "pt", "eta", "phi")))
        f16 = alt["float16"]
        t.add_row("float16 cast + zstd", f"{f16['bytes_per_jet']:.2f}",
                  *(cell(f16["residual_std"], f16["residual_p99_abs"], k) for k in ("E", "pt", "eta", "phi")))
        if "lossless_zstd3_bytes_per_jet" in alt:
            t.add_row("lossless: shuffled float32 + zstd", f"{alt['lossless_zstd3_bytes_per_jet']:.2f}",
                      "0", "0", "0", "0")
        t.add_row("raw float32", "16.00", "0", "0", "0", "0")
        console.print(t)
        if f16.get("non_finite"):
            console.print(f"float16 overflowed to inf for {f16['non_finite']} values (|x| > 65504)")
    if r.get("fraction_outside_training_ranges") is not None:
        console.print(f"jets outside the model's training ranges: {r['fraction_outside_training_ranges']:.3%}")
    if r.get("baselines"):
        console.print(_baselines_table(r["baselines"]))
    for name, paths in (r.get("plots") or {}).items():
        console.print(f"figure {name}: {', '.join(paths)}")


def _bounds_table(bounds: dict[str, dict[str, Any]]):
    from rich.table import Table

    t = Table(title="error bounds", title_justify="left")
    for col in ("variable", "kind", "bound", "max error", "violations"):
        t.add_column(col, justify="left" if col in ("variable", "kind") else "right")
    for role, b in bounds.items():
        t.add_row(role, b["kind"], f"{b['bound']:.3g}", f"{b['max_error']:.3g}", str(b["violations"]))
    return t


def _baselines_table(baselines: dict[str, Any]):
    """Other codecs on the same jets: bytes per jet and the largest error per column."""
    from rich.table import Table

    roles = list(baselines.get("bounds") or {})
    t = Table(title="baselines on the same jets (B/jet; max error, relative for pt, E, m)",
              title_justify="left")
    for col in ("method", "bounded", "B/jet", *roles):
        t.add_column(col, justify="left" if col in ("method", "bounded") else "right")
    for name, b in baselines.items():
        if not isinstance(b, dict) or name == "bounds":
            continue
        if "skipped" in b:
            t.add_row(name, f"skipped: {b['skipped']}", "-", *(["-"] * len(roles)))
            continue
        errors = b.get("max_error") or {}
        t.add_row(name, "yes" if b.get("bounded") else "no", f"{b['bytes_per_jet']:.2f}",
                  *(f"{errors[k]:.2g}" if k in errors else "-" for k in roles))
    return t


def _names(names: list[str], limit: int = 12) -> str:
    """A list of branch names, shortened."""
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
