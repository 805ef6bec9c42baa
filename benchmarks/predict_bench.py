"""Benchmark geocd predict against a naive TorchGeo loop; prints one table, asserts nothing.

For each scene size it builds a synthetic before/after GeoTIFF pair (written in strips),
then runs, each in its own process so peak RSS is measured separately:

* ``geocd``: the full predict path to a change GeoTIFF (DataLoader workers, batching,
  streamed blending), once per backend (PyTorch eager, channels-last; ONNX Runtime, its
  graph exported beforehand as a first run would) and per reading-worker count; its
  forward-pass seconds on the same tiles give "model MP/s";
* ``naive``: two TorchGeo ``RasterDataset``s + ``GridGeoSampler``, one tile at a time,
  the whole-scene probability array in memory, written at the end.

``--network`` instead times the network alone on random tiles of the bundled default model, every
runtime and precision in one process, taking turns batch by batch so a shared machine slows them
alike: PyTorch eager fp32, ONNX Runtime fp32, OpenVINO fp32 and bf16 (when installed and, for
bf16, supported), with the CPU's model name and bf16/AMX flags.

``--end-to-end`` prints the speed table of the README: those network figures, then ``geocd predict
A B -o changes.gpkg --backend B --precision P`` as a user runs it (a new process each, the ONNX
graph already cached by a first run), per runtime and scene size: wall-clock MP/s from the
command's start to its exit (imports, reading, network, stitching, polygons, GeoPackage) and its
peak RSS. The scenes are mosaics of the whole LEVIR-CD tiles in ``--data`` (real 0.5 m imagery,
uint8, tiled GeoTIFFs), or the synthetic texture without ``--data``.

Usage: python benchmarks/predict_bench.py [--sizes 2 40] [--tile 512] [--backbone tf_efficientnet_lite0]
       [--backends torch onnx] [--workers 0 2]
       python benchmarks/predict_bench.py --network [--tile 256] [--batch 2] [--seconds 60]
       python benchmarks/predict_bench.py --end-to-end [--sizes 4 16] [--data ../shared/data] [--seconds 30]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin
from rasterio.windows import Window


def write_scene(path: Path, side: int, seed: int) -> None:
    """A side x side 3-band uint8 GeoTIFF of smooth texture plus noise, written in strips."""
    rng = np.random.default_rng(seed)
    profile = dict(driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs="EPSG:32633",
                   transform=from_origin(500_000, 5_400_000, 0.5, 0.5), tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        xx = np.arange(side, dtype=np.float32)
        for row in range(0, side, 256):
            n = min(256, side - row)
            yy = np.arange(row, row + n, dtype=np.float32)[:, None]
            base = 120 + 50 * np.sin(xx / 37.0) * np.cos(yy / 23.0)
            strip = np.stack([base + 10 * b for b in range(3)]) + rng.normal(0, 8, (3, n, side))
            if seed:  # the 'after' date: a grid of new bright blocks
                strip[:, ((yy // 64) % 5 == 0) & ((xx // 64) % 7 == 0)] = 230
            dst.write(np.clip(strip, 0, 255).astype(np.uint8), window=Window(0, row, side, n))


def save_model(path: Path, backbone: str, tile: int) -> None:
    """A checkpoint of ``backbone`` with random weights and lightweight heads, its ONNX graph cached."""
    import torch

    from geocd.checkpoint import ModelMetadata, load_checkpoint, save_checkpoint
    from geocd.inference.backends import build_runners
    from geocd.models import ModelConfig, SiameseChangeNet
    from geocd.schema import LandCover

    torch.manual_seed(0)
    config = ModelConfig(backbone, lightweight=True)
    trained = (LandCover.WATER, LandCover.GROUND, LandCover.LOW_VEGETATION, LandCover.TREE, LandCover.BUILDING)
    meta = ModelMetadata(config, mean=(120.0,) * 3, std=(50.0,) * 3, trained_classes=trained, tile_size=tile)
    save_checkpoint(path, SiameseChangeNet(config, meta.mean, meta.std).eval(), meta)
    build_runners([load_checkpoint(path)], "cpu", "onnx", tile)


def run_geocd(before: Path, after: Path, out: Path, model_path: Path, backend: str, workers: int) -> dict:
    from geocd.changemap import raster_sink
    from geocd.checkpoint import load_checkpoint
    from geocd.inference.predict import PredictOptions, predict_change_raster

    model = load_checkpoint(model_path)
    start = time.perf_counter()
    result = predict_change_raster(before, after, [model], [raster_sink(out)], PredictOptions(num_workers=workers, backend=backend))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "model_seconds": result.model_seconds, "tiles": result.tiles}


def run_naive(before: Path, after: Path, out: Path, model_path: Path, tile: int) -> dict:
    """The loop many tutorials show: RasterDataset pair, grid sampler, whole-scene output array."""
    from torchgeo.datasets import RasterDataset
    from torchgeo.samplers import GridGeoSampler

    import torch

    from geocd.checkpoint import load_checkpoint

    model = load_checkpoint(model_path)
    start = time.perf_counter()
    ds_before, ds_after = RasterDataset(paths=str(before)), RasterDataset(paths=str(after))
    with rasterio.open(before) as src:
        profile, transform = src.profile, src.transform
    scene = np.zeros((profile["height"], profile["width"]), np.float32)
    for query in GridGeoSampler(ds_before, tile, tile - tile // 8):
        b = ds_before[query]["image"][None].float()
        a = ds_after[query]["image"][None].float()
        with torch.no_grad():
            probs = model.model(b, a).change.sigmoid()[0, 0].numpy()
        col = round((query[0].start - transform.c) / transform.a)
        row = round((transform.f - query[1].stop) / -transform.e)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + tile, scene.shape[0]), min(col + tile, scene.shape[1])
        scene[r0:r1, c0:c1] = probs[r0 - row : r1 - row, c0 - col : c1 - col]
    profile.update(count=1, dtype="float32")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(scene, 1)
    return {"seconds": time.perf_counter() - start}


CPU_RUNTIMES = (("PyTorch eager fp32 (channels-last)", "torch", "fp32"), ("ONNX Runtime fp32", "onnx", "fp32"),
                ("OpenVINO fp32", "openvino", "fp32"), ("OpenVINO bf16", "openvino", "bf16"))
"""Row name, ``--backend`` and ``--precision`` of each CPU runtime the tables compare."""


def cpu_runtimes() -> list[tuple[str, str, str]]:
    """The rows of :data:`CPU_RUNTIMES` this machine can run (OpenVINO installed; bf16 where supported)."""
    from geocd.inference.backends import openvino_precision

    rows = list(CPU_RUNTIMES[:2])
    if importlib.util.find_spec("openvino"):
        rows += [row for row in CPU_RUNTIMES[2:] if row[2] == "fp32" or openvino_precision("auto") == "bf16"]
    return rows


def cpu_line() -> str:
    """The CPU's model name, its bf16/AMX flags and core counts, as lscpu and the process see them."""
    from geocd.inference.backends import physical_cores

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu_model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    flags = sorted({f for f in lscpu.split() if f.startswith("amx") or f.endswith("_bf16")})
    return (f"CPU: {cpu_model}; flags: {' '.join(flags) or 'none of amx*, *_bf16'}; {os.cpu_count()} CPUs, "
            f"{physical_cores()} physical cores")


