#!/usr/bin/env python3
"""Make random-weight versions of onnx's light models, with ONNX Runtime outputs.

Run inside the venv made by scripts/make-random-models.sh:

    python make_random_models.py LIGHT_DIR OUTPUT_DIR

LIGHT_DIR is the light folder made by fetch-onnx-data.sh
(e.g. ~/.cache/kann-data/onnx-1.23.2/light). OUTPUT_DIR
(e.g. ~/.cache/kann-data/random-models-v1) gets:

    light/<model>/model.onnx
    light/<model>/test_data_set_0/input_0.pb, output_0.pb   (TensorProto)
    light/<model>/tolerance.json            {"rtol": 1e-3, "atol": 1e-5 or more, see below}
    summary.json                            (seeds, output statistics, ...)
    .complete                               (stamp, written last)

The light models build their weights with ConstantOfShape (every weight 0.02),
so their outputs are flat. Here every weight-making ConstantOfShape node, and
every float initializer with more than one element, becomes a random float32
initializer of the same shape, drawn from numpy.random.default_rng(seed) with a
fixed seed per model. The distribution follows what the constant feeds (looked
up through Unsqueeze and Reshape):

    Conv W / Gemm B        normal * sqrt(2 / fan_in)    (He)
    Conv / Gemm bias       normal * 0.05
    BatchNormalization     scale U(0.5, 1.5), bias N(0, 0.1),
                           mean N(0, 0.1), var U(0.5, 1.5)
    Mul operand (scale)    U(0.5, 1.5)
    Add operand (bias)     N(0, 0.1)

The Conv feeding each LRN is scaled (measured with ORT) so that alpha *
mean(x^2) is about 1 at the LRN, as in trained networks; otherwise LRN would
be nearly the identity and untested.

Deep random ReLU networks send every input to nearly the same features, so
the logits would hardly depend on the input. The last Conv/Gemm before the
output (or before the final Softmax) is therefore calibrated with ORT: its bias
is shifted by minus the mean of its pre-activation over CAL_INPUTS other random
inputs (per channel), then weight and bias are scaled together so the logits of
the test input have std LOGIT_STD (then shrunk by 0.8 while a final softmax
gives a probability above MAX_TOP_PROB). That makes the output follow the input (an
error anywhere shows) and keeps softmax outputs away from one-hot however much
the activations grow through the network. Everything else in the model (opset,
node order, names) is unchanged. The input is rng.standard_normal(shape).

Expected outputs come from ONNX Runtime on CPUExecutionProvider with graph
optimizations disabled (ORT_DISABLE_ALL), so the plain graph is computed.
tolerance.json has rtol 1e-3 and atol 1e-5, except where float32 rounding
alone moves the output more: the noise is measured as ORT with all
optimizations against ORT with none, and atol is raised (one significant digit,
rounded up) until NOISE_MARGIN times that noise passes. Only densenet121,
whose raw logits suffer the most cancellation, needs this.
Everything is written into a temporary sibling folder that is renamed onto
OUTPUT_DIR only once complete.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VERSION = "random-models-v1"
RTOL = 1e-3
ATOL = 1e-5
LOGIT_STD = 2.0
CAL_INPUTS = 4
MAX_TOP_PROB = 0.25
NOISE_MARGIN = 10.0
STAMP = ".complete"
PASS_THROUGH = {"Unsqueeze", "Reshape", "Identity"}
# Ops between the last Conv/Gemm and the logits that are positively homogeneous,
# so scaling the layer's weight and bias by k scales the logits by k.
HOMOGENEOUS = {"Relu", "GlobalAveragePool", "AveragePool", "MaxPool", "Reshape",
               "Flatten", "Dropout", "Identity"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def seed_for(name: str) -> int:
    return zlib.crc32(name.encode())


def reshaped(shape: list[int], target: np.ndarray) -> list[int]:
    """Shape after ONNX Reshape (0 copies the input dim, -1 is inferred)."""
    out = [shape[i] if d == 0 else int(d) for i, d in enumerate(target)]
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = int(np.prod(shape)) // known
    return out


class Randomizer:
    def __init__(self, model: onnx.ModelProto, rng: np.random.Generator):
        self.model = model
        self.rng = rng
        g = model.graph
        self.inits = {i.name: i for i in g.initializer}
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        for n in g.node:
            for k, name in enumerate(n.input):
                self.consumers.setdefault(name, []).append((n, k))
        self.roles: dict[str, int] = {}

    def const_int(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name])

    def role(self, name: str, shape: list[int]) -> tuple[str, float]:
        """(role, fan_in) of a constant, following Unsqueeze/Reshape to the real user."""
        users = self.consumers.get(name, [])
        if len(users) != 1:
            raise ValueError(f"{name}: {len(users)} consumers, expected 1")
        node, k = users[0]
        op = node.op_type
        if op in PASS_THROUGH:
            if op == "Reshape" and k == 0:
                shape = reshaped(shape, self.const_int(node.input[1]))
            elif op == "Unsqueeze":
                pass  # adding 1-dims changes neither role nor fan-in
            return self.role(node.output[0], shape)
        if op == "Conv":
            if k == 1:
                return "conv_w", float(np.prod(shape[1:]))
            if k == 2:
                return "bias", 0.0
        if op == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if k == 1:
                fan_in = shape[1] if attrs.get("transB", 0) else shape[0]
                return "gemm_w", float(fan_in)
            if k == 2:
                return "bias", 0.0
        if op == "BatchNormalization" and 1 <= k <= 4:
            return ["bn_scale", "bn_bias", "bn_mean", "bn_var"][k - 1], 0.0
        if op == "Mul":
            return "scale", 0.0
        if op in ("Add", "Sum"):
            return "shift", 0.0
        raise ValueError(f"{name}: no rule for input {k} of {op} {node.name or node.output[0]}")

    def draw(self, name: str, shape: list[int]) -> np.ndarray:
        role, fan_in = self.role(name, shape)
        self.roles[role] = self.roles.get(role, 0) + 1
        rng = self.rng
        if role in ("conv_w", "gemm_w"):
            x = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif role == "bias":
            x = rng.standard_normal(shape) * 0.05
        elif role in ("bn_scale", "bn_var", "scale"):
            x = rng.uniform(0.5, 1.5, shape)
        elif role in ("bn_bias", "bn_mean", "shift"):
            x = rng.standard_normal(shape) * 0.1
        else:
            raise AssertionError(role)
        return x.astype(np.float32)

    def run(self) -> int:
        g = self.model.graph
        graph_inputs = {vi.name for vi in g.input}
        inits_listed_as_inputs = all(i.name in graph_inputs for i in g.initializer)
        replaced = 0
        made: set[str] = set()
        new_nodes = []
        dropped_shapes = []
        for n in g.node:
            if n.op_type == "ConstantOfShape" and n.input[0] in self.inits:
                shape = [int(d) for d in self.const_int(n.input[0])]
                value = numpy_helper.to_array(n.attribute[0].t) if n.attribute else None
                if value is None or value.dtype != np.float32:
                    new_nodes.append(n)
                    continue
                arr = self.draw(n.output[0], shape)
                g.initializer.append(numpy_helper.from_array(arr, n.output[0]))
                if inits_listed_as_inputs:
                    g.input.append(helper.make_tensor_value_info(
                        n.output[0], TensorProto.FLOAT, shape))
                dropped_shapes.append(n.input[0])
                made.add(n.output[0])
                replaced += 1
            else:
                new_nodes.append(n)
        del g.node[:]
        g.node.extend(new_nodes)
        # Shape tensors whose only user was a removed ConstantOfShape go too.
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        gone = {s for s in dropped_shapes if s not in used}
        kept = [i for i in g.initializer if i.name not in gone]
        del g.initializer[:]
        g.initializer.extend(kept)
        kept_in = [vi for vi in g.input if vi.name not in gone]
        del g.input[:]
        g.input.extend(kept_in)
        # Float initializers with more than one element (the real-valued ones);
        # the initializers made above from ConstantOfShape are already random.
        for init in g.initializer:
            if init.name in made or init.data_type != TensorProto.FLOAT:
                continue
            if int(np.prod(init.dims)) <= 1 or init.name not in self.consumers:
                continue
            arr = self.draw(init.name, list(init.dims))
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
            replaced += 1
        return replaced


def randomize(model: onnx.ModelProto, rng: np.random.Generator) -> tuple[int, dict]:
    """Randomize the weights in place; returns (count, histogram of roles)."""
    r = Randomizer(model, rng)
    n = r.run()
    return n, r.roles


def ort_session(model: onnx.ModelProto):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def logits_layer(model: onnx.ModelProto) -> tuple[str, onnx.NodeProto]:
    """(logits tensor, the Conv/Gemm whose weight and bias scale it linearly)."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    out = g.output[0].name
    node = producer[out]
    logits = out
    if node.op_type == "Softmax":
        logits = node.input[0]
        node = producer[logits]
    while node.op_type in HOMOGENEOUS:
        node = producer[node.input[0]]
    if node.op_type not in ("Conv", "Gemm"):
        raise ValueError(f"logits {logits} come from {node.op_type}, not Conv/Gemm")
    return logits, node


