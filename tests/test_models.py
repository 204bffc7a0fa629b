"""The embedding model layer: weights proven right by ImageNet classification, embeddings
behaving like embeddings, the cached forms agreeing, the .pth reader refusing code."""
from __future__ import annotations

import collections
import io
import os
import pickle
import sys
import time
import types
import zipfile

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorflow")
skdata = pytest.importorskip("skimage.data")

from sparkdup.models import pth_reader  # noqa: E402
from sparkdup.models import registry  # noqa: E402
from sparkdup.udfs.embed import embed_arrays, fit_to_square, get_model  # noqa: E402

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="session")
def model_cache():
    """The default model's cache, built once if missing (in $SPARKDUP_CACHE/models)."""
    from sparkdup.models import build_cache

    build_cache.build(verbose=False)
    return build_cache.cached_paths()


@pytest.fixture(scope="module")
def photos():
    return {"chelsea": skdata.chelsea(), "coffee": skdata.coffee()}


@pytest.fixture(scope="module")
def classifier():
    from sparkdup.models.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(include_top=True)  # the plain (unfused) rebuild, from the .pth


def _top5(model, rgb):
    x = fit_to_square(rgb, 224, "center_crop")[None].astype(np.float32)
    logits = model(x, training=False)["logits"].numpy()[0]
    return list(np.argsort(-logits)[:5])


def _jpeg(rgb, quality=75):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


# ------------------------------------------------------------------ (a) the weights


def test_classifies_cat_and_coffee(classifier, photos):
    cat = _top5(classifier, photos["chelsea"])
    coffee = _top5(classifier, photos["coffee"])
    assert CAT_CLASSES & set(cat), f"chelsea top-5 {cat} has no cat class"
    assert cat[0] in CAT_CLASSES
    assert COFFEE_CLASSES & set(coffee), f"coffee top-5 {coffee} has no espresso/cup/mug"
    assert coffee[0] in COFFEE_CLASSES


def test_cached_fused_model_matches_plain_rebuild(classifier, photos, model_cache):
    """The cache folds batch norm into the convolutions; the function must not change."""
    x = np.stack([fit_to_square(p, 224) for p in photos.values()])
    plain = classifier(x.astype(np.float32), training=False)["features"].numpy()
    plain /= np.linalg.norm(plain, axis=1, keepdims=True)
    cached = get_model("efficientnet_lite0:keras")(x)
    assert np.allclose((plain * cached).sum(1), 1.0, atol=1e-5)


# --------------------------------------------------------------- (b) the embeddings


def test_embeddings_unit_norm_and_similarity(photos, model_cache):
    chelsea, coffee = photos["chelsea"], photos["coffee"]
    e = embed_arrays("efficientnet_lite0", [chelsea, chelsea, _jpeg(chelsea), coffee], batch_size=3)
    assert e.shape == (4, 1280) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] == pytest.approx(1.0, abs=1e-5)  # same image twice
    assert sim[0, 2] > 0.9  # JPEG re-encode of the same photo
    assert sim[0, 3] < 0.5  # cat vs coffee
    assert sim[0, 2] - sim[0, 3] > 0.4


def test_embed_arrays_batches_agree_and_empty(photos, model_cache):
    imgs = [photos["chelsea"], photos["coffee"], photos["chelsea"][::2, ::2]]
    one = embed_arrays("efficientnet_lite0", imgs, batch_size=1)
    three = embed_arrays("efficientnet_lite0", imgs, batch_size=3)
    assert np.allclose(one, three, atol=1e-5)
    assert embed_arrays("efficientnet_lite0", [], batch_size=4).shape == (0, 1280)


def test_model_cache_is_a_module_global(model_cache):
    import sparkdup.udfs.embed as embed_mod

    m = get_model("efficientnet_lite0")
    assert get_model("efficientnet_lite0") is m
    assert embed_mod._MODELS["efficientnet_lite0"] is m


def test_keras_application_with_local_weights(photos, tmp_path):
    """keras:<App> takes a local weights file and its own preprocess_input."""
    import keras

    from sparkdup.models import registry

    app = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(96, 96, 3), pooling="avg")
    weights = tmp_path / "mnv3s.weights.h5"
    app.save_weights(weights)
    name = registry.model_name("keras:MobileNetV3Small?size=96", str(weights))
    spec = registry.resolve(name)
    assert spec.input_size == 96 and spec.preprocessing == "keras:MobileNetV3Small"
    imgs = [photos["chelsea"], photos["coffee"]]
    e = embed_arrays(name, imgs)
    x = np.stack([fit_to_square(i, 96) for i in imgs]).astype(np.float32)
    ref = app(keras.applications.mobilenet_v3.preprocess_input(x), training=False).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert e.shape == (2, 576)
    assert np.allclose((e * ref).sum(1), 1.0, atol=1e-4)
    with pytest.raises(ValueError):
        registry.resolve("no_such_model")


# --------------------------------------------------------------- fit_to_square