def network_speeds(tile: int, batch: int, seconds: float) -> dict[str, float]:
    """MP/s of pairs of the default network per CPU runtime, batches taking turns for ``seconds``."""
    import torch

    from geocd.checkpoint import load_models
    from geocd.inference.backends import build_runners

    model = load_models()[0]
    runners = {name: build_runners([model], "cpu", backend, tile, precision=precision)[0]
               for name, backend, precision in cpu_runtimes()}
    shape = (batch, model.metadata.config.in_channels, tile, tile)
    before, after = (np.random.default_rng(seed).random(shape, np.float32) * 255 for seed in range(2))
    spent = dict.fromkeys(runners, 0.0)
    calls = dict.fromkeys(runners, 0)
    with torch.inference_mode():
        for runner in runners.values():  # warm-up
            runner(before, after)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for name, runner in runners.items():
                start = time.perf_counter()
                runner(before, after)
                spent[name] += time.perf_counter() - start
                calls[name] += 1
    print(f"{cpu_line()}; PyTorch threads {torch.get_num_threads()}")
    print(f"default model, {tile}² tiles, batch {batch}, {seconds:.0f} s of turns")
    return {name: batch * tile * tile / 1e6 * calls[name] / spent[name] for name in runners}


def print_network_speeds(speeds: dict[str, float]) -> None:
    """The network table: MP/s of pairs and the ratio to the first row (eager)."""
    eager = next(iter(speeds.values()))
    print("runtime | MP/s of pairs | vs eager")
    for name, speed in speeds.items():
        print(f"{name} | {speed:.2f} | {speed / eager:.1f}x")