def scale_initializer(model: onnx.ModelProto, name: str, k: float) -> None:
    for init in model.graph.initializer:
        if init.name == name:
            arr = numpy_helper.to_array(init) * np.float32(k)
            init.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))
            return
    raise KeyError(name)


def boost_lrn(model: onnx.ModelProto, feeds: dict) -> list[dict]:
    """Scale the Conv before each LRN so that alpha * mean(x^2) is about 1 there.

    With He-scaled activations near 1, alpha/size * sum(x^2) (alpha 1e-4) is
    about 1e-4 and LRN is nearly the identity, so a wrong LRN would not show.
    Trained AlexNet-style networks have activations of hundreds there.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    done = []
    for lrn in [n for n in model.graph.node if n.op_type == "LRN"]:
        x = lrn.input[0]
        conv = producer[x]
        while conv.op_type in HOMOGENEOUS:
            conv = producer[conv.input[0]]
        if conv.op_type != "Conv":
            raise ValueError(f"LRN {lrn.output[0]}: input comes from {conv.op_type}")
        alpha = next((helper.get_attribute_value(a) for a in lrn.attribute
                      if a.name == "alpha"), 1e-4)
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        probe.graph.output.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, None))
        ms = float(np.mean(np.square(ort_session(probe).run([x], feeds)[0], dtype=np.float64)))
        k = float(np.sqrt(1.0 / (alpha * ms)))
        for name in list(conv.input[1:3]):
            if name:
                scale_initializer(model, name, k)
        done.append({"lrn": lrn.output[0], "conv": conv.output[0], "factor": k,
                     "alpha_mean_sq_before": alpha * ms})
    return done


def get_initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    for init in model.graph.initializer:
        if init.name == name:
            return init
    raise KeyError(name)


def calibrate(model: onnx.ModelProto, feeds: dict, rng: np.random.Generator) -> dict:
    """Center and scale the final Conv/Gemm so the logits follow the input.

    Deep random ReLU networks map every input to nearly the same features, so
    the logits would hardly depend on the input and a wrong early layer could
    go unnoticed. The final layer's bias is therefore shifted by minus the mean
    of its pre-activation over CAL_INPUTS extra random inputs (per output
    channel), which removes the part common to all inputs; then its weight and
    bias are scaled together so the logits of the test input have std LOGIT_STD.
    """
    logits, layer = logits_layer(model)
    pre = layer.output[0]
    producer = {o: n for n in model.graph.node for o in n.output}

    def source(name: str) -> str:  # the weight of inception_v1 goes through a Reshape
        while name in producer and producer[name].op_type in PASS_THROUGH:
            name = producer[name].input[0]
        return name

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    out0 = probe.graph.output[0].name
    for name in dict.fromkeys([pre, logits]):
        if name != out0:
            probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))

    cal_feeds = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in feeds.items()}
                 for _ in range(CAL_INPUTS)]
    sess = ort_session(probe)
    pre_test, logits_test = sess.run([pre, logits], feeds)
    cal = [sess.run([pre, logits], f) for f in cal_feeds]
    std_before = float(np.std(logits_test))
    sens_before = float(np.std(logits_test - cal[0][1]) / std_before)

    centered = False
    if len(layer.input) > 2 and layer.input[2]:
        axes = tuple(i for i in range(pre_test.ndim) if i != 1)
        mean = np.mean([p.mean(axis=axes) for p, _ in cal], axis=0)  # per output channel
        for m in (model, probe):
            init = get_initializer(m, source(layer.input[2]))
            bias = numpy_helper.to_array(init).astype(np.float64)
            bias = bias - mean.reshape(bias.shape)
            init.CopyFrom(numpy_helper.from_array(bias.astype(np.float32), init.name))
        centered = True
        sess = ort_session(probe)
        _, logits_test = sess.run([pre, logits], feeds)
    std = float(np.std(logits_test))
    if not np.isfinite(std) or std == 0.0:
        raise ValueError(f"logits {logits}: std {std}")
    k = LOGIT_STD / std
    for m in (model, probe):
        for name in list(layer.input[1:3]):
            if name:
                scale_initializer(m, source(name), k)
    # Keep a final softmax well away from one-hot (squeezenet's logits, a mean of
    # ReLUs, have a long upper tail): shrink while its top probability is large.
    sess = ort_session(probe)
    while logits != out0:
        top = float(np.max(sess.run([out0], feeds)[0]))
        if top <= MAX_TOP_PROB:
            break
        for m in (model, probe):
            for name in list(layer.input[1:3]):
                if name:
                    scale_initializer(m, source(name), 0.8)
        k *= 0.8
        sess = ort_session(probe)
    # How much the logits move when the input is replaced by another random one.
    _, logits_test = sess.run([pre, logits], feeds)
    _, logits_other = sess.run([pre, logits], cal_feeds[0])
    sens = float(np.std(logits_test - logits_other) / np.std(logits_test))
    return {"logits": logits, "layer": pre, "centered": centered,
            "std_before": std_before, "factor": k,
            "input_sensitivity_before": sens_before, "input_sensitivity": sens}


def stats(y: np.ndarray) -> dict:
    flat = y.reshape(-1)
    top = np.argsort(-flat, kind="stable")[:5]
    return {
        "shape": list(y.shape),
        "std": float(np.std(y)), "min": float(np.min(y)), "max": float(np.max(y)),
        "mean": float(np.mean(y)),
        "top5": [int(i) for i in top], "top5_values": [float(flat[i]) for i in top],
        "distinct": int(np.unique(flat).size),
    }


def check_not_degenerate(name: str, y: np.ndarray, softmax: bool) -> None:
    s = stats(y)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: output has non-finite values")
    if s["distinct"] < max(2, y.size // 2):
        raise ValueError(f"{name}: output has only {s['distinct']} distinct values")
    if s["std"] <= 1e-6 * max(1.0, abs(s["mean"])):
        raise ValueError(f"{name}: output is (nearly) constant")
    if softmax and s["max"] > MAX_TOP_PROB:
        raise ValueError(f"{name}: softmax output close to one-hot (max {s['max']})")


def noise_atol(model: onnx.ModelProto, feeds: dict, want: list[np.ndarray]) -> tuple[float, float]:
    """(float32 noise estimate, atol that lets NOISE_MARGIN times that noise pass).

    The noise is ORT with all graph optimizations (other conv algorithms,
    fusions) against ORT with none. The atol is raised above ATOL only where
    rtol * |expected| does not already cover NOISE_MARGIN times the noise.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    got = ort.InferenceSession(model.SerializeToString(), so,
                               providers=["CPUExecutionProvider"]).run(None, feeds)
    noise, need = 0.0, 0.0
    for g, w in zip(got, want):
        w = np.asarray(w, dtype=np.float64)
        d = np.abs(np.asarray(g, dtype=np.float64) - w)
        noise = max(noise, float(d.max()))
        need = max(need, float((NOISE_MARGIN * d - RTOL * np.abs(w)).max()))
    if need <= ATOL:
        return noise, ATOL
    e = 10.0 ** np.floor(np.log10(need))
    return noise, float(np.ceil(need / e) * e)  # one significant digit, rounded up


