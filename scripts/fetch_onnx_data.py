#!/usr/bin/env python3
"""Generate kann's ONNX conformance data from the installed onnx wheel.

Run inside the venv made by scripts/fetch-onnx-data.sh:

    python fetch_onnx_data.py OUTPUT_DIR

OUTPUT_DIR (e.g. ~/.cache/kann-data/onnx-1.23.2) gets:

    node/<test_name>/model.onnx
    node/<test_name>/test_data_set_0/input_<j>.pb, output_<j>.pb   (TensorProto)
    node/<test_name>/tolerance.json        (only if rtol/atol differ from 1e-3/1e-7)
    light/<model>/model.onnx
    light/<model>/test_data_set_0/input_<j>.pb, output_<j>.pb
    light/<model>/tolerance.json
    summary.json                           (counts, skipped tests, dtype histogram)
    .complete                              (stamp, written last)

Everything is written into a temporary sibling directory that is renamed onto
OUTPUT_DIR only once complete, so a half-finished run never looks complete.
The node data follow onnx/backend/test/cmd_tools.py (generate_data); the light
model inputs follow Runner.generate_dummy_data in onnx/backend/test/runner.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

ONNX_VERSION = "1.23.2"
DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-7
STAMP = ".complete"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dtype_name(data_type: int) -> str:
    return TensorProto.DataType.Name(data_type)


def to_tensor_proto(value, name: str) -> TensorProto | None:
    """Turn a test value into a named TensorProto, or None if it is not a plain tensor."""
    if isinstance(value, TensorProto):
        t = TensorProto()
        t.CopyFrom(value)
        t.name = name
        return t
    if isinstance(value, np.generic):  # numpy scalar, e.g. np.float32(1.0)
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        return numpy_helper.from_array(value, name)
    return None  # list (sequence), dict (map), None (empty optional), ...


def write_tolerance(path: Path, rtol: float, atol: float) -> None:
    path.write_text(json.dumps({"rtol": rtol, "atol": atol}) + "\n")


# ---------------------------------------------------------------------------
# (a) node tests
# ---------------------------------------------------------------------------
def write_node_tests(out: Path, dtype_counts: collections.Counter) -> tuple[int, list[dict]]:
    from onnx.backend.test.case import node as node_cases

    log("collecting onnx node test cases ...")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators emit overflow/divide warnings
        cases = node_cases.collect_testcases(None)
    log(f"  {len(cases)} cases collected")

    written = 0
    skipped: list[dict] = []
    for case in cases:
        model = case.model
        assert model is not None and case.data_sets, case.name
        graph = model.graph

        # Build every tensor first; skip the case if anything is not a plain tensor.
        reason = None
        for vi in list(graph.input) + list(graph.output):
            if not vi.type.HasField("tensor_type"):
                reason = f"{vi.name}: {vi.type.WhichOneof('value')}"
                break
        data_sets = []
        if reason is None:
            for inputs, outputs in case.data_sets:
                if len(inputs) != len(graph.input) or len(outputs) != len(graph.output):
                    reason = (
                        f"value count {len(inputs)}/{len(outputs)} != graph "
                        f"{len(graph.input)}/{len(graph.output)}"
                    )
                    break
                ins = [to_tensor_proto(v, vi.name) for v, vi in zip(inputs, graph.input)]
                outs = [to_tensor_proto(v, vi.name) for v, vi in zip(outputs, graph.output)]
                if any(t is None for t in ins + outs):
                    bad = [type(v).__name__ for v in list(inputs) + list(outputs)
                           if to_tensor_proto(v, "") is None]
                    reason = "non-tensor value(s): " + ",".join(sorted(set(bad)))
                    break
                data_sets.append((ins, outs))
        if reason is not None:
            skipped.append({"name": case.name, "reason": reason})
            continue

        case_dir = out / "node" / case.name
        case_dir.mkdir(parents=True)
        (case_dir / "model.onnx").write_bytes(model.SerializeToString())
        for i, (ins, outs) in enumerate(data_sets):
            ds = case_dir / f"test_data_set_{i}"
            ds.mkdir()
            for j, t in enumerate(ins):
                (ds / f"input_{j}.pb").write_bytes(t.SerializeToString())
                dtype_counts[dtype_name(t.data_type)] += 1
            for j, t in enumerate(outs):
                (ds / f"output_{j}.pb").write_bytes(t.SerializeToString())
                dtype_counts[dtype_name(t.data_type)] += 1
        rtol = getattr(case, "rtol", DEFAULT_RTOL)
        atol = getattr(case, "atol", DEFAULT_ATOL)
        if (rtol, atol) != (DEFAULT_RTOL, DEFAULT_ATOL):
            write_tolerance(case_dir / "tolerance.json", rtol, atol)
        written += 1
    return written, skipped


# ---------------------------------------------------------------------------
# (b) light models shipped in the wheel
# ---------------------------------------------------------------------------
def dummy_input(vi: onnx.ValueInfoProto, model_name: str) -> np.ndarray:
    """Exactly Runner.generate_dummy_data(x, random=False) from onnx/backend/test/runner."""
    if vi.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise NotImplementedError(f"{model_name}: input {vi.name} is not float32")
    shape = tuple(
        d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim
    )
    n = np.prod(shape)
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def light_tolerances() -> dict[str, tuple[float, float]]:
    """rtol/atol per light model, as declared by onnx's own model test cases."""
    import onnx.backend.test.case.model as model_cases

    tols = {}
    for case in model_cases.collect_testcases():
        if case.kind == "real" and case.url and "/data/light/" in case.url:
            tols[case.model_name] = (case.rtol, case.atol)
    return tols


