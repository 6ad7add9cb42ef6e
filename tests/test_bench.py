"""The benchmark must not rot: it runs end to end on tiny sizes, its JSON has the documented
fields, its summary and tables are computed from its own samples, and its adaptive repeats stop
for the reasons they say. Not a timed test: no assertion here depends on how fast anything is
(the adaptive logic is driven by a fake clock)."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

import dropkit
import _seed_baselines as baselines
from dropkit.bench import cli, contenders, report, timing

SIZES = [10, 12]
MIN_ROUNDS, MAX_ROUNDS = 2, 4
HAS_MPL = importlib.util.find_spec("matplotlib") is not None
VARIANTS = contenders.VARIANTS


def _run(args: List[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dropkit.bench", *args], capture_output=True, text=True,
                          timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    proc = _run(["--sizes", *map(str, SIZES), "--min-rounds", str(MIN_ROUNDS), "--max-rounds", str(MAX_ROUNDS),
                 "--min-time", "0.0005", "--memory-size", "14", "--budget", "0", "--out", str(out)])
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {"out": out, "stdout": proc.stdout, "stderr": proc.stderr, "doc": doc}


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    out = tmp_path_factory.mktemp("targets")
    proc = _run(["--targets", "--targets-size", "14", "--targets-threads-size", "12", "--targets-rounds", "3",
                 "--out", str(out)])
    return {"stdout": proc.stdout, "doc": json.loads((out / "targets.json").read_text(encoding="utf-8"))}


def _cells(doc: Dict[str, Any]) -> Dict[tuple, Dict[str, Dict[str, Any]]]:
    cells: Dict[tuple, Dict[str, Dict[str, Any]]] = defaultdict(dict)
    for r in doc["results"]:
        cells[(r["variant"], r["direction"], r["dtype"], r["size"], r["threads"])][r["backend"]] = r
    return cells


def _med(by: Dict[str, Dict[str, Any]], backend: str) -> float:
    return statistics.median(by[backend]["samples_s"])


# --- end to end --------------------------------------------------------------------------------


def test_files_written(run: Dict[str, Any]) -> None:
    out: Path = run["out"]
    md = (out / "results.md").read_text(encoding="utf-8")
    assert md.startswith("# dropkit benchmark") and "## Summary" in md
    assert "| size | backend | ns/elem |" in md
    assert (out / "results.png").is_file() == HAS_MPL
    if HAS_MPL:
        assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert run["doc"]["files"]["png"] is not None
    else:
        assert "matplotlib" in run["doc"]["plot_note"]


def test_summary_first_progress_bar_not_lines(run: Dict[str, Any]) -> None:
    """The first thing on stdout is the summary; no per-cell lines without --verbose."""
    assert run["stdout"].startswith("dropkit's speedup = other's time / dropkit's time")
    for v in VARIANTS:
        assert re.search(rf"^{re.escape(v)}\*? ", run["stdout"], re.M), v
    assert "rounds, " not in run["stderr"] and "rounds, " not in run["stdout"]  # a --verbose cell line
    assert f"every cell: {run['out'] / 'results.md'}" in run["stdout"]


def test_verbose_prints_cell_lines(tmp_path: Path) -> None:
    proc = _run(["--variants", "dropout", "--sizes", "10", "--repeats", "2", "--min-time", "0.0005",
                 "--no-plot", "--no-memory", "--verbose", "--out", str(tmp_path)])
    lines = re.findall(r"dropout (forward|backward) float32 n=2\^10 threads=1: .* 2 rounds, (\S+)", proc.stderr)
    assert sorted(d for d, _ in lines) == ["backward", "forward"], proc.stderr


def test_json_documented_fields(run: Dict[str, Any]) -> None:
    doc = run["doc"]
    assert doc["schema"] == cli.SCHEMA
    for key in ("created_utc", "argv", "config", "machine", "dropkit", "versions", "backends", "variants",
                "results", "cells", "summary", "kept_for_backward", "skipped", "targets", "files",
                "elapsed_s"):
        assert key in doc, key
    cfg = doc["config"]
    assert cfg["sizes"] == [1 << k for k in SIZES] and cfg["dtypes"] == ["float32"] and cfg["threads"] == [1]
    assert (cfg["min_rounds"], cfg["max_rounds"]) == (MIN_ROUNDS, MAX_ROUNDS)
    cpu = doc["machine"]["cpu"]
    assert cpu["model"] and isinstance(cpu["simd_flags"], list) and cpu["usable_cpus"] >= 1
    assert doc["dropkit"]["simd_target"] in ("scalar", "avx2", "avx512")
    assert doc["dropkit"]["stream_version"] == dropkit.STREAM_VERSION
    assert doc["versions"]["numpy"] == np.__version__ and doc["versions"]["dropkit"] == dropkit.__version__
    row_keys = {"variant", "direction", "dtype", "size", "threads", "threads_reported", "others_cpu_share",
                "backend", "calls_per_sample", "warmup_calls", "samples_s", "median_s", "q1_s", "q3_s", "min_s", "max_s",
                "spread_rel", "ns_per_element", "gb_per_s", "speedup", "ratio_to_stream"}  # fmt: skip
    for r in doc["results"]:
        assert row_keys <= set(r), row_keys - set(r)
        assert MIN_ROUNDS <= len(r["samples_s"]) <= MAX_ROUNDS and all(s > 0 for s in r["samples_s"])
        assert r["threads_reported"]["dropkit"] == r["threads"]
        if doc["config"]["torch"]:
            assert r["threads_reported"]["torch"] == r["threads"]


def test_every_cell_has_every_backend(run: Dict[str, Any]) -> None:
    doc = run["doc"]
    cells = _cells(doc)
    assert len(cells) == len(SIZES) * len(VARIANTS) * 2
    assert all(s["what"].startswith("backends") for s in doc["skipped"]), doc["skipped"]  # only a missing torch
    for key, by in cells.items():
        v = VARIANTS[key[0]]
        expected = {"dropkit", "multiply"} | ({"numpy"} if v.name in contenders.NUMPY else set())
        if doc["config"]["torch"]:
            expected |= ({"torch"} if v.name in contenders.TORCH else set())
            expected |= ({"dropkit-torch"} if v.torch_name else set())
        assert set(by) == expected, key


def test_speedup_computed_from_own_samples(run: Dict[str, Any]) -> None:
    for key, by in _cells(run["doc"]).items():
        n, itemsize = key[3], np.dtype(key[2]).itemsize
        for r in by.values():
            med = statistics.median(r["samples_s"])
            assert r["median_s"] == pytest.approx(med, rel=1e-12)
            assert r["speedup"] == pytest.approx(_med(by, "numpy") / med, rel=1e-12)
            assert r["ratio_to_stream"] == pytest.approx(med / _med(by, "multiply"), rel=1e-12)
            assert r["ns_per_element"] == pytest.approx(med / n * 1e9, rel=1e-12)
            assert r["gb_per_s"] == pytest.approx(2 * itemsize * n / med / 1e9, rel=1e-12)


def test_cells_stop_for_the_reason_they_give(run: Dict[str, Any]) -> None:
    """Each cell's record: its headline ratios and intervals recomputed from the samples, and a stop
    reason that holds (tight: every interval within tol; max-rounds: that many rounds)."""
    doc, cells = run["doc"], _cells(run["doc"])
    assert len(doc["cells"]) == len(cells)
    for c in doc["cells"]:
        by = cells[(c["variant"], c["direction"], c["dtype"], c["size"], c["threads"])]
        assert c["rounds"] == min(len(r["samples_s"]) for r in by.values())
        assert c["stop"] in ("tight", "max-rounds")  # no budget (--budget 0)
        widths = []
        for name, ratio in c["ratios"].items():
            a, b = name.split("/")
            assert ratio["ratio"] == pytest.approx(_med(by, a) / _med(by, b), rel=1e-12)
            q = sorted(x / y for x, y in zip(by[a]["samples_s"], by[b]["samples_s"]))
            assert q[0] <= ratio["ci_low"] <= ratio["ci_high"] <= q[-1]
            widths.append((ratio["ci_high"] - ratio["ci_low"]) / 2 / ratio["ratio"])
        if c["stop"] == "tight":
            assert c["rounds"] >= MIN_ROUNDS and max(widths) <= doc["config"]["tol"]
        else:
            assert c["rounds"] == MAX_ROUNDS


def test_summary_computed_from_own_samples(run: Dict[str, Any]) -> None:
    """Every summary number is other / dropkit of the cells' medians (forward, and forward + backward),
    over PyTorch with dropkit.torch where it has the variant; the printed rows show them."""
    doc, cells = run["doc"], _cells(run["doc"])
    assert [s["variant"] for s in doc["summary"]] == list(VARIANTS)
    for s in doc["summary"]:
        v = s["variant"]
        mine = "dropkit-torch" if doc["config"]["torch"] and VARIANTS[v].torch_name else "dropkit"
        assert s["torch_vs"] == mine and s["sizes"] == [1 << k for k in SIZES]
        for i, n in enumerate(s["sizes"]):
            f, b = cells[(v, "forward", "float32", n, 1)], cells[(v, "backward", "float32", n, 1)]
            assert s["numpy_forward"][i] == pytest.approx(_med(f, "numpy") / _med(f, "dropkit"), rel=1e-12)
            assert s["numpy_fwd_bwd"][i] == pytest.approx(
                (_med(f, "numpy") + _med(b, "numpy")) / (_med(f, "dropkit") + _med(b, "dropkit")), rel=1e-12)
            if "torch" in f:
                assert s["torch_fwd_bwd"][i] == pytest.approx(
                    (_med(f, "torch") + _med(b, "torch")) / (_med(f, mine) + _med(b, mine)), rel=1e-12)
        line = re.search(rf"^{re.escape(v)}\*? +(.*)$", run["stdout"], re.M)[1]
        shown = [x for x in line.split() if x != "|"][: 2 * len(SIZES)]
        assert shown == [report._r(x) for x in s["numpy_forward"] + s["numpy_fwd_bwd"]], (v, line)
        assert line.rstrip().endswith(s["verdict"])


def test_kept_for_backward(run: Dict[str, Any]) -> None:
    """dropkit keeps nothing; the NumPy formulation keeps a 1-byte mask per element (or, for broadcast
    noise, something smaller); PyTorch's F.dropout saves a mask too."""
    kept = run["doc"]["kept_for_backward"]["per_variant"]
    assert set(kept) == set(VARIANTS)
    for name, row in kept.items():
        assert "errors" not in row, row
        assert row["dropkit"] < 0.01, name
        if "noise_shape" in VARIANTS[name].params((64, 32, 4, 4), 0.5) or name == "feature-alpha":
            assert 0 < row["numpy"] < 1, name
        elif VARIANTS[name].family == "additive":  # x + noise: the backward is the identity, nothing kept
            assert row["numpy"] < 0.01, name
        elif name in contenders.NUMPY:
            assert row["numpy"] >= 1, name
        if row.get("dropkit-torch") is not None:
            assert row["dropkit-torch"] < 0.01, name
    if run["doc"]["config"]["torch"]:
        assert kept["dropout"]["torch"] >= 1  # a bool mask at least