def make_model(src: Path, dst: Path, name: str) -> dict:
    model = onnx.load(str(src / "model.onnx"))
    seed = seed_for(name)
    rng = np.random.default_rng(seed)
    n_replaced, roles = randomize(model, rng)
    onnx.checker.check_model(model)

    g = model.graph
    init_names = {i.name for i in g.initializer}
    feeds = {}
    inputs = []
    for vi in g.input:
        if vi.name in init_names:
            continue
        tt = vi.type.tensor_type
        if tt.elem_type != TensorProto.FLOAT:
            raise NotImplementedError(f"{name}: input {vi.name} is not float32")
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim)
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
        inputs.append({"name": vi.name, "shape": list(shape)})

    lrn = boost_lrn(model, feeds)
    cal = calibrate(model, feeds, np.random.default_rng(seed + 1))
    t0 = time.time()
    results = ort_session(model).run(None, feeds)
    ort_seconds = time.time() - t0

    softmax = any(n.op_type == "Softmax" and n.output[0] == g.output[0].name for n in g.node)
    ds = dst / "test_data_set_0"
    ds.mkdir(parents=True)
    (dst / "model.onnx").write_bytes(model.SerializeToString())
    for j, inp in enumerate(inputs):
        t = numpy_helper.from_array(feeds[inp["name"]], inp["name"])
        (ds / f"input_{j}.pb").write_bytes(t.SerializeToString())
    outputs = []
    for j, (y, vi) in enumerate(zip(results, g.output)):
        y = np.asarray(y)
        check_not_degenerate(f"{name}/{vi.name}", y, softmax)
        (ds / f"output_{j}.pb").write_bytes(numpy_helper.from_array(y, vi.name).SerializeToString())
        outputs.append({"name": vi.name, "dtype": str(y.dtype), **stats(y)})
    noise, atol = noise_atol(model, feeds, results)
    (dst / "tolerance.json").write_text(json.dumps({"rtol": RTOL, "atol": atol}) + "\n")
    return {"name": name, "seed": seed, "replaced_constants": n_replaced, "roles": roles,
            "lrn_boost": lrn, "calibration": cal, "ort_noise": noise, "rtol": RTOL, "atol": atol,
            "inputs": inputs, "outputs": outputs,
            "ort_seconds": round(ort_seconds, 2)}


