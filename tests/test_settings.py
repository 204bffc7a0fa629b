"""Typed settings: checked once at load, before Spark starts; flags map to settings."""
from __future__ import annotations

import dataclasses
import time

import pytest
import yaml

from sparkdup import cli
from sparkdup.config import PROFILES, load_config
from sparkdup.errors import ConfigError, ModelError, UserError
from sparkdup.settings_schema import SCHEMA, flatten


def test_default_yaml_and_schema_name_the_same_settings():
    from importlib import resources

    defaults = yaml.safe_load(resources.files("sparkdup.conf").joinpath("default.yaml").read_text())
    assert set(flatten(defaults)) == set(SCHEMA)
    for profile in PROFILES:  # every shipped profile loads and passes the checks
        load_config(profile)


def test_sections_are_frozen_and_read_both_ways():
    cfg = load_config()
    assert cfg.neighbors.k == cfg["neighbors"]["k"] == 10
    assert cfg.neighbors.faiss_hnsw["ef_search"] == cfg["neighbors"]["faiss_hnsw"].ef_search
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.neighbors.k = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg["neighbors"]["k"] = 3  # type: ignore[index]
    changed = cfg.replace({"neighbors.k": 20})
    assert changed.neighbors.k == 20 and cfg.neighbors.k == 10
    with pytest.raises(ConfigError, match="neighbors.k"):
        cfg.replace({"neighbors.k": 0})


@pytest.mark.parametrize("override, error, words", [
    ("neighbors.k=abc", ConfigError, "'neighbors.k' (--set) must be an integer"),
    ("neighbors.k=-1", ConfigError, "'neighbors.k' (--set) must be >= 1"),
    ("analyze.duplicate_similarity=2", ConfigError, "'analyze.duplicate_similarity' (--set) must be >= -1 and <= 1"),
    ("embed.resize=bogus", ConfigError, "one of center_crop, letterbox"),
    ("neighbors.backend=bogus", ConfigError, "one of faiss_hnsw, annoy, exact"),
    ("embed.model=/nonexistent.tflite", ModelError, "embedding model file not found: /nonexistent.tflite"),
    ("ingest.extensions=png", ConfigError, "'ingest.extensions' (--set) must be a list"),
    ("neighbors.k=[1", ConfigError, "not valid YAML"),
    ("export.drop_flags=[dark, sparkly]", ConfigError, "items from dark, bright"),
    ("analyze.verify_max_changed=2", ConfigError, "'analyze.verify_max_changed' (--set) must be >= 0 and <= 1"),
    ("neighbors=3", ConfigError, "is a section"),
])
def test_bad_values_are_refused_at_load_naming_the_setting(override, error, words):
    with pytest.raises(error) as info:
        load_config(overrides=[override])
    assert words in str(info.value)


def test_messages_name_keys_never_values():
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["aws.secret_key=AKIAsecretvalue"])
    assert "aws.secret_key" in str(info.value) and "AKIAsecretvalue" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["spark.driver_memory=hunter2"])
    assert "hunter2" not in str(info.value)


def test_settings_files_and_profiles(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("neighbors:\n  k: [1\n")
    a_list = tmp_path / "list.yaml"
    a_list.write_text("- neighbors\n- k\n")
    good = tmp_path / "good.yaml"
    good.write_text("neighbors:\n  k: 25\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(files=[str(bad_yaml)])
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(files=[str(a_list)])
    with pytest.raises(ConfigError, match="no such profile 'nope'"):
        load_config("nope")
    assert load_config(files=[str(good)], overrides=["neighbors.k=30"]).neighbors.k == 30  # --set wins
    assert load_config(files=[str(good)]).neighbors.k == 25


def test_renamed_settings_still_work_and_point_to_the_new_name(caplog):
    cfg = load_config(overrides=["ingest.max_file_bytes=1000", "embed.arrow_batch_rows=8"])
    assert cfg.decode.max_file_bytes == 1000 and cfg.decode.arrow_batch_rows == 8
    assert "now 'decode.max_file_bytes'" in caplog.text


def test_flags_map_to_settings_through_one_table():
    from sparkdup.stage import FLAG_SETTINGS, settings_from_args
    import argparse

    parser = argparse.ArgumentParser()
    from sparkdup.jobs import run as pipeline
    from sparkdup.stage import add_common_arguments

    pipeline.add_arguments(parser)
    add_common_arguments(parser)
    args = parser.parse_args(["in", "--output", "o", "--k", "20", "--backend", "exact", "--layout", "label",
                              "--duplicate-similarity", "0.95", "--format", "parquet", "--batch-size", "8"])
    cfg = settings_from_args(args)
    assert (cfg.neighbors.k, cfg.neighbors.backend, cfg.ingest.layout) == (20, "exact", "label")
    assert (cfg.analyze.duplicate_similarity, cfg.output.format, cfg.embed.batch_size) == (0.95, "parquet", 8)
    assert set(FLAG_SETTINGS.values()) <= set(SCHEMA)


@pytest.mark.parametrize("argv", [
    ["--set", "neighbors.k=abc"], ["--set", "neighbors.k=-1"], ["--set", "analyze.duplicate_similarity=2"],
    ["--set", "embed.resize=bogus"], ["--model", "/nonexistent.tflite"], ["--set", "neighbors.backend=bogus"],
    ["--profile", "nope"], ["--conf", "/nonexistent/settings.yaml"], ["--k", "abc"],
])
def test_cli_mistakes_are_one_line_exit_2_before_any_work(argv, tmp_path, capsys):
    started = time.time()
    rc = cli.main(["run", str(tmp_path), "--output", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("sparkdup: error: "), err
    assert time.time() - started < 10
    assert not (tmp_path / "out").exists()  # nothing was written


def test_user_errors_are_one_family():
    assert all(issubclass(e, UserError) for e in (ConfigError, ModelError))


def test_choices_match_the_registries_they_name():
    from sparkdup.udfs.backends import REGISTRY
    from sparkdup.udfs.buckets import VECTOR_DTYPES

    assert set(SCHEMA["neighbors.backend"][1].choices) == set(REGISTRY)
    assert set(SCHEMA["neighbors.vector_dtype"][1].choices) == set(VECTOR_DTYPES)