def test_markdown_columns_match_json(run: Dict[str, Any]) -> None:
    md = (run["out"] / "results.md").read_text(encoding="utf-8")
    cells = _cells(run["doc"])
    section, size, checked = None, None, 0
    for line in md.splitlines():
        m = re.match(r"### (\S+) / (\S+) / (\S+) / (\d+) threads?$", line)
        if m:
            section = (m[1], m[2], m[3], int(m[4]))
            continue
        m = re.match(r"\| (2\^\d+)? ?\| (\S+) \|(.*)\|$", line)
        if section is None or not m or m[2] == "backend":
            continue
        size = 1 << int(m[1][2:]) if m[1] else size
        cols = [c.strip() for c in m[3].split("|")]
        by = cells[(section[0], section[1], section[2], size, section[3])]
        assert cols[3] == report._r(by[m[2]]["speedup"])
        if "torch" in by:
            assert cols[4] == report._r(_med(by, "torch") / _med(by, m[2]))
        assert int(cols[6]) == len(by[m[2]]["samples_s"])
        checked += 1
    assert checked == len(run["doc"]["results"])


def test_targets_reported_never_fail(targets: Dict[str, Any]) -> None:
    from dropkit.bench.targets import GENERAL_RATES, VARIANT_GOALS

    tg = targets["doc"]["targets"]
    assert "error" not in tg, tg.get("error")
    assert "others_cpu_share" in tg and tg["config"]["rate"] == 0.5
    keys = [r["key"] for r in tg["rows"]]
    others = [t for t in dropkit.available_simd_targets() if t != dropkit.simd_target()]
    expected = ["forward_over_multiply", "backward_over_multiply", "rate_1_over_multiply", "numpy_formula_over_forward"]
    expected += [f"rate_{r:g}_over_multiply_big" for r in GENERAL_RATES] + [f"default_over_{t}_big" for t in others]
    expected += ["forward_over_multiply_small"] + [f"rate_{r:g}_over_multiply_small" for r in GENERAL_RATES]
    expected += [f"default_over_{t}_small" for t in others]
    assert keys[: len(expected)] == expected
    assert all(f"{v}_forward_over_multiply" in keys for v, _ in VARIANT_GOALS)
    assert {"small_call_us", "small_multiply_us", "one_thread_over_two"} <= set(keys)
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
            assert r["pass"] is None and r["label"] in targets["stdout"]
            continue
        assert r["pass"] == (r["ratio"] <= r["goal"] if r["op"] == "<=" else r["ratio"] >= r["goal"])
        assert ("PASS" if r["pass"] else "MISS") in targets["stdout"]