def test_fit_to_square_center_crop_and_letterbox():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = 200  # the central third is bright
    crop = fit_to_square(img, 50, "center_crop")
    assert crop.shape == (50, 50, 3) and crop.dtype == np.uint8
    assert crop[:, 2:-2].min() >= 190  # only the centre remains (edges blend with their neighbours)
    box = fit_to_square(img, 60, "letterbox")
    assert box.shape == (60, 60, 3)
    assert (box[:15] == 255).all() and (box[-15:] == 255).all()  # white bars top and bottom
    assert (box[25:35, :15] == 0).all() and (box[25:35, 25:35] >= 190).all()
    assert fit_to_square(np.zeros((7, 9), np.uint8), 8).shape == (8, 8, 3)  # grey accepted
    with pytest.raises(ValueError):
        fit_to_square(img, 50, "stretch")


# -------------------------------------------------------------- (c) the .pth reader


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _Evil(str(marker))}, protocol=2)
    # as a legacy stream file (what the shipped .pth is) ...
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(
        pickle.dumps(pth_reader.LEGACY_MAGIC, 2) + pickle.dumps(pth_reader.LEGACY_PROTOCOL, 2)
        + pickle.dumps({"little_endian": True}, 2) + payload
    )
    # ... and as a zip file (what torch >= 1.6 writes)
    zipped = tmp_path / "evil_zip.pth"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    for path in (legacy, zipped):
        with pytest.raises(pth_reader.UnsafePickleError, match="system"):
            pth_reader.load_state_dict(path)
    assert not marker.exists()
    # any other global is refused too, e.g. builtins.eval
    with pytest.raises(pth_reader.UnsafePickleError, match="eval"):
        pth_reader.RestrictedUnpickler(io.BytesIO(b"cbuiltins\neval\n(S'1'\ntR.")).load()


def test_zip_format_roundtrip_with_views(tmp_path, monkeypatch):
    """A zip-format state dict written by a stand-in 'torch' (strided view, offset, fp16)."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):  # pragma: no cover - only referenced by name
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    storages = {}
    for name in ("FloatStorage", "HalfStorage"):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch_mod, name, cls)
        storages[name] = cls
    torch_mod._utils = utils_mod
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_mod)

    base = np.arange(24, dtype=np.float32)
    half = np.linspace(-1, 1, 6).astype(np.float16)

    entries = collections.OrderedDict()
    specs = {
        "a": ("0", storages["FloatStorage"], 24, 0, (2, 3, 4), (12, 4, 1)),
        "a_t": ("0", storages["FloatStorage"], 24, 0, (4, 3), (1, 4)),  # a transposed view, shared storage
        "b": ("0", storages["FloatStorage"], 24, 5, (3,), (2,)),  # offset and stride
        "h": ("1", storages["HalfStorage"], 6, 0, (6,), (1,)),
    }

    class Tensor:
        def __init__(self, spec):
            self.spec = spec

        def __reduce__(self):
            key, stype, numel, offset, size, stride = self.spec
            st = Storage(key, stype, numel)
            return (_rebuild_tensor_v2, (st, offset, size, stride, False, collections.OrderedDict()))

    class Storage:
        def __init__(self, key, stype, numel):
            self.pid = ("storage", stype, key, "cpu", numel)

    class P2(pickle.Pickler):
        def persistent_id(self, obj):
            return obj.pid if isinstance(obj, Storage) else None

    for k, spec in specs.items():
        entries[k] = Tensor(spec)
    buf = io.BytesIO()
    P2(buf, protocol=2).dump(entries)
    path = tmp_path / "sd.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", base.tobytes())
        zf.writestr("archive/data/1", half.tobytes())

    sd = pth_reader.load_state_dict(path)
    assert list(sd) == ["a", "a_t", "b", "h"]
    assert np.array_equal(sd["a"], base.reshape(2, 3, 4))
    assert np.array_equal(sd["a_t"], base[:12].reshape(3, 4).T)
    assert np.array_equal(sd["b"], base[5:11:2])
    assert sd["h"].dtype == np.float16 and np.array_equal(sd["h"], half)


def test_shipped_pth_loads_as_numpy():
    from sparkdup.models.efficientnet_lite import default_weights_path

    sd = pth_reader.load_state_dict(default_weights_path())
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert all(isinstance(v, np.ndarray) for v in sd.values())


# ----------------------------------------------------------- (d) the cached model


def test_cached_model_loads_fast(model_cache):
    import keras

    keras.models.load_model(model_cache["keras"], compile=False)  # first call pays lazy imports
    walls, cpus = [], []
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        keras.models.load_model(model_cache["keras"], compile=False)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    print(f"cached .keras load: wall {min(walls):.3f} s, cpu {min(cpus):.3f} s")
    assert min(cpus) < 1.0
    # Wall time also counts waiting for a core; only hold it to the limit on a machine
    # that is not oversubscribed (CI boxes shared by several jobs often are).
    if os.getloadavg()[0] <= (os.cpu_count() or 1):
        assert min(walls) < 1.0


def test_build_cache_is_idempotent(model_cache, capsys):
    from sparkdup.models import build_cache

    before = {k: os.path.getmtime(p) for k, p in model_cache.items()}
    result = build_cache.build()
    assert result["built"] is False
    assert "nothing to do" in capsys.readouterr().out
    assert before == {k: os.path.getmtime(p) for k, p in model_cache.items()}


# ------------------------------------------------------------- (e) TFLite agrees


def test_tflite_matches_keras(photos, model_cache):
    imgs = [photos["chelsea"], photos["coffee"], _jpeg(photos["coffee"], 50)]
    k = embed_arrays("efficientnet_lite0:keras", imgs)
    fp32 = embed_arrays("efficientnet_lite0:tflite", imgs)
    int8 = embed_arrays("efficientnet_lite0:int8", imgs)
    # the default runs the fp32 TFLite file: the Keras embeddings to cosine 0.999 per image
    assert get_model("efficientnet_lite0").backend == "tflite"
    assert get_model("efficientnet_lite0:keras").backend == "keras"
    assert np.allclose(embed_arrays("efficientnet_lite0", imgs), fp32, atol=1e-6)
    assert ((k * fp32).sum(1) >= 0.999).all()
    assert ((k * int8).sum(1) > 0.95).all()
    # a .tflite file given by path resolves and runs too
    by_path = embed_arrays(model_cache["tflite_fp32"], imgs)
    assert np.allclose(by_path, fp32, atol=1e-5)


LITERT_CHILD = r"""
import sys
import numpy as np
from skimage import data
if sys.argv[1] == "hide":
    sys.modules["ai_edge_litert"] = None  # LiteRT not installed: the tf.lite fallback