def mosaic_scene(path: Path, side: int, levir: Path, date: str) -> None:
    """A side x side uint8 GeoTIFF (0.5 m, UTM) tiled with the whole LEVIR-CD tiles of ``date`` (A or B),
    turned by 90° every pass through them so that neighbours differ; written a row of tiles at a time."""
    tiles = sorted((levir / date).glob("*.png"))
    profile = dict(driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs="EPSG:32614",
                   transform=from_origin(600_000, 3_300_000, 0.5, 0.5), tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        k = 0
        for row in range(0, side, 1024):
            for col in range(0, side, 1024):
                with warnings.catch_warnings():  # the PNG tiles carry no georeferencing; the mosaic gets its own
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    with rasterio.open(tiles[k % len(tiles)]) as src:
                        data = np.rot90(src.read(), k // len(tiles) % 4, axes=(1, 2))
                h, w = min(1024, side - row), min(1024, side - col)
                dst.write(np.ascontiguousarray(data[:, :h, :w]), window=Window(col, row, w, h))
                k += 1


_WAIT_FOR = ("import os, sys; pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ); "
             "_, status, usage = os.wait4(pid, 0); print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")
"""Runs a command from a small interpreter and prints its exit code and peak RSS (KiB): a child forked
from this process would inherit its high-water mark (Linux keeps it across exec)."""


def timed_predict(before: Path, after: Path, out: Path, backend: str, precision: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one ``geocd predict`` process writing ``out``."""
    geocd = Path(sys.executable).with_name("geocd")
    cmd = [str(geocd) if geocd.exists() else "geocd", "predict", str(before), str(after), "-o", str(out),
           "--backend", backend, "--precision", precision, "--overwrite"]
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", _WAIT_FOR, *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    code, rss = run.stdout.split()
    if int(code):
        raise SystemExit(f"{' '.join(cmd)} failed: {run.stderr}")
    return seconds, int(rss) / 1024


def end_to_end(sizes: list[float], data: Path | None, seconds: float) -> None:
    """The README's speed table: network MP/s per runtime, then end-to-end MP/s and peak RSS per scene size."""
    speeds = network_speeds(256, 2, seconds)
    print_network_speeds(speeds)
    levir = data / "levir-full" if data else None
    with tempfile.TemporaryDirectory(prefix="geocd-bench-") as tmp:
        tmp = Path(tmp)
        rows = []
        for size in sizes:
            side = round(math.sqrt(size * 1e6))
            pair = tmp / f"before_{side}.tif", tmp / f"after_{side}.tif"
            for path, date, seed in zip(pair, "AB", (0, 1)):
                mosaic_scene(path, side, levir, date) if levir else write_scene(path, side, seed)
            for name, backend, precision in cpu_runtimes():
                if size == sizes[0]:
                    timed_predict(*pair, tmp / "first.gpkg", backend, precision)  # exports and caches the graph
                wall, rss = timed_predict(*pair, tmp / "changes.gpkg", backend, precision)
                rows.append((name, side * side / 1e6, wall, rss))
                print(json.dumps({"runtime": name, "MP": side * side / 1e6, "seconds": round(wall, 2),
                                  "peak_rss_mb": round(rss)}), file=sys.stderr)
    eager = next(iter(speeds.values()))
    print(f"geocd predict A B -o changes.gpkg, {'LEVIR-CD mosaics' if levir else 'synthetic pairs'}, default options "
          f"but --backend/--precision; eager network {eager:.2f} MP/s")
    print("runtime | network MP/s | scene MP | end-to-end MP/s | end to end vs eager network | vs own network | peak RSS MB")
    for name, mp, wall, rss in rows:
        print(f"{name} | {speeds[name]:.2f} | {mp:.1f} | {mp / wall:.2f} | {mp / wall / eager:.2f}x | "
              f"{mp / wall / speeds[name]:.2f} | {rss:.0f}")


def child(args: argparse.Namespace) -> None:
    if args.mode == "save":
        save_model(Path(args.model), args.backbone, args.tile)
        return
    before, after, out = Path(args.before), Path(args.after), Path(args.out)
    if args.mode == "geocd":
        figures = run_geocd(before, after, out, Path(args.model), args.backends[0], args.workers[0])
    else:
        figures = run_naive(before, after, out, Path(args.model), args.tile)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["children_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[2.0, 40.0], help="scene sizes in megapixels")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--backends", nargs="+", choices=["torch", "onnx"], default=["torch", "onnx"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="reading-worker counts to compare")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--network", action="store_true", help="time the network alone per runtime and precision")
    parser.add_argument("--batch", type=int, default=2, help="tiles per batch with --network")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of timed turns of the network table (--network, --end-to-end)")
    parser.add_argument("--end-to-end", action="store_true", help="the README's speed table: network and geocd predict")
    parser.add_argument("--data", type=Path, help="../shared/data, for LEVIR-CD mosaics with --end-to-end")
    parser.add_argument("--mode", choices=["save", "geocd", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--before", help=argparse.SUPPRESS)
    parser.add_argument("--after", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.network or args.end_to_end:
        with tempfile.TemporaryDirectory(prefix="geocd-bench-") as tmp:
            os.environ["GEOCD_CACHE_DIR"] = tmp
            if args.network:
                print_network_speeds(network_speeds(args.tile, args.batch, args.seconds))
            else:
                end_to_end(args.sizes, args.data, args.seconds)
        return
    if args.mode:
        child(args)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="geocd-bench-") as tmp:
        os.environ["GEOCD_CACHE_DIR"] = tmp
        model_path = Path(tmp) / "model.safetensors"
        subprocess.run([sys.executable, __file__, "--mode", "save", "--model", str(model_path), "--tile", str(args.tile),
                        "--backbone", args.backbone], check=True)  # a child, so this process stays small: peak RSS is inherited
        for size in args.sizes:
            side = round(math.sqrt(size * 1e6))
            before, after = Path(tmp) / f"before_{side}.tif", Path(tmp) / f"after_{side}.tif"
            write_scene(before, side, 0)
            write_scene(after, side, 1)
            runs = [("geocd", b, w) for b in args.backends for w in args.workers]
            figures = {}
            for mode, backend, workers in runs + ([] if args.skip_naive else [("naive", "torch", 0)]):
                out = Path(tmp) / f"{mode}_{side}.tif"
                cmd = [sys.executable, __file__, "--mode", mode, "--before", str(before), "--after", str(after),
                       "--out", str(out), "--tile", str(args.tile), "--model", str(model_path),
                       "--backends", backend, "--workers", str(workers)]
                run = subprocess.run(cmd, check=True, capture_output=True, text=True)
                figures[mode, backend, workers] = json.loads(run.stdout.splitlines()[-1])
                out.unlink()
            mp = side * side / 1e6
            naive = figures.get(("naive", "torch", 0))
            for key in runs:
                g = figures[key]
                row = {
                    "MP": mp, "backend": key[1], "workers": key[2], "tiles": g["tiles"], "model MP/s": mp / g["model_seconds"],
                    "end-to-end MP/s": mp / g["seconds"],
                    "overhead %": 100 * (g["seconds"] - g["model_seconds"]) / g["model_seconds"],
                    "peak RSS MB": g["peak_rss_mb"], "worker peak RSS MB": g["children_peak_rss_mb"],
                }
                if naive:
                    row.update({"naive MP/s": mp / naive["seconds"], "naive peak RSS MB": naive["peak_rss_mb"],
                                "speed-up vs naive": naive["seconds"] / g["seconds"]})
                rows.append(row)
                print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), file=sys.stderr)
    from geocd.inference.backends import physical_cores

    print(f"backbone {args.backbone} (lightweight heads, 5 trained classes), tile {args.tile}, overlap {args.tile // 8}, "
          f"batch: geocd default per backend, PyTorch threads {__import__('torch').get_num_threads()}, ONNX Runtime threads {physical_cores()}")
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(f"{row[h]:.2f}" if isinstance(row[h], float) else str(row[h]) for h in header))


if __name__ == "__main__":
    main()