# --- pieces --------------------------------------------------------------------------------------


def test_variant_target_rows() -> None:
    """Every variant of VARIANT_GOALS gets a forward and a backward row against np.multiply (and
    Gaussian the NumPy formula's row), ratios of the medians of interleaved samples."""
    from dropkit.bench.targets import VARIANT_GOALS, _variant_rows

    n = 2**14
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    rows = _variant_rows(x, g, np.empty_like(x), 0.5, 3, 3, 0.0, lambda: None, lambda msg: None)
    want = [f"{v}_{d}_over_multiply" for v, _ in VARIANT_GOALS for d in ("forward", "backward")]
    want.insert(want.index("gaussian_backward_over_multiply") + 1, "gaussian_numpy_formula_over_forward")
    assert [r.key for r in rows] == want
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
    assert calls[-12:] == list("ABC" "BCA" "CAB" "ABC")  # one call per sample, rotating start


def test_summarize_spread() -> None:
    s = timing.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median_s"] == 3.0 and s["min_s"] == 1.0 and s["max_s"] == 100.0
    assert s["spread_rel"] == pytest.approx((s["q3_s"] - s["q1_s"]) / 3.0)


def test_ratio_ci_order_statistics() -> None:
    """The distribution-free interval of a median: order statistics k and n + 1 - k, the narrowest
    with binomial coverage >= 90%: n = 5 and 7 give min..max; n = 8 the 2nd and 7th (coverage
    1 - 2 * 9/256 = 0.93); n = 20 the 6th and 15th (0.959; the 7th and 14th cover only 0.885)."""
    for n, (k, j) in {3: (1, 3), 5: (1, 5), 7: (1, 7), 8: (2, 7), 20: (6, 15)}.items():
        a = [float(i + 1) for i in range(n)][::-1]  # per-round ratios a_i / 1, in no particular order
        value, lo, hi = timing.ratio_ci(a, [1.0] * n)
        assert (lo, hi) == (float(k), float(j)), n
        assert value == statistics.median(a)
    value, _, _ = timing.ratio_ci([2.0, 4.0, 6.0], [1.0, 1.0, 4.0])  # ratio of medians, not median of ratios
    assert value == 4.0