from sparkdup.udfs.embed import embed_arrays, get_model
vectors = embed_arrays("efficientnet_lite0", [data.chelsea(), data.coffee()])
np.save(sys.argv[2], vectors)
print(get_model("efficientnet_lite0").backend, "tensorflow" in sys.modules)
"""


def test_default_model_runs_without_importing_tensorflow(model_cache, tmp_path):
    """With LiteRT installed, a worker embedding with the default model never imports
    TensorFlow (3.3 CPU s and ~500 MB per Python worker, BENCHMARKS.md), and gets the same
    vectors as TensorFlow's own tf.lite interpreter."""
    import subprocess

    pytest.importorskip("ai_edge_litert", reason="LiteRT (scripts/requirements.txt) is not installed")
    outputs = {}
    for mode in ("litert", "hide"):
        out = tmp_path / f"{mode}.npy"
        res = subprocess.run([sys.executable, "-c", LITERT_CHILD, mode, str(out)], capture_output=True, text=True,
                             check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        outputs[mode] = (res.stdout.split()[-2:], np.load(out))
    assert outputs["litert"][0] == ["tflite", "False"]
    assert outputs["hide"][0] == ["tflite", "True"]
    assert np.allclose(outputs["litert"][1], outputs["hide"][1], atol=1e-5)


def test_embed_images_uses_the_configured_model(photos, model_cache):
    """embed_images(cfg, arrays): the embed stage's model, size, resize and batch size, in
    this process (what `sparkdup search` needs for its query images)."""
    from sparkdup.config import load_config
    from sparkdup.udfs.embed import embed_images

    imgs = [photos["chelsea"], photos["coffee"][:, :300]]
    cfg = load_config(None, (), ["embed.input_size=160", "embed.resize=letterbox"], {})
    got = embed_images(cfg, imgs)
    assert np.allclose(got, embed_arrays("efficientnet_lite0?size=160", imgs, method="letterbox"), atol=1e-6)
    assert not np.allclose(got, embed_arrays("efficientnet_lite0", imgs), atol=1e-2)  # not the defaults


def test_default_model_at_another_input_size(photos, model_cache):
    """efficientnet_lite0?size=160: the same weights at a smaller input, every backend."""
    spec = registry.resolve("efficientnet_lite0?size=160")
    assert spec.input_size == 160 and spec.output_dim == 1280
    assert registry.with_size("efficientnet_lite0", 160) == "efficientnet_lite0?size=160"
    assert registry.with_size("efficientnet_lite0", None) == "efficientnet_lite0"
    with pytest.raises(ValueError, match="size"):
        registry.resolve("efficientnet_lite0?size=8")
    imgs = [photos["chelsea"], photos["coffee"]]
    small = embed_arrays("efficientnet_lite0?size=160", imgs)
    assert small.shape == (2, 1280)
    assert np.allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-5)
    assert np.allclose(embed_arrays("efficientnet_lite0:keras?size=160", imgs), small, atol=1e-4)
    # not the 224 embedding: the model really ran at 160
    full = embed_arrays("efficientnet_lite0", imgs)
    assert ((full * small).sum(1) < 0.999).all() and ((full * small).sum(1) > 0.7).all()
    # a cat is still nearer a cat than a coffee at 160
    cat_again = embed_arrays("efficientnet_lite0?size=160", [_jpeg(photos["chelsea"], 50)])
    assert (cat_again @ small.T)[0, 0] > (cat_again @ small.T)[0, 1]
