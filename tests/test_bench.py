"""The benchmark must not rot: it runs end to end on tiny sizes, its JSON has the documented
fields, and its speedup column is computed from its own samples. Not a timed test: no assertion
here depends on how fast anything is."""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

import dropkit  # noqa: F401  (the bench needs the package; fail here, clearly, if it does not import)
from dropkit.bench import baselines, cli, timing, variants

SIZES = [10, 12]
REPEATS = 2
HAS_MPL = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    cmd = [
        sys.executable, "-m", "dropkit.bench",
        "--sizes", *map(str, SIZES), "--repeats", str(REPEATS), "--min-time", "0.0005", "--warmup-time", "0.001",
        "--memory-size", "14", "--targets-size", "14", "--targets-threads-size", "12",
        "--targets-rounds", "3", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {"out": out, "stdout": proc.stdout, "stderr": proc.stderr, "doc": doc}


def _cells(doc: Dict[str, Any]) -> Dict[tuple, Dict[str, Dict[str, Any]]]:
    cells: Dict[tuple, Dict[str, Dict[str, Any]]] = defaultdict(dict)
    for r in doc["results"]:
        cells[(r["variant"], r["direction"], r["dtype"], r["size"], r["threads"])][r["backend"]] = r
    return cells


# --- end to end --------------------------------------------------------------------------------


def test_files_written(run: Dict[str, Any]) -> None:
    out: Path = run["out"]
    assert (out / "results.json").is_file()
    md = (out / "results.md").read_text(encoding="utf-8")
    assert md.startswith("# dropkit benchmark")
    assert "| size | backend | ns/elem |" in md
    assert (out / "results.png").is_file() == HAS_MPL
    if HAS_MPL:
        assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert run["doc"]["files"]["png"] is not None
    else:
        assert "matplotlib" in run["doc"]["plot_note"]


def test_progress_on_stderr_table_on_stdout(run: Dict[str, Any]) -> None:
    n_cells = len(SIZES) * len(variants.VARIANTS) * 2 * len(run["doc"]["config"]["threads"])
    assert re.search(rf"\[\s*{n_cells}/{n_cells}\s", run["stderr"])
    assert "== dropout / forward / float32 / 1 thread ==" in run["stdout"]
    assert "speedup vs numpy" in run["stdout"]


def test_json_documented_fields(run: Dict[str, Any]) -> None:
    doc = run["doc"]
    assert doc["schema"] == cli.SCHEMA
    for key in ("created_utc", "argv", "config", "machine", "dropkit", "versions", "backends", "variants",
                "results", "skipped", "unavailable", "memory", "targets", "files", "elapsed_s"):
        assert key in doc, key
    cfg = doc["config"]
    assert cfg["sizes"] == [1 << k for k in SIZES]
    assert cfg["dtypes"] == ["float32"] and cfg["repeats"] == REPEATS
    assert cfg["threads"][0] == 1 and cfg["speedup_base"] == "numpy"
    cpu = doc["machine"]["cpu"]
    assert cpu["model"] and isinstance(cpu["flags"], list) and cpu["usable_cpus"] >= 1
    assert doc["dropkit"]["simd_target"] in ("scalar", "avx2", "avx512")
    assert doc["dropkit"]["stream_version"] == dropkit.STREAM_VERSION
    assert doc["versions"]["numpy"] == np.__version__
    assert doc["versions"]["dropkit"] == dropkit.__version__
    assert "torch" in doc["versions"]
    row_keys = {"variant", "direction", "dtype", "size", "threads", "threads_reported", "others_cpu_share",
                "backend", "calls_per_sample", "warmup_calls", "samples_s", "median_s", "q1_s", "q3_s", "min_s", "max_s",
                "spread_rel", "ns_per_element", "gb_per_s", "speedup", "ratio_to_stream"}  # fmt: skip
    for r in doc["results"]:
        assert row_keys <= set(r), row_keys - set(r)
        assert len(r["samples_s"]) == REPEATS and all(s > 0 for s in r["samples_s"])
        if r["backend"] != "torch":  # torch pins its own count; dropkit-torch runs on dropkit's threads
            assert r["threads_reported"]["dropkit"] == r["threads"]
        if r["backend"] in variants.TORCH_BACKENDS:
            assert r["threads_reported"]["torch"] == r["threads"]


def test_every_cell_has_every_backend(run: Dict[str, Any]) -> None:
    doc = run["doc"]
    cells = _cells(doc)
    assert len(cells) == len(SIZES) * len(variants.VARIANTS) * 2 * len(doc["config"]["threads"])
    for key, by in cells.items():
        expected = {"dropkit", "dropkit-ref", "numpy", "multiply"} | set(variants.VARIANTS[key[0]].seeds)
        if doc["config"]["torch"] and variants.VARIANTS[key[0]].torch is not None:
            expected.add("torch")
        if doc["config"]["torch"] and variants.VARIANTS[key[0]].dropkit_torch is not None:
            expected.add("dropkit-torch")
        assert set(by) == expected, key


def test_speedup_computed_from_own_samples(run: Dict[str, Any]) -> None:
    for key, by in _cells(run["doc"]).items():
        base = statistics.median(by["numpy"]["samples_s"])
        stream = statistics.median(by["multiply"]["samples_s"])
        n, itemsize = key[3], np.dtype(key[2]).itemsize
        for r in by.values():
            med = statistics.median(r["samples_s"])
            assert r["median_s"] == pytest.approx(med, rel=1e-12)
            assert r["speedup"] == pytest.approx(base / med, rel=1e-12)
            assert r["ratio_to_stream"] == pytest.approx(med / stream, rel=1e-12)
            assert r["ns_per_element"] == pytest.approx(med / n * 1e9, rel=1e-12)
            assert r["gb_per_s"] == pytest.approx(2 * itemsize * n / med / 1e9, rel=1e-12)


#: The variants dropkit.torch has a counterpart of (issue 9); dropout-classic has none (no inverted=False).
DROPKIT_TORCH_VARIANTS = {"dropout", "spatial1d", "spatial2d", "spatial3d", "alpha", "feature-alpha", "gaussian"}


def test_registry_dropkit_torch_counterparts() -> None:
    have = {name for name, v in variants.VARIANTS.items() if v.dropkit_torch is not None}
    assert have == DROPKIT_TORCH_VARIANTS
    for v in variants.VARIANTS.values():
        names = list(variants.backend_builders(v, with_torch=True))
        assert ("dropkit-torch" in names) == (v.name in DROPKIT_TORCH_VARIANTS)
        assert "dropkit-torch" not in variants.backend_builders(v, with_torch=False)


def test_dropkit_torch_column(run: Dict[str, Any]) -> None:
    """With torch installed, every dropkit.torch variant has a dropkit-torch row in every cell, in the
    text and Markdown tables and in the torch comparison table, whose ratios are recomputed here
    from the JSON samples."""
    doc = run["doc"]
    if not doc["config"]["torch"]:
        assert any("dropkit-torch" in s["what"] and "PyTorch" in s["reason"] for s in doc["skipped"])
        assert "dropkit-torch" not in {r["backend"] for r in doc["results"]}
        pytest.skip("PyTorch not installed: the dropkit-torch backend is skipped (with the reason checked above)")
    assert not any(k.endswith("/dropkit-torch") for k in doc["unavailable"]), doc["unavailable"]
    cells = _cells(doc)
    n_threads = len(doc["config"]["threads"])
    dt_cells = [key for key, by in cells.items() if "dropkit-torch" in by]
    assert {key[0] for key in dt_cells} == DROPKIT_TORCH_VARIANTS
    assert len(dt_cells) == len(DROPKIT_TORCH_VARIANTS) * len(SIZES) * 2 * n_threads
    assert "dropkit-torch" in doc["backends"]
    for text in (run["stdout"], (run["out"] / "results.md").read_text(encoding="utf-8")):
        assert re.search(r"\bdropkit-torch\b", text)
    # The comparison table: one row per cell with both, ratios from the samples' medians.
    md = (run["out"] / "results.md").read_text(encoding="utf-8")
    assert "## dropkit.torch vs PyTorch" in md and "== dropkit.torch vs PyTorch" in run["stdout"]
    checked = 0
    for line in md.splitlines():
        m = re.match(r"\| (\S+) \| (forward|backward) \| (\S+) \| (\d+) \| 2\^(\d+) \|(.*)\|$", line)
        if not m:
            continue
        by = cells[(m[1], m[2], m[3], 1 << int(m[5]), int(m[4]))]
        cols = [c.strip() for c in m[6].split("|")]
        med = {b: statistics.median(by[b]["samples_s"]) for b in ("torch", "dropkit-torch", "dropkit")}
        assert float(cols[0]) == pytest.approx(med["torch"] / (1 << int(m[5])) * 1e9, rel=0.01)
        assert float(cols[1]) == pytest.approx(med["dropkit-torch"] / (1 << int(m[5])) * 1e9, rel=0.01)
        assert float(cols[2].rstrip("x")) == pytest.approx(med["torch"] / med["dropkit-torch"], rel=0.01, abs=0.006)
        assert float(cols[3].rstrip("x")) == pytest.approx(med["dropkit-torch"] / med["dropkit"], rel=0.01, abs=0.006)
        checked += 1
    assert checked == len(dt_cells)
    mem = {(r["variant"], r["backend"], r.get("phase")): r for r in doc["memory"]["rows"]}
    for variant in DROPKIT_TORCH_VARIANTS:
        for phase in ("forward", "forward+backward"):
            assert mem[(variant, "dropkit-torch", phase)]["method"] in ("rss-hwm", "rss-live")


def test_dropkit_torch_backend_computes_dropkits_bits() -> None:
    """The dropkit-torch kernels compute what the dropkit backend does (same bits, forward and
    autograd backward) on torch tensors sharing the case's memory, and record a graph."""
    torch = pytest.importorskip("torch", reason="the dropkit-torch backend needs PyTorch (dropkit[torch])")
    rng = np.random.default_rng(5)
    for name in sorted(DROPKIT_TORCH_VARIANTS):
        v = variants.VARIANTS[name]
        for dtype in (np.float32, np.float64):
            shape = v.shape(1 << 11)
            x = rng.standard_normal(shape).astype(dtype)
            g = rng.standard_normal(shape).astype(dtype)
            case = variants.Case(x, g, 0.3, 77, torch=torch)
            ref, dt = v.dropkit(case, "core"), v.dropkit_torch(case)
            y = dt.forward()
            assert isinstance(y, torch.Tensor) and y.requires_grad and y.dtype == torch.from_numpy(x).dtype
            np.testing.assert_array_equal(y.detach().numpy(), ref.forward(), err_msg=name)
            for _ in range(2):  # backward is timed repeatedly on one forward's graph
                np.testing.assert_array_equal(dt.backward().numpy(), ref.backward(), err_msg=name)


def test_markdown_speedup_column_matches_json(run: Dict[str, Any]) -> None:
    md = (run["out"] / "results.md").read_text(encoding="utf-8")
    cells = _cells(run["doc"])
    section = None
    size = None
    checked = 0
    for line in md.splitlines():
        m = re.match(r"### (\S+) / (\S+) / (\S+) / (\d+) threads?$", line)
        if m:
            section = (m[1], m[2], m[3], int(m[4]))
            continue
        m = re.match(r"\| (2\^\d+)? ?\| (\S+) \|(.*)\|$", line)
        if section is None or not m or m[2] == "backend":
            continue
        if m[1]:
            size = 1 << int(m[1][2:])
        cols = [c.strip() for c in m[3].split("|")]
        speedup_text = cols[3]
        want = cells[(section[0], section[1], section[2], size, section[3])][m[2]]["speedup"]
        assert float(speedup_text.rstrip("x")) == pytest.approx(want, rel=0.01, abs=0.006)
        checked += 1
    assert checked == len(run["doc"]["results"])


def test_memory_shows_dropkit_stores_no_mask(run: Dict[str, Any]) -> None:
    mem = run["doc"]["memory"]
    assert "error" not in mem, mem.get("error")
    n = mem["size"]
    rows = {(r["variant"], r["backend"], r.get("phase")): r for r in mem["rows"]}
    for variant in variants.VARIANTS:
        for phase in ("forward", "forward+backward"):
            dk = rows[(variant, "dropkit", phase)]
            npy = rows[(variant, "numpy", phase)]
            assert dk["method"] == npy["method"] == "tracemalloc"
            # dropkit keeps nothing per element; the NumPy formulation keeps a 1-byte bool mask,
            # or, for broadcast noise, a multiplier of the noise's size (something, but less).
            assert dk["retained_bytes"] < 0.25 * n
            if variant in variants.BROADCAST_NAMES:
                assert npy["retained_bytes"] > 0
            else:
                assert npy["retained_bytes"] >= n
            # forward: the output (4 B/elem) is part of the peak.
            assert dk["peak_bytes"] >= dk["outputs_bytes"] >= 4 * n
    s1 = rows[("dropout", "seed000-s1", "forward")]
    assert s1["retained_bytes"] >= 8 * n  # the int64 binomial mask, as the seed wrote it
    if ("dropout", "torch", "forward") in rows:
        assert rows[("dropout", "torch", "forward")]["method"] in ("rss-hwm", "rss-live")


def test_targets_reported_never_fail(run: Dict[str, Any]) -> None:
    tg = run["doc"]["targets"]
    assert "error" not in tg, tg.get("error")
    assert "others_cpu_share" in tg and tg["config"]["rate"] == 0.5
    keys = [r["key"] for r in tg["rows"]]
    from dropkit.bench.targets import GENERAL_RATES

    others = [t for t in dropkit.available_simd_targets() if t != dropkit.simd_target()]
    expected = ["forward_over_multiply", "backward_over_multiply", "rate_1_over_multiply", "numpy_formula_over_forward"]
    expected += [f"rate_{r:g}_over_multiply_big" for r in GENERAL_RATES] + [f"default_over_{t}_big" for t in others]
    expected += ["forward_over_multiply_small"] + [f"rate_{r:g}_over_multiply_small" for r in GENERAL_RATES]
    expected += [f"default_over_{t}_small" for t in others] + ["small_call_us", "small_multiply_us"]
    assert keys[: len(expected)] == expected
    assert "one_thread_over_two" in keys
    assert sum(k.startswith("two_over_one_busy") for k in keys) == 2
    assert sum(k.startswith("two_over_one_quiet") for k in keys) == 2
    for r in tg["rows"]:
        num = r["numerator"]["samples_s"]
        if r["unit"] == "us":  # an absolute row: microseconds per call
            assert r["denominator"] is None
            assert r["ratio"] == pytest.approx(statistics.median(num) * 1e6, rel=1e-12)
            assert r["ratio_of_minimums"] == pytest.approx(min(num) * 1e6, rel=1e-12)
        else:
            den = r["denominator"]["samples_s"]
            assert r["ratio"] == pytest.approx(statistics.median(num) / statistics.median(den), rel=1e-12)
            assert r["ratio_of_minimums"] == pytest.approx(min(num) / min(den), rel=1e-12)
        if r["goal"] is None:  # an informational row
            assert r["pass"] is None and r["label"] in run["stdout"]
            continue
        assert r["pass"] == (r["ratio"] <= r["goal"] if r["op"] == "<=" else r["ratio"] >= r["goal"])
        assert ("PASS" if r["pass"] else "MISS") in run["stdout"]


# --- pieces --------------------------------------------------------------------------------------


def test_variant_target_rows() -> None:
    """Every variant of VARIANT_GOALS gets a forward and a backward row against np.multiply (and
    Gaussian the NumPy formula's row), ratios of the medians of interleaved samples."""
    from dropkit.bench.targets import VARIANT_GOALS, _variant_rows

    n = 2**14
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    rows = _variant_rows(x, g, np.empty_like(x), 0.5, 3, 3, 0.0, lambda: None, lambda msg: None)
    keys = [r.key for r in rows]
    want = [f"{v}_{d}_over_multiply" for v, _ in VARIANT_GOALS for d in ("forward", "backward")]
    want.insert(want.index("gaussian_backward_over_multiply") + 1, "gaussian_numpy_formula_over_forward")
    assert keys == want
    goals = dict(VARIANT_GOALS)
    for r in rows:
        assert len(r.num.samples) == 3 and r.den is not None and len(r.den.samples) == 3
        if r.key.startswith("gaussian_numpy"):
            assert (r.op, r.goal, r.num.name, r.den.name) == (">=", 8.0, "numpy_formula", "forward")
        else:
            assert r.op == "<=" and r.goal == goals[r.key.split("_")[0]] and r.den.name == "multiply"


def test_interleaved_rounds_alternate() -> None:
    calls: List[str] = []
    cands = [timing.Candidate(name, (lambda nm=name: calls.append(nm))) for name in "ABC"]
    res = timing.measure_interleaved(cands, repeats=4, warmup=1, min_sample_time=0.0, max_number=1)
    assert [len(res[c].samples) for c in "ABC"] == [4, 4, 4]
    timed = calls[-12:]  # after warm-up and calibration: one call per sample, rotating start
    assert timed == list("ABC" "BCA" "CAB" "ABC")


def test_summarize_spread() -> None:
    s = timing.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median_s"] == 3.0 and s["min_s"] == 1.0 and s["max_s"] == 100.0
    assert s["spread_rel"] == pytest.approx((s["q3_s"] - s["q1_s"]) / 3.0)


def test_tuned_numpy_is_a_correct_dropout() -> None:
    n = 1 << 16
    x = np.ones(n, np.float32)
    for inverted, kept_value in ((True, 4.0), (False, 1.0)):
        impl = variants.TunedNumpyBernoulli(variants.Case(x, x, 0.75, 7), inverted=inverted)
        y = impl.forward()
        assert y.dtype == np.float32 and set(np.unique(y).tolist()) == {0.0, kept_value}
        kept = int(np.count_nonzero(y))
        sigma = (n * 0.25 * 0.75) ** 0.5
        assert abs(kept - 0.25 * n) < 5 * sigma
        np.testing.assert_array_equal(impl.backward() != 0, y != 0)  # backward reuses the mask


def test_seed_baselines_keep_their_quirks() -> None:
    np.random.seed(0)
    x = np.ones(4096, np.float32)
    s1 = baselines.Dropout(dropout_rate=0.5)
    y1 = s1.forward(x)
    assert y1.dtype == np.float64 and set(np.unique(y1).tolist()) <= {0.0, 2.0}
    assert set(np.unique(s1.backward(x)).tolist()) <= {0.0, 1.0}  # no 1/(1-rate): kept as written
    s6 = baselines.InvertedDropout(keep_prob=0.5)
    assert set(np.unique(s6.forward(x)).tolist()) <= {0.0, 2.0}
    assert set(np.unique(s6.backward(x)).tolist()) <= {0.0, 2.0}


def test_registry_one_entry_per_variant() -> None:
    v = variants.Variant(
        name="test-variant",
        summary="a test entry",
        dropkit=variants.dropkit_function("dropout", "dropout_backward"),
        numpy=variants.VARIANTS["dropout"].numpy,
        seeds={"seed000-s6": variants.VARIANTS["dropout"].seeds["seed000-s6"]},
    )
    variants.register(v)
    try:
        assert list(variants.backend_builders(v, with_torch=True)) == ["dropkit", "dropkit-ref", "numpy", "seed000-s6"]
        with pytest.raises(ValueError, match="already registered"):
            variants.register(v)
    finally:
        del variants.VARIANTS["test-variant"]


def test_cli_list_and_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list"]) == 0
    text = capsys.readouterr().out
    for name in variants.VARIANTS:
        assert name in text
    for backend in variants.known_backends():
        assert re.search(rf"^  {re.escape(backend)} ", text, re.M), backend
    assert "dropkit-torch: yes" in text and "dropkit-torch: none" in text
    assert cli._size("14") == 1 << 14 and cli._size("2^20") == 1 << 20 and cli._size("100000") == 100000