class _FakeClock:
    """Stands in for time.perf_counter: every call of a candidate advances it by that call's cost."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def candidate(self, name: str, costs: List[float]) -> timing.Candidate:
        i = [0]

        def fn() -> None:
            self.now += costs[i[0] % len(costs)]
            i[0] += 1

        return timing.Candidate(name, fn)


@pytest.mark.parametrize("case", ["steady", "noisy", "noisy-deadline"])
def test_adaptive_rounds(monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """A steady ratio stops after the minimum rounds (tight); a noisy one runs to max_rounds, or
    until its deadline passes (budget) but never below the minimum."""
    clock = _FakeClock()
    monkeypatch.setattr(timing, "clock", clock)
    b_costs = [2.0] if case == "steady" else [1.0, 3.0, 2.0, 5.0]  # ratios 1, 1/3, 1/2, 1/5...
    cands = [clock.candidate("a", [1.0]), clock.candidate("b", b_costs)]
    meas = timing.calibrate(cands, warmup=1, min_sample_time=0.0)
    assert [m.number for m in meas.values()] == [1, 1]
    deadline = clock.now + 20.0 if case == "noisy-deadline" else None
    stop = timing.run_rounds(cands, meas, [("a", "b")], min_rounds=3, max_rounds=12, tol=0.05, deadline=deadline)
    rounds = len(meas["a"].samples)
    assert len(meas["b"].samples) == rounds
    if case == "steady":
        assert (stop, rounds) == ("tight", 3) and set(meas["b"].samples) == {2.0}
    elif case == "noisy":
        assert (stop, rounds) == ("max-rounds", 12)
    else:
        assert stop == "budget" and 3 <= rounds < 12 and clock.now >= deadline
        assert clock.now - deadline < 1.0 + max(b_costs)  # stopped at the first round boundary after it


def test_verdicts_and_sizes() -> None:
    n = [1 << 10, 1 << 14, 1 << 18, 1 << 22]
    assert report.pick_sizes(n) == [1 << 10, 1 << 18, 1 << 22]
    assert report.pick_sizes(n[:1]) == [1 << 10]
    assert report._verdict([2, 2, 2, 2], [2, 3, 4, 5], n) == "faster than NumPy and PyTorch everywhere"
    assert report._verdict([0.5, 2, 2, 2], [0.5, 0.9, 4, 5], n) == (
        "faster than NumPy from 2^14; faster than PyTorch from 2^18")
    assert report._verdict([0.5, 0.5, 0.5, 0.5], [None] * 4, n) == "slower than NumPy"
    assert report._verdict([0.5, 2, 0.5, 0.5], [1, 1, 1, 1], n) == (
        "faster than NumPy only at 2^14; faster than PyTorch everywhere")


def test_dropkit_entries_come_from_the_registry() -> None:
    """Every registry variant is timed for dropkit through its own forward/backward; a variant the
    bench has no formulation of gets dropkit alone."""
    for v in VARIANTS.values():
        names = list(contenders.builders(v, with_torch=True))
        assert names[0] == "dropkit" and ("dropkit-torch" in names) == (v.torch_name is not None)
        assert "dropkit-torch" not in contenders.builders(v, with_torch=False)
        x = np.linspace(-1, 1, 1 << 12, dtype=np.float32)
        case = contenders.make_case(v, x, x[::-1].copy(), 0.3, 5)
        k = contenders.dropkit_kernels(v, case)
        p = v.params(case.x.shape, 0.3)
        np.testing.assert_array_equal(k.forward(), v.forward(case.x, **p, seed=5), err_msg=v.name)
    new = contenders.VARIANTS["dropout"].__class__(**{**vars(VARIANTS["dropout"]), "name": "new-one"})
    assert list(contenders.builders(new, with_torch=True)) == ["dropkit", "dropkit-torch"]


def test_dropkit_torch_backend_computes_dropkits_bits() -> None:
    """The dropkit-torch kernels compute what the dropkit backend does (same bits, forward and
    autograd backward) on torch tensors sharing the case's memory, and record a graph."""
    torch = pytest.importorskip("torch", reason="the dropkit-torch backend needs PyTorch (dropkit[torch])")
    rng = np.random.default_rng(5)
    for v in (v for v in VARIANTS.values() if v.torch_name):
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(1 << 11).astype(dtype)
            case = contenders.make_case(v, x, rng.standard_normal(1 << 11).astype(dtype), 0.3, 77, torch)
            ref, dt = contenders.dropkit_kernels(v, case), contenders.dropkit_torch_kernels(v, case)
            y = dt.forward()
            assert isinstance(y, torch.Tensor) and y.requires_grad and y.dtype == torch.from_numpy(x).dtype
            np.testing.assert_array_equal(y.detach().numpy(), ref.forward(), err_msg=v.name)
            for _ in range(2):  # backward is timed repeatedly on one forward's graph
                np.testing.assert_array_equal(dt.backward().numpy(), ref.backward(), err_msg=v.name)