def write_light_models(out: Path) -> list[dict]:
    import onnx.backend.test as backend_test

    light_src = Path(backend_test.__file__).parent / "data" / "light"
    tols = light_tolerances()
    result = []
    for model_path in sorted(light_src.glob("light_*.onnx")):
        name = model_path.stem[len("light_"):]
        log(f"light model {name} ...")
        model = onnx.load(str(model_path))
        graph = model.graph
        dst = out / "light" / name
        ds = dst / "test_data_set_0"
        ds.mkdir(parents=True)
        shutil.copyfile(model_path, dst / "model.onnx")

        inits = {i.name for i in graph.initializer}
        feeds = {}
        inputs = []
        for vi in graph.input:
            if vi.name in inits:
                continue
            value = dummy_input(vi, name)
            feeds[vi.name] = value
            j = len(inputs)
            (ds / f"input_{j}.pb").write_bytes(
                numpy_helper.from_array(value, vi.name).SerializeToString()
            )
            inputs.append({"name": vi.name, "shape": list(value.shape)})

        outputs = []
        prefix = str(model_path)[: -len(".onnx")]
        expected = [Path(f"{prefix}_output_{i}.pb") for i in range(len(graph.output))]
        if all(p.exists() for p in expected):
            ref_values = []
            for p in expected:
                t = TensorProto()
                t.ParseFromString(p.read_bytes())
                ref_values.append(t)
            source = "shipped"
        else:
            # Same fallback as onnx's runner: compute with the reference evaluator.
            from onnx.reference import ReferenceEvaluator

            log(f"  {name}: no shipped expected output, running ReferenceEvaluator")
            ref_values = [numpy_helper.from_array(o) for o in ReferenceEvaluator(model).run(None, feeds)]
            source = "reference"
        for i, (t, vi) in enumerate(zip(ref_values, graph.output)):
            shipped_name = t.name
            t.name = vi.name
            (ds / f"output_{i}.pb").write_bytes(t.SerializeToString())
            outputs.append({"name": vi.name, "shipped_name": shipped_name,
                            "dtype": dtype_name(t.data_type), "shape": list(t.dims)})

        rtol, atol = tols.get(name, (DEFAULT_RTOL, DEFAULT_ATOL))
        write_tolerance(dst / "tolerance.json", rtol, atol)
        result.append({"name": name, "inputs": inputs, "outputs": outputs,
                       "expected_output_source": source, "rtol": rtol, "atol": atol})
    return result


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} OUTPUT_DIR", file=sys.stderr)
        return 2
    if onnx.__version__ != ONNX_VERSION:
        log(f"error: need onnx=={ONNX_VERSION}, found {onnx.__version__}")
        return 1
    final = Path(sys.argv[1]).resolve()
    if (final / STAMP).exists():
        log(f"{final} is already complete")
        return 0
    final.parent.mkdir(parents=True, exist_ok=True)
    # Clear leftovers of interrupted runs.
    for old in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    tmp.mkdir()

    t0 = time.time()
    dtype_counts: collections.Counter = collections.Counter()
    n_node, skipped = write_node_tests(tmp, dtype_counts)
    log(f"node tests: {n_node} written, {len(skipped)} skipped ({time.time() - t0:.1f}s)")
    light = write_light_models(tmp)

    summary = {
        "onnx_version": onnx.__version__,
        "numpy_version": np.__version__,
        "node_tests_written": n_node,
        "node_tests_skipped": len(skipped),
        "skipped": skipped,
        "node_tensor_dtypes": dict(sorted(dtype_counts.items())),
        "light_models": light,
        "seconds": round(time.time() - t0, 1),
    }
    (tmp / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (tmp / STAMP).write_text(f"onnx {onnx.__version__}\n")

    # Swap into place: an incomplete previous tree (no stamp) is moved aside first.
    if final.exists():
        if (final / STAMP).exists():  # a concurrent run finished first
            shutil.rmtree(tmp)
            return 0
        trash = final.parent / f".{final.name}.tmp-old-{os.getpid()}"
        final.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    tmp.rename(final)

    if skipped:
        log("skipped node tests (non-tensor inputs/outputs):")
        for s in skipped:
            log(f"  {s['name']}: {s['reason']}")
    print(f"node tests written: {n_node}")
    print(f"node tests skipped: {len(skipped)}")
    print(f"light models: {len(light)} ({', '.join(m['name'] for m in light)})")
    print(f"took {summary['seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