def softmax_v1(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """Softmax of opset 1-12: flatten to 2-D at `axis`, normalize each row."""
    x2 = x.reshape(int(np.prod(x.shape[:axis])), -1).astype(np.float64)
    e = np.exp(x2 - x2.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


def cross_check(dst: Path, name: str) -> dict:
    """Compare ORT with onnx.reference.ReferenceEvaluator on the logits and the output.

    ReferenceEvaluator (onnx 1.23.2) runs opset-9 Softmax with the opset-13 default
    axis -1 (squeezenet's [1,1000,1,1] output becomes all ones), so its final
    output is replaced by an opset-9 softmax (axis 1) of its own logits.
    """
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(dst / "model.onnx"))
    ds = dst / "test_data_set_0"
    feeds = {}
    for p in sorted(ds.glob("input_*.pb")):
        t = TensorProto()
        t.ParseFromString(p.read_bytes())
        feeds[t.name] = numpy_helper.to_array(t)
    out_name = model.graph.output[0].name
    logits, _ = logits_layer(model)
    if logits != out_name:
        model.graph.output.append(helper.make_tensor_value_info(logits, TensorProto.FLOAT, None))
    names = [out_name, logits] if logits != out_name else [out_name]
    t0 = time.time()
    ref = dict(zip(names, ReferenceEvaluator(model).run(names, feeds)))
    seconds = round(time.time() - t0, 1)
    got = dict(zip(names, ort_session(model).run(names, feeds)))
    softmax = next((n for n in model.graph.node
                    if n.op_type == "Softmax" and n.output[0] == out_name), None)
    ref_raw_out = ref[out_name]
    if softmax is not None:
        axis = next((helper.get_attribute_value(a) for a in softmax.attribute
                     if a.name == "axis"), 1)
        ref[out_name] = softmax_v1(ref[logits], axis)
    atol = json.loads((dst / "tolerance.json").read_text())["atol"]
    result = {"model": name, "seconds": seconds, "atol": atol}
    ok = True
    for n in names:
        want = got[n].astype(np.float64)
        diff = np.abs(ref[n].astype(np.float64) - want)
        within = bool(np.all(diff <= atol + RTOL * np.abs(want)))
        ok &= within
        result[n] = {"max_abs_diff": float(diff.max()),
                     "max_rel_diff": float((diff / np.maximum(np.abs(want), 1e-30)).max()),
                     "within_tolerance": within}
    if softmax is not None:
        result["reference_evaluator_raw_softmax_max_abs_diff"] = float(
            np.abs(ref_raw_out.astype(np.float64) - got[out_name]).max())
    result["within_tolerance"] = ok
    return result


def main() -> int:
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} LIGHT_DIR OUTPUT_DIR", file=sys.stderr)
        return 2
    import onnxruntime as ort

    src_root = Path(sys.argv[1]).resolve()
    final = Path(sys.argv[2]).resolve()
    if (final / STAMP).exists():
        log(f"{final} is already complete")
        return 0
    names = sorted(p.name for p in src_root.iterdir() if (p / "model.onnx").exists())
    if not names:
        log(f"error: no light models in {src_root}")
        return 1
    final.parent.mkdir(parents=True, exist_ok=True)
    for old in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    tmp.mkdir()

    t0 = time.time()
    models = []
    for name in names:
        log(f"{name} ...")
        info = make_model(src_root / name, tmp / "light" / name, name)
        o = info["outputs"][0]
        log(f"  seed {info['seed']}, {info['replaced_constants']} constants randomized, "
            f"logits std {info['calibration']['std_before']:.4g}, final layer centered and "
            f"scaled x{info['calibration']['factor']:.4g}; logit change for another input: "
            f"{info['calibration']['input_sensitivity_before']:.3g} -> "
            f"{info['calibration']['input_sensitivity']:.3g} of their std")
        print(f"{name:14s} {o['name']} {o['shape']}: std {o['std']:.4g} min {o['min']:.4g} "
              f"max {o['max']:.4g} top5 {o['top5']}; ORT noise {info['ort_noise']:.2g}, "
              f"atol {info['atol']:g}", flush=True)
        models.append(info)

    log("cross-checking squeezenet against onnx.reference.ReferenceEvaluator ...")
    xc = cross_check(tmp / "light" / "squeezenet", "squeezenet")
    for key, v in xc.items():
        if isinstance(v, dict):
            print(f"ORT vs ReferenceEvaluator (squeezenet) {key}: max abs diff "
                  f"{v['max_abs_diff']:.3g}, max rel diff {v['max_rel_diff']:.3g}, "
                  f"within tolerance: {v['within_tolerance']}", flush=True)
    if "reference_evaluator_raw_softmax_max_abs_diff" in xc:
        print("  (ReferenceEvaluator's own opset-9 Softmax, which uses axis -1, is off by "
              f"{xc['reference_evaluator_raw_softmax_max_abs_diff']:.3g}; "
              "compared with softmax(axis=1) of its logits instead)", flush=True)
    if not xc["within_tolerance"]:
        log("error: ORT and ReferenceEvaluator disagree beyond the tolerance")
        return 1

    summary = {
        "version": VERSION, "source": str(src_root),
        "onnx_version": onnx.__version__, "onnxruntime_version": ort.__version__,
        "numpy_version": np.__version__, "rtol": RTOL, "default_atol": ATOL, "logit_std": LOGIT_STD,
        "models": models, "cross_check": xc, "seconds": round(time.time() - t0, 1),
    }
    (tmp / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (tmp / STAMP).write_text(f"{VERSION} onnx {onnx.__version__} onnxruntime {ort.__version__}\n")

    if final.exists():
        if (final / STAMP).exists():  # a concurrent run finished first
            shutil.rmtree(tmp)
            return 0
        trash = final.parent / f".{final.name}.tmp-old-{os.getpid()}"
        final.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    tmp.rename(final)
    print(f"took {summary['seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