def test_tuned_numpy_is_a_correct_dropout() -> None:
    n = 1 << 16
    x = np.ones(n, np.float32)
    for name, kept_value in (("dropout", 4.0), ("dropout-classic", 1.0)):
        impl = contenders.NUMPY[name](contenders.make_case(VARIANTS[name], x, x, 0.75, 7))
        y = impl.forward()
        assert y.dtype == np.float32 and set(np.unique(y).tolist()) == {0.0, kept_value}
        sigma = (n * 0.25 * 0.75) ** 0.5
        assert abs(int(np.count_nonzero(y)) - 0.25 * n) < 5 * sigma
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


def test_cli_list_and_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list"]) == 0
    text = capsys.readouterr().out
    for name in VARIANTS:
        assert re.search(rf"^  {re.escape(name)} ", text, re.M), name
    for backend in contenders.BACKENDS:
        assert re.search(rf"^  {re.escape(backend)} ", text, re.M), backend
    assert "dropkit.torch: dropout2d" in text and "dropkit.torch: none" in text
    assert cli._size("14") == 1 << 14 and cli._size("2^20") == 1 << 20 and cli._size("100000") == 100000
    with pytest.raises(SystemExit):
        cli.main(["--rate", "1.5"])
    assert "--rate must be in (0, 1), got 1.5" in capsys.readouterr().err
    assert math.isfinite(timing.CONFIDENCE)
